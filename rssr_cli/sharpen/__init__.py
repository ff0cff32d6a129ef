"""Guided band sharpening: Sentinel-2's 20 m and 60 m bands super-resolved with the detail of its 10 m bands.

bands:   the band rule (which bands are guided, at which scales, by which guides; no torch) and the model's path.
degrade: Wald's protocol (MTF-matched Gaussian PSF, decimation, resampling at exact positions).
model:   the guided network (any scale, band identity and scales as inputs) and its checkpoint.
scene:   band arrays and statistics of a band stack.
train:   training by Wald's protocol on real scenes.
wald:    the reduced-resolution evaluation (RMSE, SRE, SAM, ERGAS) of bicubic, unguided and guided.
apply:   the guided pass over a common output grid (windows with a halo, tile-independent).
"""
