"""The one Markdown table writer (refsr.core.markdown) and the tables written through it."""

from __future__ import annotations

import pandas as pd
import pytest

from refsr.core.markdown import frame_table, markdown_lines, markdown_table
from refsr.report.markdown import markdown_table as report_frame_table
from refsr.report.render import md_table


def test_header_separator_rows_alignment_and_empty_cells():
    assert markdown_table(["a", "b", "c", ""], [["1", "", "x", "y"]], "lrc-") == (
        "| a | b | c | |\n|:---|---:|:---:|---|\n| 1 | | x | y |\n")
    assert markdown_table(["a", "b"], []) == "| a | b |\n|---|---|\n"
    assert markdown_lines(["n"], [[3]]) == ["| n |", "|---|", "| 3 |"]  # cells need not be strings


@pytest.mark.parametrize("header, rows, align", [
    (["a", "b"], [["1"]], None),  # a short row
    (["a"], [["1", "2"]], None),  # a long row
    (["a", "b"], [], "l"),  # one alignment code too few
    (["a", "b"], [], "lx"),  # an unknown code
])
def test_malformed_tables_are_errors(header, rows, align):
    with pytest.raises(ValueError):
        markdown_table(header, rows, align)


def test_report_tables_go_through_it():
    # the report's convention: first column left, the others right
    assert md_table(["Model", "L1", "L2"], [["srntt", "25.00", "—"]]) == (
        "| Model | L1 | L2 |\n|:---|---:|---:|\n| srntt | 25.00 | — |\n")
    df = pd.DataFrame({"score": ["local", "vgg"], "rho": [-0.5, float("nan")], "n": [3, 4]})
    text = "| score | rho | n |\n|---|---|---|\n| local | -0.500 | 3 |\n| vgg | — | 4 |\n"
    assert frame_table(df) == report_frame_table(df) == text
    assert frame_table(df, digits=1).splitlines()[2] == "| local | -0.5 | 3 |"


def test_benchmark_tables_go_through_it():
    from refsr.bench.markdown import render_table

    text = render_table({"infer": {"hr_size": "500x332", "lr_size": "125x83", "tile": 0, "note": "n",
                                   "rows": [{"model": "srntt", "size": "default", "match_mode": None,
                                             "seconds": 1.0}]},
                         "dag": {"error": "boom"}})
    assert ("| model | network | matching | s / image |\n|---|---|---|---:|\n| srntt | default | – | 1.000 |\n"
            "| all models | GPU | | not yet measured |\n") in text
    assert "| what | seconds |\n|---|---:|\n| snakemake -n | error: boom |\n" in text
    # the swapping table: every row as wide as the header, even with no result
    swap = [line for line in text.splitlines() if line.startswith("| any |")]
    assert swap == ["| any | GPU (TF32/bf16), exact and approximate | not yet measured | | | | | | | | | |"]
