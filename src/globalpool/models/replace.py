"""``replace_head``: give a Classifier, or a plain user CNN, a new (pooling) head.

For a plain ``nn.Module`` the head is found with ``torch.fx`` by this rule:

1. Trace the module symbolically (``torch.fx.symbolic_trace``); a forward that cannot be
   traced (data-dependent control flow) is refused.
2. The old classifier ends at the **last ``nn.Linear`` (or ``F.linear``) in graph order**
   (the order the forward runs them).
3. Among that Linear's inputs (transitively) there must be a **flatten**: ``nn.Flatten``,
   ``torch.flatten`` / ``x.flatten`` from dim 1, or a ``view`` / ``reshape`` to 2 dims
   (``x.view(x.size(0), -1)``). The latest such flatten starts the old head.
4. Everything from that flatten to the output (the Linear stack, its activations, dropout,
   a final softmax) is the old head and is dropped. The flatten's input, the conv feature
   maps (N, C, H, W), becomes the feature output of the new backbone: a pooling head pools
   exactly what the old FC head flattened (after any pooling the user's network already
   did before its flatten, e.g. an ``AdaptiveAvgPool2d``).

It raises ValueError rather than guess when there is no Linear, when no flatten precedes
the last Linear, when two flattened branches meet (e.g. a concat of two flattens), when
the output also depends on the input by another path than through the flatten, or when
the flatten's input is not 4-d feature maps.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import fx, nn

from globalpool.models.classifier import Classifier
from globalpool.models.shape import feature_shape

__all__ = ["replace_head"]


def replace_head(
    model: nn.Module,
    num_classes: int,
    head: str | None = None,
    pool: str | None = None,
    *,
    input_size: Sequence[int] | int | None = None,
    in_chans: int | None = None,
    head_kwargs: dict | None = None,
    pool_kwargs: dict | None = None,
) -> Classifier:
    """Replace the classifier head of ``model``.

    Args:
        model: a :class:`Classifier` (changed in place with ``reset_classifier`` and
            returned), or a plain CNN whose classifier is a Linear stack after a flatten
            (see the module docstring for the exact rule).
        num_classes: K of the new head.
        head: "fc", "classmap" or "pool-linear"; None keeps a Classifier's kind, and means
            "pool-linear" for a plain module.
        pool: any registered pool name; None keeps the current pool or uses "avg".
        input_size: (H, W) the plain module was built for; None deduces it as the square
            size whose flattened features match the first Linear after the flatten.
        in_chans: input channels of the plain module; None takes the first Conv2d's.
        head_kwargs, pool_kwargs: extra head / pool arguments (plain modules only).

    Returns:
        the Classifier. For a plain module it is new: its ``backbone`` is a
        ``torch.fx.GraphModule`` that shares the user's layers and weights (no copy), and
        its ``model_args`` is None (no registry entry can rebuild it).

    Example:
        >>> import torch
        >>> from torch import nn
        >>> lenet = nn.Sequential(
        ...     nn.Conv2d(1, 6, 5), nn.ReLU(), nn.MaxPool2d(2),
        ...     nn.Conv2d(6, 16, 5), nn.ReLU(), nn.MaxPool2d(2),
        ...     nn.Flatten(), nn.Linear(400, 120), nn.ReLU(), nn.Linear(120, 10))
        >>> gap = replace_head(lenet, 10, "pool-linear", "avg")
        >>> gap.input_size, gap(torch.randn(2, 1, 48, 48)).shape
        ((32, 32), torch.Size([2, 10]))
    """
    if isinstance(model, Classifier):
        model.reset_classifier(num_classes, head=head, pool=pool)
        return model
    if not isinstance(model, nn.Module):
        raise TypeError(f"replace_head needs an nn.Module, got {type(model).__name__}")
    backbone, first_linear_in = _split_at_flatten(model)
    if in_chans is None:
        conv = next((m for m in model.modules() if isinstance(m, nn.Conv2d)), None)
        if conv is None:
            raise ValueError(
                "replace_head could not find an nn.Conv2d to read the input channels from; "
                "pass in_chans="
            )
        in_chans = conv.in_channels
    if input_size is None:
        input_size = _deduce_input_size(backbone, in_chans, first_linear_in)
    elif isinstance(input_size, int):
        input_size = (input_size, input_size)
    shape = feature_shape(backbone, in_chans, tuple(input_size))
    if shape is None or len(shape) != 3:
        raise ValueError(
            f"replace_head: the tensor flattened by {type(model).__name__} is not feature "
            f"maps (N, C, H, W) at input size {tuple(input_size)} with {in_chans} channels "
            f"(got {'an error' if shape is None else ('N', *shape)})"
        )
    return Classifier(
        backbone,
        num_classes,
        head=head or "pool-linear",
        pool=pool,
        in_chans=in_chans,
        input_size=input_size,
        head_kwargs=head_kwargs,
        pool_kwargs=pool_kwargs,
        model_args=None,
    )


# -- the tracing part ---------------------------------------------------------------------
def _is_linear(node: fx.Node, gm: fx.GraphModule) -> bool:
    if node.op == "call_module":
        return isinstance(gm.get_submodule(node.target), nn.Linear)
    return node.op == "call_function" and node.target in (F.linear, torch._C._nn.linear)


def _arg(node: fx.Node, index: int, name: str, default):
    if len(node.args) > index:
        return node.args[index]
    return node.kwargs.get(name, default)


def _is_flatten(node: fx.Node, gm: fx.GraphModule) -> bool:
    if node.op == "call_module":
        mod = gm.get_submodule(node.target)
        return isinstance(mod, nn.Flatten) and mod.start_dim == 1 and mod.end_dim == -1
    if (node.op == "call_function" and node.target is torch.flatten) or (
        node.op == "call_method" and node.target == "flatten"
    ):
        return _arg(node, 1, "start_dim", 0) == 1 and _arg(node, 2, "end_dim", -1) == -1
    if (node.op == "call_method" and node.target in ("view", "reshape")) or (
        node.op == "call_function" and node.target is torch.reshape
    ):
        shape = node.args[1:] if node.op == "call_method" else node.args[1:2]
        if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
            shape = shape[0]
        return len(shape) == 2
    return False


def _ancestors(node: fx.Node, stop: fx.Node | None = None) -> set[fx.Node]:
    seen: set[fx.Node] = set()
    todo = list(node.all_input_nodes)
    while todo:
        n = todo.pop()
        if n in seen:
            continue
        seen.add(n)
        if n is not stop:
            todo.extend(n.all_input_nodes)
    return seen


def _split_at_flatten(model: nn.Module) -> tuple[fx.GraphModule, int | None]:
    """(backbone GraphModule returning the flatten's input, in_features of the first
    Linear after the flatten, or None if unknown)."""
    name = type(model).__name__
    try:
        gm = fx.symbolic_trace(model)
    except Exception as err:  # fx raises many kinds (TraceError, TypeError, ...)
        raise ValueError(
            f"replace_head could not trace {name} with torch.fx ({type(err).__name__}: "
            f"{err}); build a globalpool Classifier(backbone, num_classes, ...) from its "
            "feature layers instead"
        ) from None
    nodes = list(gm.graph.nodes)
    linears = [n for n in nodes if _is_linear(n, gm)]
    if not linears:
        raise ValueError(f"replace_head found no nn.Linear in {name}, so no classifier head")
    last = linears[-1]
    output = next(n for n in nodes if n.op == "output")
    if last not in _ancestors(output):
        raise ValueError(
            f"replace_head: the last Linear of {name} ({last.target}) does not feed the "
            "output, so the head is ambiguous"
        )
    before = _ancestors(last)
    flattens = [n for n in nodes if n in before and _is_flatten(n, gm)]
    if not flattens:
        raise ValueError(
            f"replace_head: no flatten (nn.Flatten, torch.flatten(x, 1), x.view(N, -1)) "
            f"precedes the last Linear of {name} ({last.target}); cannot tell the feature "
            "maps from the head"
        )
    latest = [f for f in flattens if not any(f in _ancestors(g) for g in flattens if g is not f)]
    if len(latest) != 1:
        raise ValueError(
            f"replace_head: {len(latest)} flattened branches of {name} meet before its last "
            f"Linear ({', '.join(str(f) for f in latest)}); the head is ambiguous"
        )
    flatten = latest[0]
    # The output may reach the input only through the flatten (no skip around the head).
    if _bypasses(output, flatten):
        raise ValueError(
            f"replace_head: the output of {name} also depends on its input by a path that "
            "skips the flatten; the head is ambiguous"
        )
    features = flatten.args[0]
    graph = fx.Graph(owning_module=gm)
    remap: dict[fx.Node, fx.Node] = {}
    graph.graph_copy(gm.graph, remap)
    graph.output(remap[features])
    graph.eliminate_dead_code()
    backbone = fx.GraphModule(gm, graph, class_name=f"{name}Features")
    after = [n for n in linears if flatten in _ancestors(n)]
    in_features = None
    if after and after[0].op == "call_module":
        in_features = gm.get_submodule(after[0].target).in_features
    return backbone, in_features


def _bypasses(output: fx.Node, flatten: fx.Node) -> bool:
    """True if walking back from the output, without passing through ``flatten``, reaches
    a placeholder (the model input) by some path."""
    seen: set[fx.Node] = set()
    todo = list(output.all_input_nodes)
    while todo:
        n = todo.pop()
        if n in seen or n is flatten:
            continue
        seen.add(n)
        if n.op == "placeholder":
            return True
        todo.extend(n.all_input_nodes)
    return False


def _deduce_input_size(
    backbone: nn.Module, in_chans: int, in_features: int | None
) -> tuple[int, int]:
    if in_features is None:
        raise ValueError(
            "replace_head could not deduce the input size (no nn.Linear directly after the "
            "flatten); pass input_size=(H, W)"
        )

    def flat(s: int) -> int:
        shape = feature_shape(backbone, in_chans, (s, s))
        return -1 if shape is None else math.prod(shape)

    lo, hi = 1, 1024
    if flat(hi) < in_features:
        hi = lo  # no square size up to 1024 fits
    while lo < hi:  # smallest square size whose flattened features reach in_features
        mid = (lo + hi) // 2
        if flat(mid) >= in_features:
            hi = mid
        else:
            lo = mid + 1
    if flat(lo) != in_features:
        raise ValueError(
            f"replace_head could not deduce the input size: no square input gives the "
            f"{in_features} flattened features the first Linear expects; pass "
            "input_size=(H, W)"
        )
    return lo, lo
