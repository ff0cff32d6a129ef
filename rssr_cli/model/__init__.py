"""Model pieces (torch only; no rasterio): operator prior, prior features, denoiser, diffusion, samplers."""
