"""``locks/lockd.json``: the lockset manifest (canonical content, pretty on disk)."""

from __future__ import annotations

import json
from pathlib import Path

from ..errors import FormatError
from ..lockset import Lockset

MANIFEST = "lockd.json"


def render_manifest(lockset: Lockset) -> bytes:
    return (
        json.dumps(lockset.to_dict(), indent=2, sort_keys=True, ensure_ascii=False) + "\n"
    ).encode()


def read_manifest(path: Path) -> Lockset | None:
    """The lockset in ``path``, or ``None`` if there is none yet."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        raise FormatError(f"{path} is not a readable lockd manifest: {exc}.") from None
    try:
        return Lockset.from_dict(data)
    except (KeyError, TypeError, AttributeError, ValueError) as exc:
        raise FormatError(f"{path} is not a complete lockd manifest ({exc!r} is wrong).") from None
