"""Lock files and ``lockd.json`` from a pull request are hostile input.

A crafted manifest names files outside ``locks/`` (its content hash is public,
so it "verifies"); entries of ``locks/`` may be symbolic links; values may have
any JSON type. lockd never removes or writes outside its output directory and
answers every malformed manifest with one paragraph, never a traceback.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from lockd.errors import FormatError
from lockd.lockset import Lockset, canonical_json, sha256_text
from tests.conftest import Run

MATRIX = ["--platform", "linux-x86_64", "--python", "3.11", "--cuda", "cpu"]
TARGET = "linux-x86_64-py311-cpu"


def _artifact(**change: Any) -> dict[str, Any]:
    artifact = {
        "name": "filelock",
        "version": "3.16.1",
        "index": "https://pypi.org/simple",
        "url": "https://files/filelock-3.16.1-py3-none-any.whl",
        "filename": "filelock-3.16.1-py3-none-any.whl",
        "sha256": "0" * 64,
        "kind": "wheel",
        "upload_time": None,
        "size": 10,
    }
    return {**artifact, **change}


def _lockset_doc(**change: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "format": "lockd.lockset/1",
        "project": "p",
        "inputs": [{"path": "requirements.in", "sha256": "0" * 64}],
        "requirements": ["filelock"],
        "targets": [TARGET],
        "resolver": {"name": "uv", "version": "0.13.9"},
        "indexes": {"default": "https://pypi.org/simple"},
        "cutoff": "2024-06-01T00:00:00Z",
        "input_key": "0" * 64,
        "provenance": {"user": "u", "host": "h", "created_at": "2024-06-01T00:00:00Z"},
        "locks": [{"target": TARGET, "artifacts": [_artifact()], "files": {}}],
        "failures": [],
        "images": [],
        "parent": None,
        "extra": {},
    }
    return {**doc, **change}


def compile_once(lockd: Any, tmp_path: Path, requirements: str = "filelock\n") -> dict[str, Any]:
    (tmp_path / "requirements.in").write_text(requirements)
    run = lockd("compile", *MATRIX)
    assert run.returncode == 0, run.output
    return json.loads((tmp_path / "locks" / "lockd.json").read_text())  # type: ignore[no-any-return]


def rewrite_manifest(tmp_path: Path, doc: dict[str, Any]) -> None:
    """Write ``doc`` with a correct content hash, as an attacker can."""
    body = {k: v for k, v in doc.items() if k != "hash"}
    doc = {**body, "hash": sha256_text(canonical_json(body))}
    (tmp_path / "locks" / "lockd.json").write_text(json.dumps(doc, indent=2))


def assert_one_paragraph(run: Run, code: int) -> None:
    assert run.returncode == code, run.output
    assert "Traceback" not in run.output
    assert run.stderr.startswith("error:"), run.stderr


def test_a_crafted_manifest_cannot_delete_files_outside_locks(lockd, tmp_path: Path) -> None:
    doc = compile_once(lockd, tmp_path)
    victim = tmp_path / "victim.txt"
    victim.write_text("precious\n")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    absolute = elsewhere / "absolute.txt"
    absolute.write_text("also precious\n")
    lock = doc["locks"][0]
    lock["files"]["../victim.txt"] = sha256_text(victim.read_text())
    lock["files"][str(absolute)] = sha256_text(absolute.read_text())
    rewrite_manifest(tmp_path, doc)

    (tmp_path / "requirements.in").write_text("filelock\nidna\n")  # a real recompile
    run = lockd("compile", *MATRIX)

    assert victim.read_text() == "precious\n"
    assert absolute.read_text() == "also precious\n"
    assert_one_paragraph(run, 2)
    assert "../victim.txt" in run.stderr and "lockd.json" in run.stderr
    # nothing was resolved, written or recorded for the hostile manifest
    assert len(json.loads(lockd("history", "--format", "json").stdout)) == 1


@pytest.mark.parametrize(
    "name",
    [
        "pylock.linux-x86_64-py311-cu124.toml",  # another target's file
        "lockd.json",
        "pylock.linux-x86_64-py311-cpu.toml/../../victim.txt",
        "victim.txt",
        "pylock.x\x00.toml",
        ".",
    ],
)
def test_lock_file_names_must_be_the_targets_own(tmp_path: Path, name: str) -> None:
    from lockd.lockfiles.manifest import read_manifest

    lock = {"target": TARGET, "artifacts": [], "files": {name: "0" * 64}}
    path = tmp_path / "lockd.json"
    path.write_text(json.dumps(_lockset_doc(locks=[lock])))
    with pytest.raises(FormatError, match="not a lock file lockd writes"):
        read_manifest(path)


@pytest.mark.parametrize(
    ("change", "needle"),
    [
        ({"locks": {"target": TARGET}}, "locks must be a list"),
        ({"locks": [{"target": TARGET, "artifacts": [], "files": ["a"]}]}, "locks[0].files"),
        ({"locks": [{"target": 7, "artifacts": []}]}, "locks[0].target must be a string"),
        ({"locks": [{"target": TARGET, "artifacts": [{"name": "x"}]}]}, "locks[0].artifacts[0]"),
        ({"provenance": "me"}, "provenance must be an object"),
        ({"targets": "abc"}, "targets must be a list"),
        ({"resolver": {"name": "uv", "version": 3}}, "resolver.version must be a string"),
        ({"project": "x" * 100_000}, "project is longer than"),
        ({"images": [1]}, "images[0] must be an object"),
        (
            {"locks": [{"target": TARGET, "artifacts": [_artifact(size=2**70)]}]},
            "locks[0].artifacts[0].size",
        ),
        ({"parent": ["x"]}, "parent must be a string"),
    ],
)
def test_type_confused_manifests_are_format_errors(
    tmp_path: Path, change: dict[str, Any], needle: str
) -> None:
    from lockd.lockfiles.manifest import read_manifest

    path = tmp_path / "lockd.json"
    path.write_text(json.dumps(_lockset_doc(**change)))
    with pytest.raises(FormatError) as caught:
        read_manifest(path)
    assert needle in caught.value.message


@pytest.mark.parametrize(
    "text",
    ["[" * 100_000, "[]", '"a manifest"', "{" + '"a": 1e999' + "}", "1" * 5000],
)
def test_malformed_json_is_a_format_error(tmp_path: Path, text: str) -> None:
    from lockd.lockfiles.manifest import read_manifest

    path = tmp_path / "lockd.json"
    path.write_text(text)
    with pytest.raises(FormatError, match=r"lockd\.json"):
        read_manifest(path)


def test_a_type_confused_manifest_is_replaced_by_compile(lockd, tmp_path: Path) -> None:
    doc = compile_once(lockd, tmp_path)
    doc["locks"][0]["files"] = ["pylock.linux-x86_64-py311-cpu.toml"]
    rewrite_manifest(tmp_path, doc)
    (tmp_path / "requirements.in").write_text("filelock\nidna\n")
    run = lockd("compile", *MATRIX)
    assert run.returncode == 0, run.output
    assert "Traceback" not in run.output
    assert json.loads((tmp_path / "locks" / "lockd.json").read_text())["locks"][0]["files"]


def test_check_says_what_is_wrong_with_the_manifest_as_other_commands_do(
    lockd, tmp_path: Path
) -> None:
    doc = compile_once(lockd, tmp_path)
    manifest = tmp_path / "locks" / "lockd.json"
    edited = {**doc, "requirements": ["filelock", "evil"]}  # the old hash kept
    manifest.write_text(json.dumps(edited))
    typed = {**doc, "locks": "x"}
    for written, words in (
        (json.dumps(edited), "it was edited after lockd wrote it"),
        (json.dumps(typed), "locks must be a list"),
        ("{not json", "is not a readable lockd manifest"),
    ):
        manifest.write_text(written)
        check = lockd("compile", *MATRIX, "--check")
        assert check.returncode == 1, check.output
        assert words in " ".join(check.stdout.split()), check.stdout
        assert "is unreadable" not in check.stdout and "Traceback" not in check.output


@pytest.mark.parametrize(
    ("doc", "words"),
    [
        ({"project": "proj", "locks": "x"}, "has no 'format' field: it is not a lockset"),
        ({"format": "conda-lock/1", "project": "p"}, "has format 'conda-lock/1': it is not a"),
        ({"format": 3}, "has format '3': it is not a lockset"),
    ],
)
def test_a_document_without_a_lockd_format_is_not_called_a_newer_one(
    lockd, tmp_path: Path, doc: dict[str, Any], words: str
) -> None:
    (tmp_path / "locks").mkdir()
    (tmp_path / "locks" / "lockd.json").write_text(json.dumps(doc))
    why = lockd("why", "numpy")
    assert_one_paragraph(why, 2)
    assert words in " ".join(why.stderr.split()), why.stderr
    assert "Upgrade" not in why.stderr and "Restore it from git" in why.stderr
    with pytest.raises(FormatError) as newer:  # a newer lockd's lockset
        Lockset.from_dict(_lockset_doc(format="lockd.lockset/2"))
    assert "Upgrade lockd" in newer.value.render()


def test_symlinked_lock_files_are_replaced_not_written_through(lockd, tmp_path: Path) -> None:
    compile_once(lockd, tmp_path)
    locks = tmp_path / "locks"
    victim = tmp_path / "victim.txt"
    victim.write_text("precious\n")
    pylock = locks / f"pylock.{TARGET}.toml"
    pylock.unlink()
    pylock.symlink_to(victim)
    (locks / f"{TARGET}.requirements.txt").unlink()
    (locks / f"{TARGET}.requirements.txt").symlink_to("/dev/zero")

    run = lockd("compile", *MATRIX)  # the links do not match the record: resolve again

    assert run.returncode == 0, run.output
    assert victim.read_text() == "precious\n"
    assert not pylock.is_symlink() and pylock.read_text().startswith("lock-version")
    assert not (locks / f"{TARGET}.requirements.txt").is_symlink()


@pytest.mark.parametrize("link", ["/dev/zero", "fifo", "../victim.txt"])
def test_a_symlinked_manifest_is_refused(lockd, tmp_path: Path, link: str) -> None:
    compile_once(lockd, tmp_path)
    victim = tmp_path / "victim.txt"
    victim.write_text("precious\n")
    os.mkfifo(tmp_path / "fifo")
    manifest = tmp_path / "locks" / "lockd.json"
    manifest.unlink()
    manifest.symlink_to(tmp_path / link if link == "fifo" else link)

    run = lockd("compile", *MATRIX)

    assert_one_paragraph(run, 2)
    assert "symbolic link" in run.stderr
    assert victim.read_text() == "precious\n"


def test_a_symlinked_output_directory_is_refused(lockd, tmp_path: Path) -> None:
    (tmp_path / "requirements.in").write_text("filelock\n")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (tmp_path / "locks").symlink_to(elsewhere)
    run = lockd("compile", *MATRIX)
    assert_one_paragraph(run, 2)
    assert "symbolic link" in run.stderr
    assert list(elsewhere.iterdir()) == []


@pytest.mark.parametrize("out", ["/tmp/lockd-out-elsewhere", "../outside", "locks/../../x", " "])
def test_a_configured_output_directory_stays_inside_the_project(
    lockd, tmp_path: Path, out: str
) -> None:
    """``out`` in a lockd.toml from a pull request cannot make lockd write elsewhere; --out,
    typed by the person running lockd, still can."""
    project = tmp_path / "project"
    project.mkdir()
    (project / "requirements.in").write_text("filelock\n")
    (project / "lockd.toml").write_text(f"out = {json.dumps(out)}\n")
    run = lockd("compile", *MATRIX, cwd=project)
    assert_one_paragraph(run, 2)
    assert "inside the project" in run.stderr and "--out" in run.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["project"]
    assert not Path("/tmp/lockd-out-elsewhere").exists()
    (project / "link").symlink_to(tmp_path)  # a link committed beside it leads out
    (project / "lockd.toml").write_text('out = "link/locks"\n')
    assert_one_paragraph(lockd("compile", *MATRIX, cwd=project), 2)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["project"]
    (project / "lockd.toml").write_text('out = "build/locks"\n')  # inside: as before
    assert lockd("compile", *MATRIX, cwd=project).returncode == 0
    assert (project / "build" / "locks" / "lockd.json").is_file()


def test_staged_files_refuse_names_that_are_not_plain(tmp_path: Path) -> None:
    from lockd.lockfiles.files import StagedFiles

    for name in ("../x", "/etc/x", "a/b", "..", ".", "", "a\x00b"):
        with pytest.raises(FormatError):
            StagedFiles(tmp_path, {name: b"x"})
        with pytest.raises(FormatError):
            StagedFiles(tmp_path, {"ok.txt": b"x"}, remove=[name])
    assert list(tmp_path.iterdir()) == []


def test_staged_files_never_remove_through_a_link(tmp_path: Path) -> None:
    from lockd.lockfiles.files import StagedFiles

    out = tmp_path / "out"
    out.mkdir()
    victim = tmp_path / "victim.txt"
    victim.write_text("precious\n")
    (out / "old.txt").symlink_to(victim)
    with StagedFiles(out, {"new.txt": b"new"}, remove=["old.txt"]) as staged:
        staged.commit()
    assert victim.read_text() == "precious\n"
    assert sorted(p.name for p in out.iterdir()) == ["new.txt"]
