"""The command line (see main.py); `snapferry.cli:entry` is the console script."""

from .main import cli, entry, main

__all__ = ["cli", "entry", "main"]
