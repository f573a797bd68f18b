"""Backbones from torchvision and timm under a globalpool head.

``create_model("torchvision:resnet18", ...)`` and ``create_model("timm:<name>", ...)``
come here (:func:`create_external_model`). The library is imported only then, so
globalpool runs without it; it comes with ``pip install 'globalpool[vision]'``.

The backbone is the network's convolutional trunk: it maps (N, in_chans, H, W) images to
its last feature map (N, C, h, w), and says its width as ``num_features``. Its own
global pool and classifier are dropped; the globalpool head (any kind, any pool) takes
their place.

- torchvision (:class:`TorchvisionBackbone`): ``torchvision.models.get_model(name,
  weights=None | "DEFAULT")``, then the modules of the trunk by family, under their
  torchvision names (``backbone.layer4.1.conv2.weight`` is torchvision's
  ``layer4.1.conv2.weight``). :data:`TORCHVISION_FAMILIES` lists the families.
  ``in_chans != 3`` adapts the first convolution as timm does: for one channel the sum
  of its RGB filters, for C channels the RGB filters repeated and scaled by 3 / C.
- timm (:class:`TimmBackbone`): ``timm.create_model(name, pretrained=...,
  num_classes=0, global_pool="", in_chans=in_chans)`` and its ``forward_features``
  (channels-last outputs, as of Swin, are permuted to (N, C, h, w)). Modules that
  ``forward_features`` never runs (e.g. MobileNetV3's ``conv_head``, ConvNeXt's head
  norm: parts of timm's classifier) are removed, checked by the outputs being unchanged:
  unused weights would be saved for nothing, counted as backbone parameters, and make
  DistributedDataParallel fail on parameters without gradients.

``pretrained=True`` uses the library's own download (torch hub / Hugging Face hub, and
their caches); when it fails (no network) :class:`WeightsUnavailableError` says so. The
rebuilt model of a saved run (``model.json``'s ``model_args``) always has
``pretrained=False``: its weights come from the run's safetensors file.
"""

from __future__ import annotations

import contextlib
import difflib
import math
from collections import OrderedDict
from collections.abc import Callable, Sequence

import torch
from torch import nn

from globalpool.models.classifier import Classifier
from globalpool.models.shape import feature_shape
from globalpool.models.sizing import check_in_chans, size_pair
from globalpool.models.vision_compat import (
    ExtraNotInstalled,
    import_timm,
    import_torchvision,
)

__all__ = [
    "LIBRARIES",
    "TORCHVISION_FAMILIES",
    "ExtraNotInstalled",
    "TimmBackbone",
    "TorchvisionBackbone",
    "WeightsUnavailableError",
    "create_external_model",
    "import_timm",
    "import_torchvision",
    "is_external",
]

LIBRARIES = ("torchvision", "timm")
DEFAULT_INPUT_SIZE = (224, 224)  # ImageNet's, where the library says none


class WeightsUnavailableError(ConnectionError):
    """``pretrained=True`` and the library could not fetch the weights."""

    user_error = True


def is_external(name) -> bool:
    """Whether ``name`` is ``"torchvision:<arch>"`` or ``"timm:<arch>"``."""
    return isinstance(name, str) and name.partition(":")[0] in LIBRARIES and ":" in name


# -- downloads --------------------------------------------------------------------------
_NETWORK_MODULES = ("urllib", "http", "socket", "ssl", "requests", "urllib3", "httpx",
                    "httpx2", "httpcore", "httpcore2", "huggingface_hub")  # fmt: skip


@contextlib.contextmanager
def _fetching(what: str, pretrained: bool):
    """Turn a failed weight download inside the block into :class:`WeightsUnavailableError`
    (one clear message instead of a urllib / Hugging Face traceback)."""
    try:
        yield
    except Exception as err:
        module = (type(err).__module__ or "").split(".")[0]
        if pretrained and (isinstance(err, OSError) or module in _NETWORK_MODULES):
            raise WeightsUnavailableError(
                f"the pretrained weights of {what} could not be fetched "
                f"({type(err).__name__}: {err}); the library downloads them on first use, "
                "which needs network access (or its cache). pretrained=False (the default) "
                "works offline, from random initialisation"
            ) from None
        raise


# -- torchvision ------------------------------------------------------------------------
def _parts(model: nn.Module, *names: str) -> OrderedDict:
    missing = [n for n in names if not isinstance(getattr(model, n, None), nn.Module)]
    if missing:
        raise ValueError(
            f"{type(model).__name__} has no {', '.join(missing)}: this torchvision version "
            "lays the model out differently from what globalpool expects"
        )
    return OrderedDict((n, getattr(model, n)) for n in names)


def _densenet(model: nn.Module) -> OrderedDict:
    parts = _parts(model, "features")  # ends with norm5; torchvision's forward adds a ReLU
    parts["relu"] = nn.ReLU(inplace=True)
    return parts


_RESNET = ("conv1", "bn1", "relu", "maxpool", "layer1", "layer2", "layer3", "layer4")


def _trunk(*names: str) -> Callable[[nn.Module], OrderedDict]:
    return lambda model: _parts(model, *names)


# Name prefix -> the trunk's modules (torchvision's names), before its pool and classifier.
TORCHVISION_FAMILIES: dict[str, Callable[[nn.Module], OrderedDict]] = {
    "resnet": _trunk(*_RESNET),
    "resnext": _trunk(*_RESNET),
    "wide_resnet": _trunk(*_RESNET),
    "regnet": _trunk("stem", "trunk_output"),
    "mobilenet_v2": _trunk("features"),
    "mobilenet_v3": _trunk("features"),
    "efficientnet": _trunk("features"),  # efficientnet_b0..b7 and efficientnet_v2_s/m/l
    "convnext": _trunk("features"),
    "densenet": _densenet,
    "vgg": _trunk("features"),
    "alexnet": _trunk("features"),
    "squeezenet": _trunk("features"),
    "mnasnet": _trunk("layers"),
    "shufflenet_v2": _trunk("conv1", "maxpool", "stage2", "stage3", "stage4", "conv5"),
}


def _family(arch: str) -> str | None:
    return next((f for f in TORCHVISION_FAMILIES if arch.startswith(f)), None)


class TorchvisionBackbone(nn.Sequential):
    """The convolutional trunk of a torchvision classification model.

    Args:
        arch: the torchvision name (``resnet18``).
        parts: the trunk's modules in order, under their torchvision names.

    Attributes:
        arch, library (``"torchvision"``), num_features (C of the last feature map; set
        once the model is built).

    Input shape: (N, in_chans, H, W). Output shape: (N, num_features, h, w).
    """

    library = "torchvision"

    def __init__(self, arch: str, parts: OrderedDict) -> None:
        super().__init__(parts)
        self.arch = arch
        self.num_features: int | None = None


def _adapt_first_conv(backbone: nn.Module, in_chans: int, what: str) -> None:
    """Replace the first Conv2d (3 input channels) by one taking ``in_chans``, its filters
    from the RGB ones: their sum for 1 channel, else repeated and scaled by 3 / in_chans
    (timm's ``adapt_input_conv``), so a pretrained network sees a similar input scale."""
    name, conv = next(
        ((n, m) for n, m in backbone.named_modules() if isinstance(m, nn.Conv2d)), (None, None)
    )
    if conv is None or conv.in_channels != 3 or conv.groups != 1:
        raise ValueError(
            f"{what}: in_chans={in_chans} needs a first convolution with 3 input channels to "
            "adapt, which this model does not have; use in_chans=3"
        )
    weight = conv.weight.detach()
    if in_chans == 1:
        new_weight = weight.sum(dim=1, keepdim=True)
    else:
        repeat = math.ceil(in_chans / 3)
        new_weight = weight.repeat(1, repeat, 1, 1)[:, :in_chans] * (3 / in_chans)
    new = nn.Conv2d(
        in_chans, conv.out_channels, conv.kernel_size, stride=conv.stride,
        padding=conv.padding, dilation=conv.dilation, bias=conv.bias is not None,
        padding_mode=conv.padding_mode,
    ).to(device=weight.device, dtype=weight.dtype)  # fmt: skip
    with torch.no_grad():
        new.weight.copy_(new_weight)
        if conv.bias is not None:
            new.bias.copy_(conv.bias)
    parent_name, _, leaf = name.rpartition(".")
    setattr(backbone.get_submodule(parent_name) if parent_name else backbone, leaf, new)


def _torchvision_backbone(arch: str, in_chans: int, pretrained: bool, kwargs: dict):
    torchvision = import_torchvision()
    models = torchvision.models
    names = models.list_models(module=models)
    if arch not in names:
        close = difflib.get_close_matches(arch, names, n=3)
        raise ValueError(
            f"unknown torchvision model {arch!r}"
            + (f" (did you mean {', '.join(close)}?)" if close else "")
            + '; list the names with: python -c "import torchvision; '
            'print(torchvision.models.list_models(module=torchvision.models))"'
        )
    family = _family(arch)
    if family is None:
        raise ValueError(
            f"torchvision model {arch!r} is not a supported convolutional family; supported: "
            f"{', '.join(TORCHVISION_FAMILIES)} (e.g. resnet50, convnext_tiny), or use a "
            "timm: model"
        )
    what = f"model 'torchvision:{arch}'"
    weights = "DEFAULT" if pretrained else None
    with _fetching(what, pretrained):
        try:
            net = models.get_model(arch, weights=weights, **kwargs)
        except TypeError as err:
            raise TypeError(f"bad arguments for {what}: {err}") from None
    backbone = TorchvisionBackbone(arch, TORCHVISION_FAMILIES[family](net))
    if in_chans != 3:
        _adapt_first_conv(backbone, in_chans, what)
    return backbone


# -- timm -------------------------------------------------------------------------------
class TimmBackbone(nn.Module):
    """A timm model without its classifier: ``forward`` is its ``forward_features``.

    Args:
        model: built with ``num_classes=0, global_pool=""``.
        arch: the timm name.

    Attributes:
        model, arch, library (``"timm"``), num_features (timm's), channels_last_output
        (True for models whose features come as (N, h, w, C), e.g. Swin; permuted here).

    Input shape: (N, in_chans, H, W). Output shape: (N, num_features, h, w).
    """

    library = "timm"

    def __init__(self, model: nn.Module, arch: str) -> None:
        super().__init__()
        self.model = model
        self.arch = arch
        self.num_features = int(getattr(model, "num_features", 0)) or None
        self.channels_last_output = getattr(model, "output_fmt", "NCHW") == "NHWC"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.model.forward_features(x)
        if self.channels_last_output and out.ndim == 4:
            out = out.permute(0, 3, 1, 2)
        return out


def _drop_unused_modules(backbone: TimmBackbone, in_chans: int, input_size) -> None:
    """Replace by ``nn.Identity`` each module with weights that ``forward_features``
    does not run (parts of timm's classifier), keeping the change only if the features
    of a random image stay identical."""
    model = backbone.model
    modes = {m: m.training for m in model.modules()}
    ran: set[int] = set()
    hooks = [m.register_forward_pre_hook(lambda mod, _: ran.add(id(mod))) for m in model.modules()]
    x = torch.randn(2, in_chans, *input_size, generator=torch.Generator().manual_seed(0))
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    model.eval()
    replaced: list[tuple[nn.Module, str, nn.Module]] = []
    try:
        with torch.no_grad():
            try:
                before = backbone(x)
            except (RuntimeError, ValueError, IndexError):
                return  # too small an input: the Classifier says so
            finally:
                for h in hooks:
                    h.remove()
            dropped: list[str] = []
            for name, module in list(model.named_modules()):
                if not name or id(module) in ran or any(name.startswith(d + ".") for d in dropped):
                    continue
                if next(module.parameters(), None) is None and next(module.buffers(), None) is None:
                    continue
                parent, _, leaf = name.rpartition(".")
                owner = model.get_submodule(parent) if parent else model
                replaced.append((owner, leaf, module))
                setattr(owner, leaf, nn.Identity())
                dropped.append(name)
            if replaced:
                try:
                    same = torch.equal(backbone(x), before)
                except Exception:  # a parent reads a dropped module's weights directly
                    same = False
                if not same:
                    for owner, leaf, module in replaced:
                        setattr(owner, leaf, module)
    finally:
        torch.set_num_threads(threads)
        for m, mode in modes.items():
            m.training = mode


def _timm_backbone(arch: str, in_chans: int, pretrained: bool, kwargs: dict):
    timm = import_timm()
    if not timm.is_model(arch):
        close = difflib.get_close_matches(arch, timm.list_models(), n=3)
        raise ValueError(
            f"unknown timm model {arch!r}"
            + (f" (did you mean {', '.join(close)}?)" if close else "")
            + "; list the names with: python -c \"import timm; print(timm.list_models('resnet*'))\""
        )
    what = f"model 'timm:{arch}'"
    with _fetching(what, pretrained):
        try:
            net = timm.create_model(
                arch, pretrained=pretrained, num_classes=0, global_pool="", in_chans=in_chans,
                **kwargs,
            )  # fmt: skip
        except TypeError as err:
            raise TypeError(f"bad arguments for {what}: {err}") from None
    if not callable(getattr(net, "forward_features", None)):
        raise ValueError(f"{what} has no forward_features, so no feature map to pool")
    return TimmBackbone(net, arch)


def _timm_input_size(backbone: TimmBackbone) -> tuple[int, int]:
    cfg = getattr(backbone.model, "pretrained_cfg", None) or {}
    size = cfg.get("input_size") if isinstance(cfg, dict) else None
    return tuple(size[-2:]) if size and len(size) == 3 else DEFAULT_INPUT_SIZE


# -- the model --------------------------------------------------------------------------
def create_external_model(
    name: str,
    num_classes: int = 10,
    *,
    head: str | None = None,
    pool: str | None = None,
    in_chans: int | None = None,
    input_size: Sequence[int] | int | None = None,
    head_kwargs: dict | None = None,
    pool_kwargs: dict | None = None,
    pretrained: bool = False,
    **kwargs,
) -> Classifier:
    """A :class:`Classifier` on a torchvision or timm backbone.

    Args:
        name: ``"torchvision:<arch>"`` (a family of :data:`TORCHVISION_FAMILIES`) or
            ``"timm:<arch>"`` (any timm model whose ``forward_features`` gives feature maps).
        num_classes, head, pool, head_kwargs, pool_kwargs: as for ``create_model``; the
            default head is ``pool-linear`` with ``avg`` (the network's own design).
        in_chans: input channels (None: 3).
        input_size: (H, W) or int the model is built for (None: timm's pretrained input
            size, else 224); pooling heads run at any size >= ``min_input_size``.
        pretrained: the library's ImageNet weights (downloaded on first use).
        **kwargs: passed to ``torchvision.models.get_model`` / ``timm.create_model``
            (e.g. ``drop_path_rate`` for timm); JSON-able values, as they go to model.json.

    Returns:
        the Classifier; its ``model_args`` rebuild the architecture with ``pretrained``
        False (the trained weights come from the checkpoint).

    Raises:
        ValueError: unknown or unsupported name, or an input size too small.
        ExtraNotInstalled: the library is missing (``pip install 'globalpool[vision]'``).
        WeightsUnavailableError: ``pretrained=True`` and the download failed.
    """
    library, _, arch = name.partition(":")
    if library not in LIBRARIES or not arch:
        raise ValueError(f"expected 'torchvision:<name>' or 'timm:<name>', got {name!r}")
    if not isinstance(pretrained, bool):
        raise TypeError(f"pretrained must be True or False, got {pretrained!r}")
    in_chans = check_in_chans(3 if in_chans is None else in_chans)
    if library == "torchvision":
        backbone = _torchvision_backbone(arch, in_chans, pretrained, kwargs)
        default_size = DEFAULT_INPUT_SIZE
    else:
        backbone = _timm_backbone(arch, in_chans, pretrained, kwargs)
        default_size = _timm_input_size(backbone)
    input_size = size_pair(default_size if input_size is None else input_size, "input_size")
    if isinstance(backbone, TimmBackbone):
        _drop_unused_modules(backbone, in_chans, input_size)
    shape = feature_shape(backbone, in_chans, input_size)
    if shape is not None and len(shape) != 3:
        raise ValueError(
            f"model {name!r} gives features of shape {('N', *shape)}, not feature maps "
            "(N, C, h, w) (a transformer's tokens?): globalpool heads pool the feature maps "
            "of a convolutional network"
        )
    model_args = {
        "name": name, "in_chans": in_chans, "input_size": list(input_size),
        "pretrained": False, **kwargs,
    }  # fmt: skip
    try:
        model = Classifier(
            backbone,
            num_classes,
            head=head or "pool-linear",
            pool=pool,
            in_chans=in_chans,
            input_size=input_size,
            head_kwargs=head_kwargs,
            pool_kwargs=pool_kwargs,
            default_pool="avg",
            model_args=model_args,
        )
    except ValueError as err:
        raise ValueError(f"model {name!r}: {err}") from None
    backbone.num_features = model.num_features
    return model
