"""Looking inside trained models: class activation maps, localization scores, feature views.

- :mod:`globalpool.analysis.cam`: ``compute_cam`` (CAM where the head allows it, Grad-CAM
  otherwise), ``cam_method``.
- :mod:`globalpool.analysis.localization`: box accuracy, pointing game, mask IoU and
  ``localization_scores`` over a dataset.
- :mod:`globalpool.analysis.render`: heat-map overlays and the image-by-head CAM grid
  (imports matplotlib, so it is not imported here).
- :mod:`globalpool.analysis.features`: activations of intermediate layers by name.
- :mod:`globalpool.analysis.report`: the HTML/Markdown comparison report.
"""

from globalpool.analysis.cam import cam_method, compute_cam

__all__ = ["cam_method", "compute_cam"]
