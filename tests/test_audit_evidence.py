"""`lockd audit verify` in a project directory: the record against locks/ and git.

A hash chain cannot show that its end was cut off, or that the whole database
was emptied, truncated or swapped for an old backup. These tests compile a
real project (two locksets, each committed to git), then damage the real
SQLite file or the lock files and check that verify says what happened.
"""

from __future__ import annotations

import json
import shutil
import sqlite3
import subprocess
from collections.abc import Callable
from contextlib import closing
from pathlib import Path

import pytest

from tests.conftest import Run

LockdRunner = Callable[..., Run]
TARGET = "linux-aarch64-py312-cpu"

needs_git = pytest.mark.skipif(shutil.which("git") is None, reason="needs git")


class Project:
    def __init__(self, lockd: LockdRunner, root: Path) -> None:
        self.lockd = lockd
        self.root = root
        self.db = root / "records" / "lockd.db"
        self.url = f"sqlite:///{self.db}"
        self.heads: list[str] = []

    def compile(self, requirements: str) -> str:
        (self.root / "requirements.in").write_text(requirements)
        run = self.lockd(
            "compile",
            *("--platform", "linux-aarch64", "--python", "3.12", "--project", "model"),
            *("--db", self.url, "--format", "json"),
            cwd=self.root,
        )
        assert run.returncode == 0, run.output
        self.heads.append(json.loads(run.stdout)["lockset"])
        return self.heads[-1]

    def verify(self, *args: str, cwd: Path | None = None) -> tuple[Run, dict]:  # type: ignore[type-arg]
        run = self.lockd(
            "audit", "verify", "--db", self.url, "--format", "json", *args, cwd=cwd or self.root
        )
        assert "Traceback" not in run.output
        return run, (json.loads(run.stdout) if run.stdout.strip() else {})

    def text(self) -> Run:
        return self.lockd("audit", "verify", "--db", self.url, cwd=self.root)

    def sql(self, *statements: str) -> None:
        with closing(sqlite3.connect(self.db)) as conn:
            for statement in statements:
                conn.execute(statement)
            conn.commit()


def git(root: Path, *args: str) -> None:
    subprocess.run(
        ["git", "-c", "user.name=t", "-c", "user.email=t@example.invalid", *args],
        cwd=root,
        check=True,
        capture_output=True,
    )


@pytest.fixture
def project(lockd: LockdRunner, tmp_path: Path) -> Project:
    """Two locksets of project `model`, each lockd.json committed to git."""
    root = tmp_path / "model"
    root.mkdir()
    made = Project(lockd, root)
    has_git = shutil.which("git") is not None
    if has_git:
        git(root, "init", "-q")
    for requirements in ("idna\n", "idna\nrequests\n"):
        made.compile(requirements)
        if has_git:
            git(root, "add", "locks", "requirements.in")
            git(root, "commit", "-q", "-m", "lock")
    return made


def removed(doc: dict) -> list[tuple[str, str]]:  # type: ignore[type-arg]
    return [(p["record"], p["ref"]) for p in doc["outside"] if p["change"] == "removed"]


@needs_git
def test_an_intact_record_agrees_with_the_project_directory(project: Project) -> None:
    run, doc = project.verify()
    assert run.returncode == 0, run.output
    assert doc["verified"] is True and doc["outside"] == []
    assert doc["evidence"] == ["locks/lockd.json", "2 version(s) of it in git"]
    text = project.text()
    assert "compared with locks/lockd.json and 2 version(s) of it in git" in text.stdout
    assert "the project directory's locks agree with the record" in text.stdout


@pytest.mark.parametrize("damage", ["truncated to nothing", "emptied", "deleted"])
def test_an_empty_database_says_so_and_fails_where_the_project_had_records(
    project: Project, damage: str, tmp_path: Path
) -> None:
    if damage == "truncated to nothing":
        project.db.write_bytes(b"")
        for suffix in ("-wal", "-shm"):
            project.db.with_name(project.db.name + suffix).unlink(missing_ok=True)
    elif damage == "emptied":
        project.sql(
            "DELETE FROM snapshots",
            "DELETE FROM drift_reports",
            "DELETE FROM dependencies",
            "DELETE FROM artifacts",
            "DELETE FROM images",
            "DELETE FROM locks",
            "DELETE FROM locksets",
            "DELETE FROM projects",
        )
    else:
        project.db.unlink()

    run, doc = project.verify()

    assert run.returncode == 1, run.output
    assert doc["projects"] == [] and doc["verified"] is False
    assert removed(doc)[0] == ("lockset", project.heads[-1])  # the manifest's head first
    assert ("lockset", project.heads[0]) in removed(doc)  # and what git remembers
    assert "empty, truncated or was emptied" in doc["first_problem"]["detail"]
    text = project.text()
    assert "the database holds no records" in text.stdout
    assert text.returncode == 1
    if damage == "deleted":
        assert not project.db.exists()  # verifying never creates the file it examines
    # elsewhere (no project directory), an empty database is only reported; a missing file
    # is no database at all (a mistyped --db looks the same), as for the other readers
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    quiet, doc = project.verify(cwd=elsewhere)
    if damage == "deleted":
        assert quiet.returncode == 2 and "No lockd database at" in quiet.stderr, quiet.output
        assert not project.db.exists()
    else:
        assert quiet.returncode == 0 and doc["projects"] == [] and doc["evidence"] == []


def test_a_database_truncated_mid_file_is_a_clear_error(project: Project) -> None:
    project.sql("PRAGMA wal_checkpoint(TRUNCATE)")
    data = project.db.read_bytes()
    project.db.write_bytes(data[: len(data) // 2])
    run, _ = project.verify()
    assert run.returncode != 0
    assert "Traceback" not in run.output
    assert "damaged" in run.stderr or "malformed" in run.stderr


@needs_git
def test_an_old_backup_lacks_the_newest_lockset(project: Project, tmp_path: Path) -> None:
    backup = tmp_path / "backup.db"
    project.sql("PRAGMA wal_checkpoint(TRUNCATE)")
    shutil.copy(project.db, backup)
    newest = project.compile("idna\nrequests\nfilelock\n")  # not committed to git
    shutil.copy(backup, project.db)  # the database restored from before that compile
    for suffix in ("-wal", "-shm"):
        project.db.with_name(project.db.name + suffix).unlink(missing_ok=True)

    run, doc = project.verify()

    assert run.returncode == 1, run.output
    assert removed(doc) == [("lockset", newest)]  # the chain in the database is intact
    assert [(p["chains_intact"], p["verified"]) for p in doc["projects"]] == [(True, False)]
    assert "locks/lockd.json names it" in doc["first_problem"]["detail"]


def test_the_newest_lockset_removed_consistently_is_caught(project: Project) -> None:
    """Its rows deleted together: no parent link or drift report points at it any more."""
    head = project.heads[-1]
    lock_ids = (
        f"SELECT id FROM locks WHERE lockset_id = (SELECT id FROM locksets WHERE hash = '{head}')"  # noqa: S608
    )
    project.sql(
        f"DELETE FROM dependencies WHERE lock_id IN ({lock_ids})",  # noqa: S608
        f"DELETE FROM artifacts WHERE lock_id IN ({lock_ids})",  # noqa: S608
        f"DELETE FROM images WHERE lockset_id = (SELECT id FROM locksets WHERE hash = '{head}')",  # noqa: S608
        f"DELETE FROM locks WHERE lockset_id = (SELECT id FROM locksets WHERE hash = '{head}')",  # noqa: S608
        f"DELETE FROM locksets WHERE hash = '{head}'",  # noqa: S608
    )
    run, doc = project.verify()
    assert run.returncode == 1, run.output
    # the chains alone look fine, but the project is not verified
    assert [(p["chains_intact"], p["verified"]) for p in doc["projects"]] == [(True, False)]
    assert removed(doc)[0] == ("lockset", head)


def test_lock_files_on_disk_must_match_the_record(project: Project) -> None:
    locks = project.root / "locks"
    pylock = locks / f"pylock.{TARGET}.toml"
    requirements = locks / f"{TARGET}.requirements.txt"
    pylock.write_text(pylock.read_text() + "# edited\n")
    requirements.unlink()

    run, doc = project.verify()

    assert run.returncode == 1, run.output
    changes = {(p["record"], p["ref"], p["change"]) for p in doc["outside"]}
    assert changes == {
        ("lock file", f"locks/pylock.{TARGET}.toml", "altered"),
        ("lock file", f"locks/{TARGET}.requirements.txt", "removed"),
    }


def test_the_project_line_fails_when_only_a_lock_file_was_edited(project: Project) -> None:
    """The project's line states the verdict for everything found about it, before the
    problem lines, in the table as in json."""
    pylock = project.root / "locks" / f"pylock.{TARGET}.toml"
    pylock.write_text(pylock.read_text() + "# edited\n")

    text = project.text()
    _, doc = project.verify()

    assert text.returncode == 1, text.output
    project_line = next(line for line in text.stdout.splitlines() if line.startswith("model: "))
    assert "verified" not in project_line
    assert project_line.endswith("FAILED (its chains are intact; see the problems below)")
    assert "first altered or removed record: lock file" in text.stdout
    assert [(p["project"], p["verified"]) for p in doc["projects"]] == [("model", False)]


def test_an_edited_manifest_is_named(project: Project) -> None:
    manifest = project.root / "locks" / "lockd.json"
    data = json.loads(manifest.read_text())
    data["requirements"] = ["idna", "evil"]
    manifest.write_text(json.dumps(data))
    run, doc = project.verify()
    assert run.returncode == 1, run.output
    first = doc["first_problem"]
    assert (first["record"], first["ref"], first["change"]) == (
        "lock file",
        "locks/lockd.json",
        "altered",
    )
    assert "edited after lockd wrote it" in first["detail"]
    assert first["project"] == "model" and doc["projects"][0]["verified"] is False


def test_only_lock_file_names_of_the_lock_s_own_target_are_read() -> None:
    """A name from the database is untrusted: only what lockd writes for that target counts."""
    from lockd.store.verify import LocksetRecord, recorded_files

    listed = {
        f"pylock.{TARGET}.toml": "a" * 64,
        f"{TARGET}.requirements.txt": "b" * 64,
        "pylock.linux-x86_64-py312-cpu.toml": "c" * 64,  # another target's name
        "notes.txt": "d" * 64,  # a plain name lockd never writes
        "../victim.txt": "e" * 64,
        "/etc/passwd": "f" * 64,
        "lockd.json": "0" * 64,
    }
    data = {"locks": [{"target": TARGET, "files": listed}, {"target": "../x", "files": listed}]}
    record = LocksetRecord(1, "model", "h" * 64, None, "{}", {}, (), data=data)

    assert recorded_files(record) == {
        f"pylock.{TARGET}.toml": "a" * 64,
        f"{TARGET}.requirements.txt": "b" * 64,
    }


@needs_git
def test_git_history_is_read_as_stored_whatever_gitattributes_say(project: Project) -> None:
    """A textconv or smudge filter named by .gitattributes never runs, nor rewrites the blob."""
    marker = project.root / "filter-ran"
    evil = f"sh -c 'touch {marker}; echo {{}}'"
    (project.root / ".gitattributes").write_text("lockd.json diff=evil filter=evil\n")
    git(project.root, "config", "diff.evil.textconv", evil)
    git(project.root, "config", "filter.evil.smudge", evil)
    git(project.root, "add", ".gitattributes")
    git(project.root, "commit", "-q", "-m", "attributes")
    marker.unlink(missing_ok=True)
    project.sql("DELETE FROM drift_reports")  # nothing else changed: verify must stay clean

    run, doc = project.verify()

    assert not marker.exists(), "a git filter ran"
    assert run.returncode == 0, run.output
    assert doc["outside"] == []
