"""Training: the config of a run, its data, losses, the resumable trainer, preemption and
data-parallel launch."""
