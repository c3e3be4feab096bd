"""Tamper evidence: recompute the hash chains and cross-check the rows against the documents.

Every lockset and drift report row keeps the canonical JSON its ``hash`` was
computed over (``document``) and its predecessor's hash (``parent_hash``),
chained per project. Appends are serialised per chain
(:mod:`lockd.store.chain`), so each chain is a line: every record's parent is
the record appended just before it. :func:`check_chains` is pure: it takes the
rows as plain records (loaded by :func:`load_records`, one query per table) and
reports, per project, every record that was altered (a hash that does not match
its document, a column or a lock, artifact, dependency or image row that
contradicts it), removed (a parent link or drift report pointing at a lockset
that is not there) or that forks the chain (a second child of one parent: rows
edited, or written by a lockd that did not serialise appends).

What a chain cannot show: the newest record of a project can be replaced
consistently (document and hash rewritten together) because nothing points
at it yet, and a database emptied, truncated or swapped for another has no
chain left to break. The head hashes are therefore reported, so that they can
be anchored elsewhere, and :mod:`.anchors` compares the records with what a
project directory keeps (``locks/lockd.json``, its versions in git, the lock
files).
"""

from .anchors import Anchor, ProjectEvidence, check_evidence, recorded_files
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
    "Anchor",
    "ArtifactRecord",
    "ChainReport",
    "DriftRecord",
    "ImageRecord",
    "LockRecord",
    "LocksetRecord",
    "Problem",
    "ProjectChain",
    "ProjectEvidence",
    "Records",
    "assemble",
    "check_chains",
    "check_evidence",
    "load_records",
    "parse_document",
    "recorded_files",
]
