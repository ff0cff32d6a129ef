"""Smooth random textures shared by several test folders: detail that interpolators can recover, periodic so that
Fourier shifts are exact."""

from __future__ import annotations

import numpy as np


def smooth_field(h: int, w: int, bands: int = 3, sigma: float = 2.5, seed: int = 0) -> np.ndarray:
    """Smooth random texture in [0, 1], [bands, h, w]: has detail that interpolators can recover."""
    rng = np.random.default_rng(seed)
    ky, kx = np.fft.fftfreq(h)[:, None], np.fft.fftfreq(w)[None, :]
    lowpass = np.exp(-2 * (np.pi * sigma) ** 2 * (ky**2 + kx**2))
    x = np.real(np.fft.ifft2(np.fft.fft2(rng.standard_normal((bands, h, w))) * lowpass))
    return (x - x.min()) / (x.max() - x.min())


def smooth_random(shape: tuple[int, ...], sigma: float = 3.0, seed: int = 0) -> np.ndarray:
    """Periodic smooth noise: white noise low-passed by a Gaussian in the Fourier domain."""
    rng = np.random.default_rng(seed)
    h, w = shape[-2:]
    ky, kx = np.fft.fftfreq(h)[:, None], np.fft.fftfreq(w)[None, :]
    lowpass = np.exp(-2 * (np.pi * sigma) ** 2 * (ky**2 + kx**2))
    return np.real(np.fft.ifft2(np.fft.fft2(rng.standard_normal(shape)) * lowpass))
