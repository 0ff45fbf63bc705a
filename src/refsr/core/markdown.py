"""GitHub-flavoured Markdown tables: the one place that formats them (header, separator, rows).

Every Markdown table the package writes goes through :func:`markdown_lines` — the report's
tables (:func:`refsr.report.render.md_table`), the tier agreement table
(:func:`frame_table`) and ``BENCHMARKS.md`` (:mod:`refsr.bench.markdown`). It lives in the
lowest layer so that every layer, the benchmarks included, may use it.

A row is ``| a | b |``; an empty cell is written ``| |``. Cells are written as given (no
escaping of ``|``): the callers' cells never contain one.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

#: Column alignment codes and their separator cells: none, left, right, centre.
ALIGN = {"-": "---", "l": ":---", "r": "---:", "c": ":---:"}


def _row(cells: Sequence[object]) -> str:
    return "|" + "|".join(f" {c} " if str(c) else " " for c in cells) + "|"


def markdown_lines(header: Sequence[object], rows: Sequence[Sequence[object]],
                   align: str | Sequence[str] | None = None) -> list[str]:
    """The lines of a table: header, separator, one per row (no trailing newline).

    ``align``: one code per column (``-`` none, ``l`` left, ``r`` right, ``c`` centre), e.g.
    ``"lrr"``; None leaves every column unaligned (``---``). A row with another number of cells
    than the header is an error.
    """
    n = len(header)
    codes = ["-"] * n if align is None else list(align)
    if len(codes) != n or not set(codes) <= set(ALIGN):
        raise ValueError(f"align {align!r}: give one of {', '.join(ALIGN)} for each of the {n} columns")
    lines = [_row(header), "|" + "|".join(ALIGN[c] for c in codes) + "|"]
    for i, row in enumerate(rows):
        if len(row) != n:
            raise ValueError(f"row {i} has {len(row)} cells, the header {n}: {list(row)!r}")
        lines.append(_row(row))
    return lines


def markdown_table(header: Sequence[object], rows: Sequence[Sequence[object]],
                   align: str | Sequence[str] | None = None) -> str:
    """The table as text, ending with a newline (:func:`markdown_lines`)."""
    return "\n".join(markdown_lines(header, rows, align)) + "\n"


def fmt(value, digits: int = 3) -> str:
    """A cell of :func:`frame_table`: floats to ``digits`` decimals, NaN as an em dash."""
    if isinstance(value, float):
        if math.isnan(value):
            return "—"
        return f"{value:.{digits}f}"
    return str(value)


def frame_table(df, digits: int = 3, align: str | Sequence[str] | None = None) -> str:
    """A pandas DataFrame as a table: its columns as the header, cells by :func:`fmt`."""
    rows = [[fmt(v, digits) for v in row] for row in df.itertuples(index=False)]
    return markdown_table([str(c) for c in df.columns], rows, align)
