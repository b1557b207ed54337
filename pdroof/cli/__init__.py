"""The Typer command-line interface: each command parses, calls the library, renders."""
