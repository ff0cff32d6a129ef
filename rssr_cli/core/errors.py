"""Error tree: a root RssrError whose subclasses also inherit a builtin, translated to exit codes only at the CLI."""


class RssrError(Exception):
    """Root of every error rssr raises on purpose; its message is one line meant for the user."""

    # Work done before a run failed (set by pipeline.scene.render_scene), so the JSON log says what was processed.
    windows: int = 0
    skipped_windows: int = 0


class InputError(RssrError, ValueError):
    """The input raster cannot be used (missing, unreadable, unsupported dtype or geometry)."""


class OutputError(RssrError, OSError):
    """The output cannot be written (exists without --overwrite, directory not writable)."""


class UsageError(RssrError, ValueError):
    """An option value is invalid (scale <= 1, band out of range, unknown method)."""


class CheckpointError(RssrError, ValueError):
    """A model checkpoint is missing, corrupt, or does not match its card or the input."""


class FidelityError(RssrError, RuntimeError):
    """The output failed a fidelity check the user set (--max-shift, --max-consistency-error); it was not written."""

    def __init__(self, message: str, figures: "dict | None" = None) -> None:
        super().__init__(message)
        self.figures = figures  # the report's key figures, for a batch's JSON log


class ClusterError(RssrError, ConnectionError):
    """The Dask scheduler cannot be reached: the environment failed (exit 1), the request itself is fine."""


class Interrupted(RssrError):
    """The run was interrupted by SIGINT/SIGTERM; nothing was left at the destination. The CLI exits 128 + signum
    (130 for SIGINT, 143 for SIGTERM), as shells and supervisors expect."""

    def __init__(self, message: str, signum: int = 2) -> None:
        super().__init__(message)
        self.signum = signum


class RssrWarning(UserWarning):
    """A recoverable surprise (e.g. no CRS: the output is written on the pixel grid only)."""
