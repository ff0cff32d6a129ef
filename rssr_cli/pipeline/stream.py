"""Streaming one scene's tiles: per tile row, read each halo window, normalize and fill its nodata, run the backend
in batches, blend the patches (blend.py) and hand the output rows no later tile touches to a writer. A plan with a
spread layer (--samples K >= 2, spread.py) asks the backend for each patch's spread too and blends it alongside."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, Callable, Optional, Sequence, cast

import numpy as np
from rasterio.io import DatasetReader
from rasterio.windows import Window

from rssr_cli.backends import SpreadBackend, SRBackend, SRRequest, writes_spread
from rssr_cli.geo.grid import OutputGrid, Tile, tile_seed
from rssr_cli.io.radiometry import normalize
from rssr_cli.io.raster_io import MaskKind, fill_invalid, read_window
from rssr_cli.pipeline.blend import (
    FinishedRows,
    RowAccumulator,
    SpreadTarget,
    hr_validity,
    tile_blend_weights,
    write_blended,
)
from rssr_cli.pipeline.plan import RunPlan
from rssr_cli.pipeline.resume import StreamState
from rssr_cli.pipeline.settings import Progress

log = logging.getLogger(__name__)


def plan_writer(writer: Any, plan: RunPlan, spread_writer: Any = None) -> Callable[[FinishedRows], None]:
    """stream_tiles' `write` for an output written as the plan says (its spec, region and radiometry), and for its
    spread side-car's intermediate when the plan has one (`spread_writer`)."""
    if (spread_writer is None) != (plan.spread is None):
        raise ValueError("a plan with a spread layer needs its writer, and only such a plan")
    spread = SpreadTarget(spread_writer, plan.spread.spec) if plan.spread is not None else None
    return lambda rows: write_blended(
        writer, rows, spec=plan.output, region=plan.region, radiometry=plan.radiometry, spread=spread
    )


@dataclass(frozen=True)
class PreparedWindow:
    """A tile's LR input ready for the backend; request is None when the window is entirely nodata."""

    tile: Tile
    request: Optional[SRRequest]
    valid: np.ndarray  # LR validity of the halo window, [bands, h, w]


def model_input(dataset: DatasetReader, plan: RunPlan, window: Window) -> tuple[Optional[np.ndarray], np.ndarray]:
    """A window's values for the backend (normalized, nodata filled; None when entirely nodata) and its validity."""
    data, valid = read_window(dataset, plan.source, plan.bands, window)
    if not valid.any():
        return None, valid
    return fill_invalid(normalize(data, plan.radiometry), valid), valid


def prepare_window(dataset: DatasetReader, plan: RunPlan, tile: Tile) -> PreparedWindow:
    """Read a halo window, normalize it and fill its nodata so the backend sees only plausible values."""
    values, valid = model_input(dataset, plan, tile.halo)
    if values is None:
        return PreparedWindow(tile, None, valid)
    return PreparedWindow(
        tile, SRRequest(values, tile.hr, tile_seed(plan.settings.seed, tile), plan.scene_stats), valid
    )


Patch = tuple[np.ndarray, Optional[np.ndarray]]  # a window's HR values and, with a spread layer, their spread


def upsample_windows(backend: SRBackend, windows: Sequence[PreparedWindow], *, spread: bool = False) -> list[Patch]:
    """One backend call for a batch of windows that have data; checks the contract on the way back. `spread`:
    ask a SpreadBackend for each patch's spread too (else it is None)."""
    requests = [w.request for w in windows if w.request is not None]
    if len(requests) != len(windows):
        raise ValueError(
            f"{len(windows) - len(requests)} of {len(windows)} windows have no data: only windows with data go to the backend"
        )
    patches: list[Patch]
    if spread:
        if not writes_spread(backend):
            raise ValueError(f"backend {backend.name!r} draws one sample per window: it has no spread to give")
        patches = list(cast(SpreadBackend, backend).upsample_with_spread(requests))
    else:
        patches = [(patch, None) for patch in backend.upsample(requests)]
    if len(patches) != len(windows):
        raise ValueError(f"backend {backend.name!r} returned {len(patches)} patches for {len(windows)} windows")
    for window, request, (patch, spread_patch) in zip(windows, requests, patches):
        expected = (len(request.lr), window.tile.hr.height, window.tile.hr.width)
        for what, array in (("patch", patch), ("spread", spread_patch)):
            if array is not None and array.shape != expected:
                raise ValueError(
                    f"backend {backend.name!r} returned a {what} of shape {array.shape}, expected {expected}"
                )
    return patches


def stream_tiles(
    dataset: DatasetReader,
    plan: RunPlan,
    backend: SRBackend,
    write: Callable[[FinishedRows], None],
    progress: Optional[Progress] = None,
    *,
    state: Optional[StreamState] = None,
    after_row: Optional[Callable[[], None]] = None,
) -> int:
    """Process tile rows top to bottom, handing finished output rows to `write`; returns the skipped window count.

    After tile row r, output rows above tile row r+1's first HR row get no more contributions, so
    they are written and dropped: the accumulator spans about one tile row of output at any time.
    Windows with data are batched (batch_size per backend call) within a row; all-nodata ones are skipped.

    `state` records how far the stream got (updated after each tile row, before `after_row` is called). A state
    from an interrupted run of the same plan (resume.py) resumes it: tile rows whose patches all end above
    `state.rows_written` are not computed again, and the rows already written are recomputed only where the next
    ones overlap them, never rewritten. Progress then counts the windows computed, of those left.
    """
    grid, tiles = plan.grid, plan.tiles
    state = state if state is not None else StreamState()
    resume_row = state.rows_written
    first = _first_row_to_compute(tiles, grid.height, resume_row)
    del state.skipped[first:]
    top = min([resume_row, *(int(t.out.row_off) for t in tiles[first])]) if 0 < first < len(tiles) else None
    track_validity = plan.source.mask_kind != MaskKind.NONE
    accumulator = RowAccumulator(
        len(plan.bands), plan.region.window, track_validity=track_validity, spread=plan.spread is not None, top=top
    )
    # A resumed stream counts only the windows it computes, so a progress line's ETA is of the work left.
    counter = _ProgressCounter(windows_left(tiles, grid.height, resume_row), progress)
    if first == len(tiles) and first > 0:
        log.info("resuming: every row of the %d windows is written", plan.window_count)
    elif first > 0:
        log.info(
            "resuming at tile row %d of %d: %d of %d windows left",
            first + 1,
            len(tiles),
            counter.total,
            plan.window_count,
        )
    for r in range(first, len(tiles)):
        row, last, skipped = tiles[r], r + 1 == len(tiles), 0
        # The last row also opens the region's rows below every kept tile (an AOI's edge rows may have none).
        accumulator.extend_to(grid.height if last else max(int(t.out.row_off + t.out.height) for t in row))
        pending: list[PreparedWindow] = []
        for tile in row:
            window = prepare_window(dataset, plan, tile)
            _record_validity(accumulator, window, grid)
            if window.request is None:
                skipped += 1
                counter.advance(1)
            else:
                pending.append(window)
            if len(pending) == plan.settings.batch_size:
                _blend_batch(backend, pending, accumulator, plan)
                counter.advance(len(pending))
                pending = []
        if pending:
            _blend_batch(backend, pending, accumulator, plan)
            counter.advance(len(pending))
        final_row = grid.height if last else int(tiles[r + 1][0].out.row_off)
        accumulator.pop_until(min(final_row, resume_row))  # a resumed stream: rows already on disk are not rewritten
        finished = accumulator.pop_until(final_row)
        if finished is not None:
            write(finished)
        state.rows_written = max(state.rows_written, final_row)
        state.skipped.append(skipped)
        if after_row is not None:
            after_row()
    return sum(state.skipped)


def _first_row_to_compute(tiles: Sequence[Sequence[Tile]], height: int, rows_written: int) -> int:
    """The first tile row whose patches reach output row `rows_written` or below (len(tiles): none left), of a
    stream over `tiles` on a grid `height` rows high."""
    for r, row in enumerate(tiles):
        bottom = height if r + 1 == len(tiles) else max(int(t.out.row_off + t.out.height) for t in row)
        if bottom > rows_written:
            return r
    return len(tiles)


def windows_left(tiles: Sequence[Sequence[Tile]], height: int, rows_written: int) -> int:
    """The windows a stream resumed at `rows_written` computes (stream_tiles: those of the rows from
    _first_row_to_compute on)."""
    return sum(len(row) for row in tiles[_first_row_to_compute(tiles, height, rows_written) :])


def _record_validity(accumulator: RowAccumulator, window: PreparedWindow, grid: OutputGrid) -> None:
    if accumulator.tracks_validity:
        accumulator.set_validity(window.tile.out, hr_validity(window.valid, window.tile, grid))


def _blend_batch(
    backend: SRBackend, batch: Sequence[PreparedWindow], accumulator: RowAccumulator, plan: RunPlan
) -> None:
    assert plan.settings.overlap is not None, "a RunPlan's settings have their tiling filled in (auto_tiling)"
    for window, (patch, spread) in zip(batch, upsample_windows(backend, batch, spread=accumulator.tracks_spread)):
        accumulator.add(
            window.tile.out, patch, tile_blend_weights(window.tile, plan.grid, plan.settings.overlap), spread
        )


class _ProgressCounter:
    """Counts finished windows and reports (done, total) to the optional callback."""

    def __init__(self, total: int, callback: Optional[Progress]) -> None:
        self.total, self.done, self.callback = total, 0, callback

    def advance(self, n: int) -> None:
        self.done += n
        if self.callback is not None:
            self.callback(self.done, self.total)
