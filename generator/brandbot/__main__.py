"""`python -m brandbot` is the `brandbot` command."""

from .cli import main

main()
