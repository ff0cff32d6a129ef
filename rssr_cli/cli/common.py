"""What every `rssr` command shares: the consoles, the -q/-v options, the session (logging, warnings, errors as one
line and an exit code), option parsers, and the progress bars fed by the library's progress callbacks.

Exit codes: 0 ok, 1 processing error (bad input file, unwritable output), 2 usage error, 130/143 interrupted.
RssrError subclasses are translated here and nowhere else.
"""

from __future__ import annotations

import logging
import sys
import threading
import time
import warnings
from contextlib import contextmanager
from enum import Enum
from typing import Annotated, Any, Callable, Iterator, Optional

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from rssr_cli.core.errors import Interrupted, RssrError, RssrWarning, UsageError
from rssr_cli.core.messages import user_text
from rssr_cli.geo.band_names import parse_band_numbers
from rssr_cli.io.cog_profiles import parse_creation_options
from rssr_cli.io.raster_io import silence_libtiff
from rssr_cli.pipeline.locks import JobBusy

EXIT_PROCESSING, EXIT_USAGE = 1, 2  # and 0 for success
EXIT_JOB_BUSY = 75  # sysexits' EX_TEMPFAIL: another batch runs on the same output folder; try again later
EXIT_CODES_HELP = (
    "Exit codes: 0 ok, 1 processing error (input, output), 2 usage error, 130/143 interrupted by SIGINT/SIGTERM."
)

stderr = Console(stderr=True, highlight=False, soft_wrap=True)
stdout = Console(highlight=False, soft_wrap=True)

Quiet = Annotated[
    bool,
    typer.Option(
        "--quiet",
        "-q",
        help="No progress bar, per-scene lines or summary (for cron); errors and failed scenes are still shown.",
    ),
]
Verbose = Annotated[
    int, typer.Option("--verbose", "-v", count=True, help="Log details (-vv for debug).", show_default=False)
]


class Device(str, Enum):
    auto = "auto"
    cpu = "cpu"
    cuda = "cuda"


class Precision(str, Enum):
    auto = "auto"
    fp32 = "fp32"
    bf16 = "bf16"
    fp16 = "fp16"


def exit_code_for(error: RssrError) -> int:
    if isinstance(error, Interrupted):
        return 128 + error.signum  # 130 (SIGINT), 143 (SIGTERM): what shells and supervisors expect
    if isinstance(error, JobBusy):
        return EXIT_JOB_BUSY
    return EXIT_USAGE if isinstance(error, UsageError) else EXIT_PROCESSING


def shown(text: object) -> str:
    """Input-controlled text as rich markup for the terminal: secrets redacted, control characters escaped, markup
    escaped. Every message rssr writes to stderr passes here."""
    return escape(user_text(str(text)))


def report_error(error: BaseException | str) -> None:
    stderr.print(f"[bold red]error:[/] {shown(error)}")


class _ShownFormatter(logging.Formatter):
    """-v log lines: the message and its arguments come from inputs too."""

    def format(self, record: logging.LogRecord) -> str:
        return user_text(super().format(record))


@contextmanager
def cli_session(verbose: int = 0) -> Iterator[None]:
    """Logging and warnings set up for one command; RssrError -> one red line + exit code."""
    silence_libtiff()  # its raw "_tiffWriteProc: ..." lines would precede our one-line error
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_ShownFormatter("%(levelname)s %(name)s: %(message)s"))
    logger = logging.getLogger("rssr_cli")
    previous_level = logger.level
    if verbose:
        logger.addHandler(handler)
        logger.setLevel(logging.DEBUG if verbose > 1 else logging.INFO)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("default" if verbose else "ignore")  # third-party chatter only with -v
            warnings.simplefilter("always", RssrWarning)
            warnings.showwarning = _show_warning
            yield
    except RssrError as error:
        report_error(error)
        raise typer.Exit(exit_code_for(error)) from None
    except OSError as error:
        # Last resort for an OS error no layer put in words, e.g. a path component longer than NAME_MAX that
        # any stat() raises on: an I/O failure (exit 1) in one line, never a traceback.
        report_error(os_error_line(error))
        raise typer.Exit(EXIT_PROCESSING) from None
    finally:
        logger.removeHandler(handler)
        logger.setLevel(previous_level)


def os_error_line(error: OSError) -> str:
    reason = error.strerror or str(error)
    return f"{reason}: {error.filename}" if error.filename is not None else reason


def _show_warning(message: Any, category: type, *_: Any, **__: Any) -> None:
    label = "warning" if issubclass(category, RssrWarning) else category.__name__
    stderr.print(f"[yellow]{label}:[/] {shown(message)}")


def comma_list(values: Optional[list[str]]) -> list[str]:
    """Repeated and/or comma-separated option values, like gdal_translate -b: ['1,3', '4'] -> ['1', '3', '4']."""
    return [part.strip() for value in values or [] for part in value.split(",") if part.strip()]


def parse_bands(values: Optional[str | list[str]]) -> Optional[tuple[int, ...]]:
    """'1,3,4' (or -b 1 -b 3 -b 4) -> (1, 3, 4); 1-based like GDAL."""
    if values is None or values == []:
        return None
    given = [values] if isinstance(values, str) else values
    try:
        bands = parse_band_numbers(",".join(comma_list(given)))
    except UsageError as error:
        raise typer.BadParameter(str(error)) from None
    return bands


def parse_band_selection(values: Optional[list[str]]) -> Optional[tuple[int | str, ...]]:
    """upscale/info --bands: '1,3,4' -> (1, 3, 4) (1-based like GDAL); 'B04,B08' -> ('B04', 'B08') (band names:
    descriptions, or Sentinel-2 ids and common names for products); 'all' -> ('all',). Repeatable."""
    if not values:
        return None
    parts = comma_list(values)
    if not parts:
        raise typer.BadParameter("no band given")
    if any(part.lower() == "all" for part in parts) and len(parts) > 1:
        raise typer.BadParameter(f"'all' stands alone, got {','.join(values)!r}")
    return tuple(int(part) if part.isdigit() else part for part in parts)


def check_creation_options(values: Optional[list[str]]) -> Optional[list[str]]:
    """Shared --co callback: reject a malformed NAME=VALUE as a usage error before anything runs."""
    try:
        parse_creation_options(values or [])
    except UsageError as error:
        raise typer.BadParameter(str(error)) from None
    return values


def progress_columns() -> tuple:
    return (
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
    )


def window_progress(bar: Progress, task: TaskID, label: str, finishing: str) -> Callable[[int, int], None]:
    """A progress(done, total) callback for one bar. Once every window is done the library is still at work (fidelity,
    the COG build with its overviews: most of a large classical run): the bar turns into a pulse labelled `finishing`
    rather than sitting at 100 %."""

    def update(done: int, total: int) -> None:
        if done < total:
            bar.update(task, completed=done, total=total, description=label)
        else:
            bar.update(task, completed=done, total=None, description=finishing)

    return update


def format_duration(seconds: float) -> str:
    """12 s, 3m05s, 2h07m."""
    seconds = max(0, int(round(seconds)))
    if seconds < 60:
        return f"{seconds} s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"


def line_progress(
    label: str, finishing: str = "writing COG", clock: Callable[[], float] = time.monotonic
) -> Callable[[int, int], None]:
    """A progress(done, total) callback for a stderr that is no terminal (a cron log, a pipe): a line per 10 % of
    the windows with the time elapsed and an ETA, then one when the library goes on to `finishing`."""
    started, lock = clock(), threading.Lock()
    reported = [0]  # the last tenth printed

    def update(done: int, total: int) -> None:
        if total <= 0:
            return
        tenth = min(10, done * 10 // total)
        with lock:
            if tenth <= reported[0]:
                return
            reported[0] = tenth
            elapsed = clock() - started
            line = f"{label}: {tenth * 10} % ({done}/{total} windows), {format_duration(elapsed)} elapsed"
            if done < total:
                line += f", ETA {format_duration(elapsed * (total - done) / max(done, 1))}"
            else:
                line += f"; {finishing}"
            stderr.print(escape(line))

    return update


@contextmanager
def progress_bar(enabled: bool, label: str, finishing: str = "writing COG") -> Iterator[Any]:
    """A rich progress bar on stderr fed by the API's progress(done, total) callback; a line per 10 % when stderr
    is no terminal (line_progress); None when disabled (-q)."""
    if not enabled:
        yield None
        return
    if not stderr.is_terminal:
        yield line_progress(label, finishing)
        return
    with Progress(*progress_columns(), console=stderr, transient=True) as bar:
        yield window_progress(bar, bar.add_task(label, total=None), label, finishing)
