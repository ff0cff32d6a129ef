"""rssr: super-resolution of georeferenced remote-sensing rasters.

from rssr_cli import upscale, UpscaleSettings, ModelOptions  # one scene
from rssr_cli import run, RunRequest  # every run mode: batches, locks, skip rules, log
"""

from rssr_cli.core.threads import set_passive_wait_policy
from rssr_cli.core.version import __version__  # the one version string (version.py)

set_passive_wait_policy()  # before anything imports torch (libgomp reads it once, when it loads): threads.py says why

_API = (
    "upscale",
    "UpscaleSettings",
    "UpscaleResult",
    "ModelOptions",
    "run",
    "RunRequest",
    "RunReport",
    "SceneJob",
    "SceneResult",
)

__all__ = ["__version__", *_API]


def __getattr__(name: str):
    """`from rssr_cli import upscale` without importing rasterio (or anything heavy) at package import."""
    if name in _API:
        from rssr_cli import pipeline  # lazy: the package's API loads rasterio and the pipeline only when used

        return getattr(pipeline, name)
    raise AttributeError(f"module 'rssr_cli' has no attribute {name!r}")
