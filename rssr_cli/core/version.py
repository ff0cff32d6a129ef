"""The one version string of rssr: pyproject.toml reads it (dynamic version), rssr_cli.__version__ re-exports it,
provenance tags and checkpoint cards carry it. Its own module so that no part of the package imports the package
root (whose lazy API would close a cycle through the pipeline)."""

__version__ = "0.1.0"
