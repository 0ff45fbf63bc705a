"""Evaluation: PSNR / SSIM / LPIPS under one stated protocol, and the per-image result files."""
