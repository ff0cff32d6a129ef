"""`python -m rssr_cli` runs the `rssr` command line."""

from rssr_cli.cli import main

main()
