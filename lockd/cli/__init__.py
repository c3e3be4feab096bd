"""Thin typer layer: parse flags, build options, call a use case in ``app``, render, exit.

One module per noun: ``locks`` (snapshot, compile, history, show, diff, why),
``drift`` (drift, drift summary, schedule), ``dockerfiles`` (lint, dockerfile),
``serve`` (serve, tokens), ``images``, ``audit`` (audit, db); ``_app`` holds the
application, the shared options and ``main``. Imports of anything heavy happen
inside the commands so that ``lockd --help`` stays fast. ``main`` is the single
place that turns ``LockdError`` into a message and an exit code.
"""

from importlib import import_module

from ._app import app, main

# Each module registers its commands on ``app`` when imported: this order is the
# order of ``lockd --help``.
for _module in ("locks", "images", "drift", "audit", "dockerfiles", "serve"):
    import_module(f"{__name__}.{_module}")

__all__ = ["app", "main"]
