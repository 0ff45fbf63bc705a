"""Rule tables: main, per-level (and on CUFED5 paper-vs-reproduced) tables as CSV, Markdown, LaTeX."""

from refsr.stages.runner import run
from refsr.stages.tables import main

run(main, snakemake)  # noqa: F821
