"""Running the `rssr` CLI in-process (typer's CliRunner) and reading its one-line errors, shared by the CLI tests."""

from __future__ import annotations

from typer.testing import CliRunner

from rssr_cli.cli import app

runner = CliRunner()


def run(*args):
    return runner.invoke(app, [str(a) for a in args])


def upscale_with_model(src, dst, model, *extra):
    """`rssr upscale SRC -o DST -s 2 --model MODEL` on one CPU thread (the tiny-model CLI tests), plus `extra`."""
    return run("upscale", src, "-o", dst, "-s", 2, "--model", model, "--device", "cpu", "--threads", 1, *extra)


def one_error_line(result) -> str:
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:"), result.stderr
    assert "Traceback" not in result.output
    return lines[0]
