"""refsr: reference-based super-resolution (SRNTT) as a reproducible pipeline."""

__version__ = "0.1.0"
