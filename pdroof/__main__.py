"""``python -m pdroof`` runs the command-line interface."""

from .cli.app import run

run()
