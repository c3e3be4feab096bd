"""Use cases: what the CLI (and later the service) calls. They wire the pure core to I/O."""

from .audit import AuditRequest, SbomRequest, audit_report, render_report, sbom, verify_chains
from .compile import CompileFlags, CompileResult, LockRequest, build_lock_request, compile_lockset
from .record import diff, history, show

__all__ = [
    "AuditRequest",
    "CompileFlags",
    "CompileResult",
    "LockRequest",
    "SbomRequest",
    "audit_report",
    "build_lock_request",
    "compile_lockset",
    "diff",
    "history",
    "render_report",
    "sbom",
    "show",
    "verify_chains",
]
