"""Tamper evidence: recompute the hash chains and cross-check the rows against the documents.

Every lockset and drift report row keeps the canonical JSON its ``hash`` was
computed over (``document``) and its predecessor's hash (``parent_hash``),
chained per project. :func:`check_chains` is pure: it takes the rows as plain
records (loaded by :func:`load_records`, one query per table) and reports, per
project, every record that was altered (a hash that does not match its
document, a column or a lock, artifact, dependency or image row that
contradicts it) or removed (a parent link or drift report pointing at a
lockset that is not there).

What a chain cannot show: the newest record of a project can be replaced
consistently (document and hash rewritten together) because nothing points
at it yet. The head hashes are therefore reported, so that they can be
anchored elsewhere (``locks/lockd.json`` in version control holds the head
lockset's hash).
"""

from .chains import parse_document
from .check import check_chains
from .load import assemble, load_records
from .records import (
    ArtifactRecord,
    ChainReport,
    DriftRecord,
    ImageRecord,
    LockRecord,
    LocksetRecord,
    Problem,
    ProjectChain,
    Records,
)

__all__ = [
    "ArtifactRecord",
    "ChainReport",
    "DriftRecord",
    "ImageRecord",
    "LockRecord",
    "LocksetRecord",
    "Problem",
    "ProjectChain",
    "Records",
    "assemble",
    "check_chains",
    "load_records",
    "parse_document",
]
