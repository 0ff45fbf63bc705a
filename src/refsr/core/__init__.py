"""The lowest layer: one-line errors, atomic outputs, image IO, progress, the validated config."""
