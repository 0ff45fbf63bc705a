"""How similar a reference is to an image: scores per (image, reference) pair, and tiers."""
