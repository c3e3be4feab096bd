"""Use cases: what the CLI (and later the service) calls. They wire the pure core to I/O."""

from .compile import CompileFlags, CompileResult, LockRequest, build_lock_request, compile_lockset
from .record import diff, history, show

__all__ = [
    "CompileFlags",
    "CompileResult",
    "LockRequest",
    "build_lock_request",
    "compile_lockset",
    "diff",
    "history",
    "show",
]
