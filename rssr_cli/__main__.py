"""`python -m rssr_cli` runs the `rssr` command line."""

from .cli import main

main()
