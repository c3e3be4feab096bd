"""One exception tree for lockd; the CLI turns it into messages and exit codes.

::

    LockdError                      (exit 3 unless a subclass says otherwise)
    ├── UsageError                  exit 2: bad flags, bad input files
    │   ├── ConfigError             exit 2: lockd.toml / [tool.lockd] / LOCKD_* invalid
    │   └── ServerRefusedError      exit 2: a lockd server refused a request (token, scope, …)
    ├── ResolutionError             exit 3: a resolver could not produce a lock
    │   └── MatrixError             exit 3: several targets failed (carries them all)
    ├── VerificationError           exit 3: a lock resolved, but is wrong (CPU torch on cu124, …)
    ├── PackageIndexError           exit 3: an index could not be reached or answered badly
    ├── RegistryError               exit 3: an OCI registry failed (unknown tag, auth, rate limit)
    │   └── ImageNotFoundError      exit 3: the tag, digest or repository is not there
    ├── ImageError                  exit 3: an image cannot be read, or is altered or hostile
    ├── StoreError                  exit 3: the database could not be read or written
    ├── ServerError                 exit 3: a lockd server (snapshot --post) failed or is away
    └── FormatError                 exit 2: a persisted file has an unknown version or shape
        └── UnsafeFileError         exit 2: a name or link read from disk leads out of lockd's files

Every message is one paragraph that names what was wrong (target, package,
index, file) and, in ``hint``, how to fix it. Nothing here prints; ``lockd.cli``
is the single place that renders errors.
"""

from __future__ import annotations

EXIT_OK = 0
EXIT_DRIFT = 1
EXIT_USAGE = 2
EXIT_FAILURE = 3


def excerpt(value: str, limit: int = 100) -> str:
    """``value`` quoted for a message, cut to ``limit`` characters.

    For text from outside (an image reference, a server's header, a line of a
    file): however long it is, the message stays one short paragraph.
    """
    return repr(clipped(value, limit))


def clipped(value: str, limit: int = 100) -> str:
    """``value`` cut to ``limit`` characters (``…`` marks a cut): a table cell from outside."""
    return value if len(value) <= limit else value[:limit] + "…"


def sentence(text: str) -> str:
    """``text`` ending in exactly one full stop, whether or not it brought its own."""
    return text if text.endswith((".", "?", "!")) else text + "."


class LockdError(Exception):
    """Base of every expected failure. ``str(err)`` is the one-paragraph message."""

    exit_code = EXIT_FAILURE

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def render(self) -> str:
        """The message and the hint as one paragraph."""
        return f"{self.message} {self.hint}" if self.hint else self.message


class UsageError(LockdError):
    """The user asked for something that cannot work as written."""

    exit_code = EXIT_USAGE


class ConfigError(UsageError):
    """The configuration (file or environment) is invalid."""


class FormatError(UsageError):
    """A persisted file (lock, manifest, snapshot) has an unknown version or shape."""


class UnsafeFileError(FormatError):
    """A file lockd reads, writes or removes is a link, a directory or a device, or a name
    read from disk is not one lockd writes: refused, never followed or replaced."""


class ResolutionError(LockdError):
    """A resolver failed for one target."""

    def __init__(self, message: str, *, target: str | None = None, hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.target = target


class VerificationError(ResolutionError):
    """A target resolved, but the result breaks a rule (for example a CPU torch on cu124)."""


class MatrixError(ResolutionError):
    """Several targets of a matrix failed; every failure is kept."""

    def __init__(
        self,
        failures: list[ResolutionError],
        *,
        total: int | None = None,
        suggest_partial: bool = True,
    ) -> None:
        count = f"{len(failures)} of {total}" if total else str(len(failures))
        lines = [f"{count} targets failed:"]
        lines += [f"  {named(f.render(), f.target)}" for f in failures]
        super().__init__("\n".join(lines), hint=None)
        self.failures = failures
        # --allow-partial is advice only where it would record something and was not given.
        self.suggest_partial = suggest_partial

    def render(self) -> str:
        advice = "Fix the targets above or drop them from the matrix"
        if self.suggest_partial:
            advice += ", or pass --allow-partial to record the targets that did resolve"
        return f"{self.message}\nNothing was written or recorded. {advice}."


def named(message: str, target: str | None) -> str:
    """``message`` prefixed with ``[target]`` unless it already names the target."""
    return message if target is None or target in message else f"[{target}] {message}"


class PackageIndexError(LockdError):
    """A package index (or conda channel) could not be reached, or answered unusably."""


IndexError_ = PackageIndexError  # the name the tree above uses


class RegistryError(LockdError):
    """An OCI registry could not answer a tag or digest question."""


class ImageNotFoundError(RegistryError):
    """The registry answered that the tag, digest or repository does not exist.

    Its own class because drift reads it as a finding (``image-gone``), not as a
    check that could not run.
    """


class ImageError(LockdError):
    """An image's blobs cannot be read, do not match their digests, or are unsafe to read."""


class StoreError(LockdError):
    """The lockd database could not be opened, migrated, read or written."""


class ServerError(LockdError):
    """A lockd server (``snapshot --post``) could not be reached, or failed to answer."""


class ServerRefusedError(UsageError):
    """A lockd server refused the request (a 4xx: token, scope, parameters)."""


class NotFoundError(UsageError):
    """A project, lockset or target named by the user does not exist."""
