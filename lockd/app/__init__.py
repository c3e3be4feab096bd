"""Use cases: what the CLI (and later the service) calls. They wire the pure core to I/O.

One module per use case — ``compile`` (+ ``conda``), ``drift``, ``record``
(history, show, diff), ``audit`` — imported directly by the CLI, so that a
command pays only for the libraries it uses (SQLModel, httpx, rattler and
jinja2 each take a noticeable part of a second to import).
"""
