"""The JSON log of a run (one line per scene, flushed at once) and the paths it may never take."""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path
from typing import Optional, Sequence, TextIO

from rssr_cli.core.errors import OutputError, UsageError
from rssr_cli.io.destination import staging_prefix
from rssr_cli.io.products import is_input_path
from rssr_cli.pipeline.jobs import SceneJob
from rssr_cli.pipeline.locks import lock_path
from rssr_cli.pipeline.report import sidecar_paths
from rssr_cli.pipeline.scenes import SceneResult


class JsonLog:
    """Appends one JSON line per scene to a file, flushed at once (monitoring tails it during the batch)."""

    def __init__(self, path: Optional[Path]) -> None:
        self.path = path
        self._file: Optional[TextIO] = None
        self._failed = False

    def __enter__(self) -> "JsonLog":
        if self.path is not None:
            # Never through a symlink (one planted in a shared output folder would aim the log at a victim);
            # O_NONBLOCK so that a FIFO without a reader is refused instead of hanging the cron job.
            flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK
            try:
                fd = os.open(self.path, flags, 0o644)
            except OSError as exc:
                if exc.errno == errno.ELOOP:
                    raise UsageError(f"--log-json {self.path} is a symbolic link; give the file itself") from None
                raise UsageError(f"cannot open --log-json {self.path}: {exc.strerror or exc}") from exc
            mode = os.fstat(fd).st_mode
            if not (stat.S_ISREG(mode) or stat.S_ISCHR(mode)):
                os.close(fd)
                raise UsageError(f"--log-json {self.path} is not a regular file")
            os.set_blocking(fd, True)
            self._file = os.fdopen(fd, "a", encoding="utf-8")
        return self

    def write(self, scene: SceneResult) -> None:
        """Append and flush one line; a log that cannot take it (a full disk, /dev/full) is an OutputError
        that says what happened to the scene, since its output may well have been written."""
        if self._file is None:
            return
        try:
            self._file.write(scene.to_json() + "\n")
            self._file.flush()
        except OSError as exc:
            self._failed = True
            raise OutputError(
                f"cannot append to --log-json {self.path}: {exc.strerror or exc} "
                f"(scene {scene.input} -> {scene.output}: {scene.status})"
            ) from None

    def __exit__(self, exc_type: Optional[type], *_: object) -> None:
        if self._file is None:
            return
        try:
            self._file.close()
        except OSError as exc:  # already reported (a failed write), or another error is on its way out
            if exc_type is None and not self._failed:
                raise OutputError(f"cannot write --log-json {self.path}: {exc.strerror or exc}") from None


def check_log_path(log: Optional[Path], jobs: Sequence[SceneJob]) -> None:
    """The JSON log may never be an input, an output, or a file rssr keeps beside an output (its lock, its
    staging directories, its fidelity sidecars): appending JSON there would corrupt an input or leave a
    stray file at the destination. Refused (usage error) before any work."""
    if log is None:
        return
    real_log = Path(os.path.realpath(log))
    for job in jobs:
        if _same_file(real_log, job.src):
            raise UsageError(f"--log-json {log} is the input {job.src}; give a separate log file")
        if is_input_path(real_log, job.src):
            raise UsageError(f"--log-json {log} is a file the run reads (input {job.src}); give a separate log file")
        folder = Path(os.path.realpath(job.dst.parent))
        beside = {job.dst.name: "the output", lock_path(job.dst).name: "the output's lock file"}
        beside.update({sidecar.name: "a fidelity report of the output" for sidecar in sidecar_paths(job.dst)})
        if real_log.parent == folder and real_log.name in beside:
            raise UsageError(f"--log-json {log} is {beside[real_log.name]} {job.dst}; give a separate log file")
        inside = real_log.relative_to(folder).parts if real_log.is_relative_to(folder) else ()
        if len(inside) > 1 and inside[0].startswith(staging_prefix(job.dst)):
            raise UsageError(f"--log-json {log} is inside the staging area of {job.dst}; give a separate log file")


def _same_file(real_log: Path, src: str) -> bool:
    if real_log == Path(os.path.realpath(src)):
        return True
    try:
        return os.path.samefile(real_log, src)  # hard links too
    except OSError:
        return False
