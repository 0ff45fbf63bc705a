"""One module per Snakemake rule: read the rule's inputs, call the library, write its
outputs atomically. ``scripts/{rule}.py`` hands the ``snakemake`` object to a module's
``main`` through :func:`refsr.stages.runner.run`. The only layer that imports
:mod:`refsr.report`."""
