"""The `dicomcast` command line (entry point `dicomcast.cli:main`)."""

from dicomcast.cli.app import main

__all__ = ["main"]
