"""`rssr` command line, a thin layer over the library: each command parses its options into one settings value,
makes one library call, and renders the result. Modules: app (the Typer app, --version, one-line usage errors),
common (shared options, session, errors -> exit codes, progress bars), render (text and JSON), and one module per
command (upscale, info, evaluate, train). To add a command: write its library function, then a module here with a
function that calls it inside `with cli_session(verbose):`, registered in app.py."""

from rssr_cli.cli.app import app, main

__all__ = ["app", "main"]
