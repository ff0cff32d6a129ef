"""Figures of merit shared by training and evaluation: PSNR/SSIM and friends, the detail band, the posterior bars."""
