"""Markdown tables of DataFrames: the report layer's name for :func:`refsr.core.markdown.frame_table`
(the one table writer is :mod:`refsr.core.markdown`)."""

from __future__ import annotations

from refsr.core.markdown import fmt
from refsr.core.markdown import frame_table as markdown_table

__all__ = ["fmt", "markdown_table"]
