"""Window arithmetic on `rasterio.windows.Window` values: integer edges, clipping, halos (no I/O).

One home for what was written by hand as `row_off + height` in many places: a window's edges come from
`edges`, a halo from `grow`, a window inside a raster from `clip`; JSON and logs take `as_tuple`.
"""

from __future__ import annotations

from typing import NamedTuple

from rasterio.windows import Window


class Edges(NamedTuple):
    """Integer pixel edges of a window: rows [top, bottom), columns [left, right)."""

    top: int
    bottom: int
    left: int
    right: int


def edges(window: Window) -> Edges:
    """The window's integer edges (offsets and sizes truncated to int, as every rssr window is integral)."""
    top, left = int(window.row_off), int(window.col_off)
    return Edges(top, top + int(window.height), left, left + int(window.width))


def from_edges(top: int, bottom: int, left: int, right: int) -> Window:
    """The window with these edges (an empty window where bottom <= top or right <= left)."""
    return Window(left, top, max(0, right - left), max(0, bottom - top))


def clip(window: Window, height: int, width: int) -> Window:
    """The part of `window` inside a height x width raster."""
    e = edges(window)
    return from_edges(max(0, e.top), min(height, e.bottom), max(0, e.left), min(width, e.right))


def grow(window: Window, halo: int, height: int, width: int) -> Window:
    """`window` with `halo` pixels added on every side, clipped to a height x width raster."""
    e = edges(window)
    return clip(from_edges(e.top - halo, e.bottom + halo, e.left - halo, e.right + halo), height, width)


def overlaps(a: Window, b: Window) -> bool:
    """True when the two windows share at least one pixel (an empty window shares none)."""
    ea, eb = edges(a), edges(b)
    top, bottom = max(ea.top, eb.top), min(ea.bottom, eb.bottom)
    left, right = max(ea.left, eb.left), min(ea.right, eb.right)
    return top < bottom and left < right


def as_tuple(window: Window) -> tuple[int, int, int, int]:
    """(col_off, row_off, width, height) as ints: the form JSON reports and logs carry."""
    return int(window.col_off), int(window.row_off), int(window.width), int(window.height)
