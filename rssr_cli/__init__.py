"""rssr: super-resolution of georeferenced remote-sensing rasters."""

__version__ = "0.1.0"
