"""Reading and writing rasters: sources, products and STAC items, radiometry, the COG output and its staging."""
