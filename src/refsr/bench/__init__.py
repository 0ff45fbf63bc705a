"""Benchmarks (``refsr bench``, ``make bench``): :mod:`.swap` (matching + stitching),
:mod:`.train` (it/s), :mod:`.infer` (s/image), :mod:`.dag` (``snakemake -n``),
:mod:`.quality` (approximate matching's PSNR cost), :mod:`.suite` (all of them, JSON +
``BENCHMARKS.md``, rendered by :mod:`.markdown`)."""
