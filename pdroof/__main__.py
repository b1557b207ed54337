"""``python -m pdroof`` runs the command-line interface."""

from .cli.entry import run

run()
