"""The training settings: every TrainConfig field with its flag, default and
documentation, read from the field's own declaration (the one place it is written)."""

from __future__ import annotations

import json

from _common import md_table, parse_args, write

DEPENDS: list[str] = []
READS: list[str] = []


def flag(name: str) -> str:
    return "--out" if name == "out_dir" else "--" + name.replace("_", "-")


def main() -> None:
    from globalpool.train.config import RANGES, setting_docs

    args = parse_args("settings")
    sections = []
    docs = setting_docs()
    for group in dict.fromkeys(d["group"] for d in docs.values()):
        rows = []
        for name, d in docs.items():
            if d["group"] != group:
                continue
            doc = d["doc"] + (f"; {RANGES[name].text()}" if name in RANGES else "")
            default = json.dumps(
                list(d["default"]) if isinstance(d["default"], tuple) else d["default"]
            )
            rows.append([f"`{name}`", f"`{flag(name)}`", f"`{default}`", doc.replace("|", "\\|")])
        sections.append(
            f"**{group}**\n\n" + md_table(["setting", "flag", "default", "what it does"], rows)
        )
    write(args, "settings.md", "\n\n".join(sections))


if __name__ == "__main__":
    main()
