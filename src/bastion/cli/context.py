"""Shared CLI plumbing: loading settings once and turning failures into exit codes."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import NoReturn

import typer
from rich.console import Console

from bastion.errors import AppError, ConfigError, StartupError
from bastion.settings import Settings, load_settings

EXIT_FAILURE = 1
EXIT_CONFIG = 2

console = Console()
error_console = Console(stderr=True)


def fail(message: str, *, code: int = EXIT_FAILURE) -> NoReturn:
    error_console.print(f"bastion: {message}", markup=False, highlight=False, soft_wrap=True)
    raise typer.Exit(code)


@contextmanager
def clear_failures() -> Iterator[None]:
    """One line and a non-zero exit for every expected failure; no traceback."""
    try:
        yield
    except ConfigError as exc:
        fail(f"configuration error: {exc}", code=EXIT_CONFIG)
    except (StartupError, AppError) as exc:
        fail(str(exc))


class SettingsLoader:
    """Loads settings on first use, so `--help` and `version` never need a valid environment."""

    def __init__(self, factory: Callable[[], Settings] = load_settings) -> None:
        self._factory = factory
        self._settings: Settings | None = None

    def get(self) -> Settings:
        if self._settings is None:
            with clear_failures():
                self._settings = self._factory()
        return self._settings


def settings_from(ctx: typer.Context) -> Settings:
    loader: SettingsLoader = ctx.obj
    return loader.get()
