"""Geometry every path shares, without pixels' I/O or torch: output grids, windows, regions, cubic kernels, band
names, co-registration."""
