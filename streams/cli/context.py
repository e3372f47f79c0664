"""The one ``Settings`` object of an ``rtrank`` command, as its commands receive it.

`rtrank.streams.cli.main.main` reads the settings once and builds the app from them; the app
rides on the root click context (where Faust's own commands find it too), so a command
decorated with `pass_settings` gets ``app.settings`` as its first argument. A command invoked
on its own (``CliRunner().invoke(produce, args, obj=settings)``, as tests do) gets the
``Settings`` given as the context's ``obj`` instead.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import update_wrapper
from typing import Any

import click

from rtrank.streams.settings import Settings


def settings_of(ctx: click.Context) -> Settings:
    """The settings of the command running in ``ctx``.

    Raises:
        RuntimeError: neither the root context's app nor any context's ``obj`` carries them
            (a command invoked outside ``rtrank`` without ``obj=settings``).
    """
    app = getattr(ctx.find_root(), "app", None)
    if app is not None:
        return app.settings
    settings = ctx.find_object(Settings)
    if settings is None:
        raise RuntimeError(f"{ctx.command_path}: no settings (run it as an rtrank command)")
    return settings


def pass_settings(f: Callable[..., Any]) -> Callable[..., Any]:
    """Like `click.pass_obj`: call ``f(settings, *args, **kwargs)``."""

    def new_func(*args: Any, **kwargs: Any) -> Any:
        return f(settings_of(click.get_current_context()), *args, **kwargs)

    return update_wrapper(new_func, f)
