"""rssr: super-resolution of georeferenced remote-sensing rasters."""

__version__ = "0.1.0"

__all__ = ["__version__", "upscale", "UpscaleSettings", "UpscaleResult"]


def __getattr__(name: str):
    """`from rssr_cli import upscale` without importing rasterio (or anything heavy) at package import."""
    if name in ("upscale", "UpscaleSettings", "UpscaleResult"):
        from . import pipeline

        return getattr(pipeline, name)
    raise AttributeError(f"module 'rssr_cli' has no attribute {name!r}")
