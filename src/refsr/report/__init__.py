"""Tables and figures regenerated from the pipeline's CSV results."""
