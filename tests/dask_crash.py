"""A backend that kills its worker process the first time it runs (per marker file), registered on every
worker, including restarted ones, by a Dask worker plugin. Imported by workers: keep it importable."""

from __future__ import annotations

import os
import signal
from pathlib import Path

from distributed.diagnostics.plugin import WorkerPlugin

from rssr_cli.backends import register_backend
from rssr_cli.backends.classical import ClassicalBackend


class CrashOnceBackend(ClassicalBackend):
    def __init__(self, marker: Path) -> None:
        super().__init__("bicubic")
        self.marker = marker

    def upsample(self, requests):
        try:
            fd = os.open(self.marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
        except FileExistsError:
            return super().upsample(requests)
        os.close(fd)
        os.kill(os.getpid(), signal.SIGKILL)  # mid-scene: the staging file is open, the lock is held


class RegisterCrashOnce(WorkerPlugin):
    name = "rssr-crash-once"

    def setup(self, worker) -> None:
        register_backend("crash-once", lambda model, **_: CrashOnceBackend(Path(model)))  # the marker file
