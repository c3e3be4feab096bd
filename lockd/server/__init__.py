"""``lockd serve``: the shared service — the record over HTTP, fleet snapshots, a dashboard.

Another front door beside ``lockd.cli``: routes parse, call ``lockd.app`` use
cases or store readers, and render (JSON, or HTML from Jinja templates).

::

    store = Store(url)
    app = create_app(store, ServerSettings.from_env())
"""

from .app import create_app, from_environment, log_config

__all__ = ["create_app", "from_environment", "log_config"]
