"""Tamper evidence: recompute the hash chains and cross-check the rows against the documents.

Every lockset and drift report row keeps the canonical JSON its ``hash`` was
computed over (``document``) and its predecessor's hash (``parent_hash``),
chained per project. Appends are serialised per chain
(:mod:`lockd.store.chain`), so each chain is a line: every record's parent is
the record appended just before it. :class:`ChainCheck` is pure: it takes the
rows as plain records, one at a time (read by :class:`RecordReader` a batch of
records per query, or held in memory by :func:`load_records` for
:func:`check_chains`), and reports, per project, every record that was altered
(a hash that does not match its document, a column or a lock, artifact, dependency or image row that
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

from .anchors import Anchor, Held, ProjectEvidence, check_evidence, recorded_files
from .chains import parse_document
from .check import ChainCheck, check_chains, orphan_problems
from .load import RecordReader, load_records, reading_records
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
    "ChainCheck",
    "ChainReport",
    "DriftRecord",
    "Held",
    "ImageRecord",
    "LockRecord",
    "LocksetRecord",
    "Problem",
    "ProjectChain",
    "ProjectEvidence",
    "RecordReader",
    "Records",
    "check_chains",
    "check_evidence",
    "load_records",
    "orphan_problems",
    "parse_document",
    "reading_records",
    "recorded_files",
]
