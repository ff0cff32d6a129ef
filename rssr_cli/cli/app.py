"""The `rssr` Typer app: one module per command (upscale, info, evaluate, train) registered here, `--version`,
shell completion (typer's --install-completion / --show-completion), and Click's usage errors as one line."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Annotated, Any, Optional, Sequence

import typer

from rssr_cli.cli.common import EXIT_CODES_HELP, EXIT_PROCESSING, exit_code_for, report_error, stderr, stdout
from rssr_cli.cli.evaluate import evaluate_command
from rssr_cli.cli.info import info_command
from rssr_cli.cli.train import train_command, train_sharpener_command
from rssr_cli.cli.upscale import BATCH_EXIT_HELP, upscale_command
from rssr_cli.core.errors import RssrError
from rssr_cli.core.version import __version__

# Click's exception base: typer >= 0.20 vendors its own click, older versions re-export click's.
if TYPE_CHECKING:  # found at run time, so mypy sees the class of the typer it checks against (the dev environment's)
    from typer._click.exceptions import ClickException
else:
    ClickException = next(cls for cls in typer.BadParameter.__mro__ if cls.__name__ == "ClickException")


class OneLineUsageErrors(typer.core.TyperGroup):
    """Click's usage errors (a missing or unparseable option) as the one `error:` line and exit 2 that every
    other refusal gives, instead of Typer's boxed usage text: a cron log greps one line per failure."""

    def main(
        self,
        args: Optional[Sequence[str]] = None,
        prog_name: Optional[str] = None,
        complete_var: Optional[str] = None,
        standalone_mode: bool = True,
        windows_expand_args: bool = True,
        **extra: Any,
    ) -> Any:
        try:
            code = super().main(
                args, prog_name, complete_var, standalone_mode=False, windows_expand_args=windows_expand_args, **extra
            )
        except ClickException as error:
            if type(error).__name__ != "NoArgsIsHelpError":  # bare `rssr`: the help was printed already
                report_error(usage_error_line(error))
            code = error.exit_code
        except typer.Abort:
            stderr.print("[bold red]error:[/] aborted")
            code = EXIT_PROCESSING
        code = code if isinstance(code, int) else 0
        if not standalone_mode:
            return code
        sys.exit(code)


def usage_error_line(error: ClickException) -> str:
    """Click's message on one line, with where to read the options."""
    message = " ".join(error.format_message().split())
    ctx = getattr(error, "ctx", None)
    return f"{message} (see '{ctx.command_path} --help')" if ctx is not None else message


app = typer.Typer(
    name="rssr",
    cls=OneLineUsageErrors,
    help=f"Super-resolve georeferenced rasters into Cloud-Optimized GeoTIFFs.\n\n{EXIT_CODES_HELP}",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)


def _print_version(value: bool) -> None:
    if value:
        stdout.print(f"rssr {__version__}")
        raise typer.Exit()


@app.callback()
def _options(
    version: Annotated[
        Optional[bool],
        typer.Option("--version", callback=_print_version, is_eager=True, help="Print the version and exit."),
    ] = None,
) -> None:
    """Super-resolve georeferenced rasters into Cloud-Optimized GeoTIFFs."""


app.command("upscale", epilog=f"{EXIT_CODES_HELP} {BATCH_EXIT_HELP}")(upscale_command)
app.command("info", epilog=EXIT_CODES_HELP)(info_command)
app.command("train", epilog=EXIT_CODES_HELP)(train_command)
app.command("train-sharpener", epilog=EXIT_CODES_HELP)(train_sharpener_command)
app.command("evaluate", epilog=EXIT_CODES_HELP)(evaluate_command)


def main() -> None:
    """Console entry point; RssrError raised outside a command body still becomes one line + exit code."""
    try:
        app(prog_name="rssr")
    except RssrError as error:
        report_error(error)
        sys.exit(exit_code_for(error))
