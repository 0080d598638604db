"""Command line (Typer + Rich). Thin: each command calls the container and formats the result."""
