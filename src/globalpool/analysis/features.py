"""Feature-map views: what intermediate layers of any network respond to in one image.

Layers are picked by their ``named_modules`` name (``"backbone.stage2"``, ``"head.conv"``)
and read with forward hooks, so this works for any ``nn.Module``. For each layer the
strongest k channels (by mean activation over the image) are shown, which is how one
sees that late feature maps already act as coarse, localized class detectors that a
global pool only needs to summarise.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

__all__ = ["capture_activations", "feature_grid_figure", "layer_names", "strongest_channels"]


def layer_names(model: nn.Module) -> list[str]:
    """Names of every sub-module of ``model`` (the accepted ``layers`` names), in order.

    Example:
        >>> layer_names(nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU()))
        ['0', '1']
    """
    return [name for name, _ in model.named_modules() if name]


def capture_activations(
    model: nn.Module, x: torch.Tensor, layers: Sequence[str]
) -> dict[str, torch.Tensor]:
    """Run ``model(x)`` once in eval mode without gradients and keep the named outputs.

    Args:
        model: any ``nn.Module``.
        x: its input, e.g. normalised images (N, C, H, W).
        layers: sub-module names (see :func:`layer_names`); a module returning a tuple
            contributes its first tensor.

    Returns:
        ``{name: output tensor}`` in the order of ``layers`` (detached copies, on x's
        device): each layer's output as it left the layer, before any in-place op after
        it.

    Example:
        >>> net = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU())
        >>> capture_activations(net, torch.randn(1, 3, 8, 8), ["1"])["1"].shape
        torch.Size([1, 4, 6, 6])
    """
    if isinstance(layers, str):
        layers = [layers]
    if not layers:
        raise ValueError("layers must name at least one sub-module")
    modules = dict(model.named_modules())
    unknown = [name for name in layers if not name or name not in modules]
    if unknown:
        raise ValueError(
            f"unknown layer name(s) {', '.join(map(repr, unknown))}; "
            f"available: {', '.join(layer_names(model))}"
        )
    captured: dict[str, torch.Tensor] = {}

    def hook_for(name: str):
        def hook(_module, _inputs, output):
            if isinstance(output, (tuple, list)):
                output = next((o for o in output if isinstance(o, torch.Tensor)), None)
            if isinstance(output, torch.Tensor):
                # a copy now: an in-place op after the layer (ReLU(inplace=True)) would
                # otherwise turn the kept tensor into that op's output
                captured[name] = output.detach().clone()

        return hook

    handles = [modules[name].register_forward_hook(hook_for(name)) for name in layers]
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            model(x)
    finally:
        model.train(was_training)
        for handle in handles:
            handle.remove()
    missing = [name for name in layers if name not in captured]
    if missing:
        raise ValueError(
            f"layer(s) {', '.join(map(repr, missing))} produced no tensor output in this "
            "forward pass (unused by forward, or not returning a tensor)"
        )
    return {name: captured[name] for name in layers}


def strongest_channels(activation: torch.Tensor, k: int) -> torch.Tensor:
    """Indices of the k channels with the largest mean activation, strongest first.

    Input shape: (C, H, W). Output shape: (min(k, C),) int64.

    Example:
        >>> a = torch.zeros(3, 2, 2); a[2] += 5; a[0] += 1
        >>> strongest_channels(a, 2).tolist()
        [2, 0]
    """
    if activation.ndim != 3:
        raise ValueError(f"activation must be (C, H, W); got {tuple(activation.shape)}")
    if k < 1:
        raise ValueError(f"k must be >= 1; got {k}")
    means = activation.float().mean(dim=(1, 2))
    return torch.argsort(means, descending=True, stable=True)[: min(k, means.numel())]


def feature_grid_figure(
    model: nn.Module,
    x: torch.Tensor,
    layers: Sequence[str],
    k: int = 8,
    *,
    image_uint8: torch.Tensor | None = None,
    cmap: str = "viridis",
    cell_inches: float = 1.2,
):
    """Grid of the strongest k channels of each chosen layer for one image.

    Args:
        model: any ``nn.Module`` taking ``x``.
        x: one normalised image (1, C, H, W) (or (C, H, W)).
        layers: sub-module names whose outputs are feature maps (1, C', h, w).
        k: channels per layer, chosen by mean activation.
        image_uint8: optional (C, H, W) uint8 original, drawn in the first column.
        cmap: matplotlib colormap; each channel is scaled to its own min..max.
        cell_inches: size of one cell in inches.

    Returns:
        ``matplotlib.figure.Figure`` with one row per layer and ``k`` (+1) columns; each
        cell is titled with the channel index and its mean activation.

    Example:
        >>> fig = feature_grid_figure(model, x, ["backbone.0", "head.conv"])  # doctest: +SKIP
    """
    from matplotlib.figure import Figure

    from globalpool.analysis.render import to_hwc_uint8

    if x.ndim == 3:
        x = x[None]
    if x.ndim != 4 or x.shape[0] != 1:
        raise ValueError(f"x must be one image (1, C, H, W); got {tuple(x.shape)}")
    acts = capture_activations(model, x, layers)
    for name, act in acts.items():
        if act.ndim != 4:
            raise ValueError(
                f"layer {name!r} outputs shape {tuple(act.shape)}, not a feature map "
                "(1, C, h, w); pick a convolutional layer"
            )
    lead = 1 if image_uint8 is not None else 0
    ncols = lead + min(k, max(a.shape[1] for a in acts.values()))
    fig = Figure(
        figsize=(cell_inches * ncols + 1.0, cell_inches * len(acts) + 0.3), layout="constrained"
    )
    axes = fig.subplots(len(acts), ncols, squeeze=False)
    for row, (name, act) in enumerate(acts.items()):
        fmap = act[0].float().cpu()
        top = strongest_channels(fmap, k)
        if image_uint8 is not None:
            axes[row][0].imshow(to_hwc_uint8(image_uint8), interpolation="nearest")
            axes[row][0].set_title("input", fontsize=7)
        for j in range(ncols - lead):
            ax = axes[row][lead + j]
            if j < len(top):
                c = int(top[j])
                ax.imshow(fmap[c].numpy(), cmap=cmap, interpolation="nearest")
                ax.set_title(f"ch {c}  mean {float(fmap[c].mean()):.2f}", fontsize=6)
            else:
                ax.axis("off")
        axes[row][lead].set_ylabel(f"{name}\n{tuple(fmap.shape)}", fontsize=7)
    for ax in axes.flat:
        ax.set_xticks([])
        ax.set_yticks([])
    return fig
