"""``globalpool pools``: the pooling registry as a table (name, summary, formula)."""

from __future__ import annotations


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "pools",
        help="list the global pooling operators",
        description="List every registered global pooling operator with its formula.",
    )
    parser.add_argument("--markdown", action="store_true", help="print a Markdown table (for docs)")
    parser.set_defaults(func=run)


def format_table(rows: list[tuple[str, ...]], markdown: bool = False) -> str:
    """Rows (the first is the header) as an aligned plain-text or Markdown table."""
    if markdown:
        lines = ["| " + " | ".join(rows[0]) + " |", "|" + "---|" * len(rows[0])]
        lines += [
            "| " + " | ".join(f"`{c}`" if i == 2 else c for i, c in enumerate(r)) + " |"
            for r in rows[1:]
        ]
        return "\n".join(lines)
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def run(args) -> int:
    from globalpool.pool import list_pools, pool_entry

    rows = [("name", "summary", "formula")]
    for name in list_pools():
        entry = pool_entry(name)
        rows.append((name, entry.summary, entry.formula))
    print(format_table(rows, markdown=args.markdown))
    return 0
