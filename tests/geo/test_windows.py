"""rssr_cli.geo.windows: window edges, clipping, halos and overlap as values."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st
from rasterio.windows import Window, intersect

from rssr_cli.geo.windows import as_tuple, clip, edges, from_edges, grow, overlaps

small = st.integers(-20, 60)
size = st.integers(0, 40)


def test_edges_and_back():
    w = Window(3, 5, 7, 11)
    assert edges(w) == (5, 16, 3, 10) and edges(w).bottom == 16 and edges(w).right == 10
    assert as_tuple(from_edges(*edges(w))) == (3, 5, 7, 11)
    assert as_tuple(from_edges(4, 2, 0, 3)) == (0, 4, 3, 0)  # an empty window, never a negative size


def test_clip_and_grow():
    assert as_tuple(clip(Window(-2, 3, 10, 10), 8, 6)) == (0, 3, 6, 5)
    assert as_tuple(grow(Window(0, 4, 4, 4), 2, 10, 5)) == (0, 2, 5, 8)


@given(c=small, r=small, w=size, h=size, c2=small, r2=small, w2=size, h2=size)
def test_overlaps_is_rasterios_intersect_on_non_empty_windows(c, r, w, h, c2, r2, w2, h2):
    a, b = Window(c, r, w, h), Window(c2, r2, w2, h2)
    expected = w > 0 and h > 0 and w2 > 0 and h2 > 0 and intersect(a, b)
    assert overlaps(a, b) == expected
