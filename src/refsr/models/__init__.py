"""Networks of the registered methods (:mod:`.registry`), built and saved by :mod:`.checkpoint`.

Importing this package is light: the registry needs no torch, so the workflow reads it
while it builds the DAG. One architecture per module: :mod:`.srresnet` (and the building
blocks SRNTT shares), :mod:`.srntt`, :mod:`.discriminator` (the WGAN-GP critic).
"""
