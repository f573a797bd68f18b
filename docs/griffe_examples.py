"""A griffe extension for the API pages: the project's docstrings title their runnable
examples ``Example:`` (Keras style); griffe's Google parser knows only ``Examples:`` as an
examples section (rendered as Python console blocks), so rename the title on load."""

from __future__ import annotations

import re

import griffe

_EXAMPLE = re.compile(r"^(\s*)Example:\s*$", re.MULTILINE)


class ExampleSection(griffe.Extension):
    def on_instance(self, *, obj: griffe.Object, **kwargs) -> None:
        if obj.docstring is not None:
            obj.docstring.value = _EXAMPLE.sub(r"\1Examples:", obj.docstring.value)
