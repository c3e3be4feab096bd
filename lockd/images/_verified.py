"""Layers whose ``diff_id`` this machine has already checked, so it need not hash them again.

A layer blob is checked against its digest on every read. Its ``diff_id``
(the sha256 of the uncompressed tar) is a function of those bytes: once
lockd has decompressed and hashed a blob whose digest checked out, the pair
(blob digest, ``diff_id``) is a proven fact, and a later read of a blob with
the same digest, under a config that names the same ``diff_id``, needs only
the blob's digest checked — the second sha256, over the whole uncompressed
layer, is skipped. Each pair is an empty file
``$LOCKD_HOME/layers/<blob hex>.<diff_id hex>`` (created whole or not at all);
only well-formed sha256 digests become file names. A pair that is not there,
or a config that names another ``diff_id``, means: hash again. A directory
that cannot be written only costs the time.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

_SHA256 = re.compile(r"sha256:([0-9a-f]{64})")


@dataclass(frozen=True, slots=True)
class VerifiedLayers:
    root: Path

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> VerifiedLayers:
        from lockd.settings import Settings

        return cls(Settings.from_env(environ).home / "layers")

    def _path(self, digest: str | None, diff_id: str | None) -> Path | None:
        blob = _SHA256.fullmatch(digest or "")
        plain = _SHA256.fullmatch(diff_id or "")
        return self.root / f"{blob[1]}.{plain[1]}" if blob and plain else None

    def known(self, digest: str | None, diff_id: str | None) -> bool:
        """Whether a blob with this digest was seen to decompress to this ``diff_id``."""
        path = self._path(digest, diff_id)
        return path is not None and path.is_file()

    def remember(self, digest: str | None, diff_id: str | None) -> None:
        """Record a pair both of whose digests were just checked over the whole layer."""
        path = self._path(digest, diff_id)
        if path is None:
            return
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW, 0o600))
        except OSError:
            return  # not remembered: the next read hashes it again
