"""What the application holds for its routes: the open store and the fleet use cases."""

from __future__ import annotations

from fastapi import Request

from ..app.fleet import Fleet
from ..store import Store


def store_of(request: Request) -> Store:
    store: Store = request.app.state.store
    return store


def fleet_of(request: Request) -> Fleet:
    fleet: Fleet = request.app.state.fleet
    return fleet
