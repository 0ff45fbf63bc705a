"""Pretrained feature extractors (VGG19) and the weight files behind them."""
