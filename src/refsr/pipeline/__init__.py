"""The pipeline's contract with Snakemake: what is built (:mod:`~refsr.pipeline.plan`: targets,
paths, each job's inputs) and with which parameters (:mod:`~refsr.pipeline.jobs`: one job spec
per rule, params apart from settings). ``workflow/rules/*.smk`` only declare, calling these;
the stages read their params and settings. No torch: the workflow imports it to build the DAG."""
