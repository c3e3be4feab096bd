"""URL helpers: credentials never leave lockd (pure)."""

from __future__ import annotations

import re
from urllib.parse import urlsplit, urlunsplit

_USERINFO = re.compile(r"(?P<scheme>[a-zA-Z][a-zA-Z0-9+.-]*://)[^/@\s]+@")


def strip_credentials(url: str) -> str:
    """``https://user:token@host/x`` -> ``https://host/x``."""
    parts = urlsplit(url)
    if parts.username is None and parts.password is None:
        return url
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    return urlunsplit((parts.scheme, host, parts.path, parts.query, parts.fragment))


def shown(url: str, limit: int = 200) -> str:
    """A URL for a message: without credentials, its query's values and its fragment (a
    token or a signature travels there as often as in the user-info), at most ``limit``
    characters."""
    public = strip_credentials(url)
    parts = urlsplit(public)
    if parts.query or parts.fragment:
        pairs = (pair.partition("=") for pair in parts.query.split("&") if pair)
        # A name is kept where a value follows; an item without one may be the secret.
        query = "&".join(f"{name}=…" if sep else "…" for name, sep, _ in pairs)
        public = urlunsplit((parts.scheme, parts.netloc, parts.path, query, ""))
    return public if len(public) <= limit else public[:limit] + "…"


def redact(text: str) -> str:
    """Remove the user-info part of every URL in free text (error messages, logs)."""
    return _USERINFO.sub(r"\g<scheme>", text)


def with_userinfo(url: str, credentialed: str) -> str:
    """``url`` with the user-info of ``credentialed`` when both name the same host."""
    source, target = urlsplit(credentialed), urlsplit(url)
    if source.username is None or (source.hostname, source.port) != (target.hostname, target.port):
        return url
    userinfo = source.username + (f":{source.password}" if source.password is not None else "")
    return urlunsplit(
        (target.scheme, f"{userinfo}@{target.netloc}", target.path, target.query, target.fragment)
    )


def join(base: str, *parts: str) -> str:
    return "/".join([base.rstrip("/"), *(p.strip("/") for p in parts)])
