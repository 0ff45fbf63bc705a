"""Plain Markdown tables (no extra dependency)."""

from __future__ import annotations

import math

import pandas as pd


def fmt(value, digits: int = 3) -> str:
    """Format a cell: floats to ``digits`` decimals, NaN as an em dash."""
    if isinstance(value, float):
        if math.isnan(value):
            return "—"
        return f"{value:.{digits}f}"
    return str(value)


def markdown_table(df: pd.DataFrame, digits: int = 3) -> str:
    """``df`` as a GitHub-flavoured Markdown table."""
    cols = [str(c) for c in df.columns]
    lines = ["| " + " | ".join(cols) + " |", "|" + "|".join("---" for _ in cols) + "|"]
    for row in df.itertuples(index=False):
        lines.append("| " + " | ".join(fmt(v, digits) for v in row) + " |")
    return "\n".join(lines) + "\n"
