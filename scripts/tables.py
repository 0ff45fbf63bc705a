"""Rule tables: main, per-level (and on CUFED5 paper-vs-reproduced) tables as CSV, Markdown, LaTeX."""

from refsr.report.tables import run_tables
from refsr.scripting import run


def main(smk):
    run_tables(list(smk.input.csv), smk.params.config, smk.params.models, smk.params.datasets,
               dict(smk.output.items()), repo_dir=smk.params.repo,
               paper_dataset=smk.params.paper_dataset)


run(main, snakemake)  # noqa: F821
