"""``HeadSpec``: one head of the comparison, parsed from text such as ``classmap:max``.

Grammar (``--heads`` takes a comma-separated list of these)::

    KIND[:POOL][:NAME=VALUE]...

- ``KIND``: a head kind from ``globalpool.heads.list_heads()`` (``fc``, ``classmap``,
  ``pool-linear``).
- ``POOL``: a pool name from ``globalpool.pool.list_pools()``; pooling heads default to
  ``avg``; ``fc`` flattens and takes none.
- ``NAME=VALUE``: a keyword argument of the head (``dropout=0.5``, ``hidden=[256]``,
  ``kernel_size=3``) or of its pool (``p=3`` for ``gem``), or ``label=NAME`` to name the
  run directory. Values are Python literals (numbers, ``true``/``false``, lists);
  anything else is a string.

Commas and colons inside brackets do not split, so ``fc:hidden=[256,128]`` works.
"""

from __future__ import annotations

import ast
import inspect
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

__all__ = ["DEFAULT_HEADS", "HeadSpec", "parse_head", "parse_heads"]

# The comparison the README runs: the classic FC head with and without dropout against
# the global pooling heads. Dropout is explicit on both FC heads because an architecture
# may set its own default (fastnet's FC head: hidden=[256], dropout=0.5).
DEFAULT_HEADS = "fc:dropout=0,fc:dropout=0.5,classmap:avg,classmap:max,pool-linear:avg"

_LABEL_OK = re.compile(r"[^A-Za-z0-9._-]+")


@dataclass(frozen=True)
class HeadSpec:
    """One head of a comparison.

    Attributes:
        kind: head kind (``fc``, ``classmap``, ``pool-linear``).
        pool: pool name for pooling heads, None for ``fc``.
        kwargs: keyword arguments of the head; pool arguments sit in ``pool_kwargs``.
        label: name of the head in the report and of its run directory.

    Example:
        >>> spec = parse_head("pool-linear:gem:p=3")
        >>> spec.kind, spec.pool, spec.kwargs, spec.label
        ('pool-linear', 'gem', {'pool_kwargs': {'p': 3}}, 'pool-linear-gem-p3')
    """

    kind: str
    pool: str | None = None
    kwargs: dict[str, Any] = field(default_factory=dict)
    label: str = ""

    def __post_init__(self) -> None:
        if not self.label:
            object.__setattr__(self, "label", default_label(self.kind, self.pool, self.kwargs))

    def to_text(self) -> str:
        """The spec back in ``--heads`` syntax (pool arguments flattened again)."""
        parts = [self.kind] + ([self.pool] if self.pool else [])
        for key, value in self.kwargs.items():
            if key == "pool_kwargs":
                parts += [f"{k}={_literal(v)}" for k, v in value.items()]
            else:
                parts.append(f"{key}={_literal(value)}")
        if self.label != default_label(self.kind, self.pool, self.kwargs):
            parts.append(f"label={self.label}")
        return ":".join(parts)


def _literal(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, tuple):
        value = list(value)
    return repr(value).replace(" ", "") if not isinstance(value, str) else value


def default_label(kind: str, pool: str | None, kwargs: dict[str, Any]) -> str:
    """``kind[-pool][-namevalue]...``, safe as a directory name: ``fc-dropout0.5``."""
    parts = [kind] + ([pool] if pool else [])
    flat = dict(kwargs)
    flat.update(flat.pop("pool_kwargs", None) or {})
    for key, value in flat.items():
        shown = "x".join(map(str, value)) if isinstance(value, (list, tuple)) else _literal(value)
        parts.append(f"{key}{shown}")
    return _LABEL_OK.sub("", "-".join(parts))


def _split_top(text: str, sep: str) -> list[str]:
    """Split on ``sep`` outside brackets and quotes."""
    parts, depth, quote, start = [], 0, None, 0
    for i, ch in enumerate(text):
        if quote:
            quote = None if ch == quote else quote
        elif ch in "'\"":
            quote = ch
        elif ch in "([{":
            depth += 1
        elif ch in ")]}":
            depth -= 1
        elif ch == sep and depth == 0:
            parts.append(text[start:i])
            start = i + 1
    parts.append(text[start:])
    return [p.strip() for p in parts]


def _parse_value(text: str) -> Any:
    lowered = text.lower()
    if lowered in ("true", "false"):
        return lowered == "true"
    if lowered in ("none", "null"):
        return None
    try:
        value = ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text
    return list(value) if isinstance(value, tuple) else value


def _accepted_kwargs(cls) -> set[str]:
    params = inspect.signature(cls.__init__).parameters.values()
    return {
        p.name
        for p in params
        if p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD) and p.name != "self"
    }


# Arguments that the model builds itself; a spec cannot set them.
_RESERVED = {
    "in_channels",
    "num_classes",
    "feature_size",
    "pool",
    "channels",
    "pool_kwargs",
    "data_format",
    "keepdim",
}


def parse_head(text: str) -> HeadSpec:
    """Parse one ``KIND[:POOL][:NAME=VALUE]...`` spec; see the module docstring.

    Raises:
        ValueError: empty text, unknown kind or pool, a pool on ``fc``, two pools, a
            keyword that neither the head nor its pool accepts.

    Example:
        >>> parse_head("fc:dropout=0.5")
        HeadSpec(kind='fc', pool=None, kwargs={'dropout': 0.5}, label='fc-dropout0.5')
    """
    from globalpool.heads.factory import HEADS
    from globalpool.pool import list_pools, pool_entry

    if not isinstance(text, str) or not text.strip():
        raise ValueError(
            f"a head spec must be a non-empty string like 'classmap:avg'; got {text!r}"
        )
    kind, *rest = _split_top(text.strip(), ":")
    if kind not in HEADS:
        raise ValueError(
            f"unknown head kind {kind!r} in {text!r}; expected one of: {', '.join(HEADS)}"
        )
    pool: str | None = None
    raw: dict[str, Any] = {}
    label = ""
    for token in rest:
        if not token:
            raise ValueError(f"empty field in head spec {text!r}")
        if "=" not in token:
            if pool is not None:
                raise ValueError(f"head spec {text!r} names two pools ({pool!r}, {token!r})")
            if token not in list_pools():
                known = ", ".join(list_pools())
                raise ValueError(f"unknown pool {token!r} in {text!r}; expected one of: {known}")
            pool = token
            continue
        key, _, value = (part.strip() for part in token.partition("="))
        if not key.isidentifier():
            raise ValueError(f"bad keyword {key!r} in head spec {text!r}")
        if key in raw or (key == "label" and label):
            raise ValueError(f"keyword {key!r} given twice in head spec {text!r}")
        if key == "label":
            label = _LABEL_OK.sub("", value)
            if not label:
                raise ValueError(f"label in {text!r} must use letters, digits, '.', '_' or '-'")
            continue
        raw[key] = _parse_value(value)

    if kind == "fc":
        if pool is not None:
            raise ValueError(
                f"the 'fc' head flattens the feature maps and takes no pool; got {pool!r} in "
                f"{text!r} (use 'pool-linear:{pool}' for a pool + linear head)"
            )
    else:
        pool = pool or "avg"

    head_args = _accepted_kwargs(HEADS[kind]) - _RESERVED
    pool_args = (_accepted_kwargs(pool_entry(pool).cls) - _RESERVED) if pool else set()
    kwargs: dict[str, Any] = {}
    pool_kwargs: dict[str, Any] = {}
    for key, value in raw.items():
        if key in head_args:
            kwargs[key] = value
        elif key in pool_args and "pool_kwargs" in _accepted_kwargs(HEADS[kind]):
            pool_kwargs[key] = value
        else:
            options = sorted(head_args | pool_args)
            raise ValueError(
                f"{key!r} in {text!r} is not an argument of the {kind!r} head"
                + (f" or the {pool!r} pool" if pool else "")
                + f"; expected one of: {', '.join(options) or '(none)'}"
            )
    if pool_kwargs:
        kwargs["pool_kwargs"] = pool_kwargs
    return HeadSpec(kind, pool, kwargs, label)


def parse_heads(heads: str | Iterable[str | HeadSpec] | None) -> list[HeadSpec]:
    """Parse a comma-separated list (or an iterable of specs); None gives the defaults.

    Raises:
        ValueError: an empty list, a bad spec, or two heads with the same label.

    Example:
        >>> [h.label for h in parse_heads("fc,classmap:max")]
        ['fc', 'classmap-max']
    """
    if heads is None:
        heads = DEFAULT_HEADS
    items = _split_top(heads, ",") if isinstance(heads, str) else list(heads)
    specs = [h if isinstance(h, HeadSpec) else parse_head(h) for h in items]
    if not specs:
        raise ValueError("expected at least one head spec, got none")
    labels = [s.label for s in specs]
    dupes = sorted({x for x in labels if labels.count(x) > 1})
    if dupes:
        raise ValueError(
            f"head labels must be unique (they name the run directories); repeated: "
            f"{', '.join(dupes)}; add label=NAME to tell them apart"
        )
    return specs
