"""Inference: any registered model on any image size, and the references of each level."""
