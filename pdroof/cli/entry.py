"""The console script's entry point: start-up runs without the cyclic garbage collector.

Importing Typer, numpy and the command's modules allocates some 10⁵ long-lived objects (modules,
functions, classes), and the collector would walk them again and again while they are created:
about 5% of a command's start-up. They are frozen once created, and collection resumes for the
command's own work. Only the console script does this; ``pdroof.cli.app.main`` (what tests and
library users call) leaves the collector alone.
"""

import gc
import sys


def run() -> None:
    try:
        gc.disable()
        try:
            from .app import main, prepare

            argv = sys.argv[1:]
            prepare(argv)
            gc.freeze()
        finally:
            gc.enable()
        code = main(argv)
    except KeyboardInterrupt:  # while starting up, before main's handler is in place
        print("Error: interrupted", file=sys.stderr)
        code = 130
    sys.exit(code)
