"""Dockerfile FROM parsing and pinning (pure), and the pin use case's atomic write."""

from __future__ import annotations

import stat
from datetime import UTC, datetime
from pathlib import Path

import pytest

from lockd.errors import UsageError
from lockd.images import (
    OCI_INDEX,
    FromKind,
    PinStatus,
    ResolvedImage,
    parse_dockerfile,
    parse_reference,
    pin_dockerfile,
    pin_dockerfile_text,
    require_resolved,
)

D1, D2, D3 = (f"sha256:{c * 64}" for c in "abc")
PINNED_ALPINE = "alpine:3.20@sha256:" + "f" * 64

MULTI_STAGE = f"""\
# syntax=docker/dockerfile:1.7
ARG PY=3.11
ARG BASE="python:${{PY}}-slim"
ARG CUDA_IMAGE=nvidia/cuda:12.4.1-runtime-ubuntu22.04
ARG UNSET

FROM --platform=$BUILDPLATFORM ${{BASE}} AS build
ARG NOT_SEEN_BY_FROM=alpine:3
RUN <<EOF
FROM this-is-a-heredoc-line:1
EOF
from $CUDA_IMAGE as Runtime
FROM build AS test
FROM runtime
FROM scratch AS empty
FROM \\
    ghcr.io/org/tool:1.0 \\
    AS tool
FROM ${{UNSET:-debian:12}}
FROM {PINNED_ALPINE}
"""


def test_from_lines_are_parsed_like_buildkit() -> None:
    froms = parse_dockerfile(MULTI_STAGE)
    assert [(f.line, f.kind, f.reference, f.stage) for f in froms] == [
        (7, FromKind.IMAGE, "python:3.11-slim", "build"),
        (12, FromKind.IMAGE, "nvidia/cuda:12.4.1-runtime-ubuntu22.04", "runtime"),
        (13, FromKind.STAGE, "build", "test"),
        (14, FromKind.STAGE, "runtime", None),
        (15, FromKind.SCRATCH, "scratch", "empty"),
        (16, FromKind.IMAGE, "ghcr.io/org/tool:1.0", "tool"),
        (19, FromKind.IMAGE, "debian:12", None),
        (20, FromKind.IMAGE, PINNED_ALPINE, None),
    ]
    assert froms[0].platform == "$BUILDPLATFORM"
    assert froms[0].image == "${BASE}"
    assert froms[-1].is_pinned


def test_pinning_changes_nothing_but_the_digests() -> None:
    digests = {
        "python:3.11-slim": D1,
        "nvidia/cuda:12.4.1-runtime-ubuntu22.04": D2,
        "ghcr.io/org/tool:1.0": D3,
        "debian:12": D1,
    }
    pinned = pin_dockerfile_text(MULTI_STAGE, digests)
    expected = (
        MULTI_STAGE.replace(
            "CUDA_IMAGE=nvidia/cuda:12.4.1-runtime-ubuntu22.04",
            f"CUDA_IMAGE=nvidia/cuda:12.4.1-runtime-ubuntu22.04@{D2}",
        )
        .replace("ghcr.io/org/tool:1.0 ", f"ghcr.io/org/tool:1.0@{D3} ")
        .replace("${UNSET:-debian:12}", f"${{UNSET:-debian:12@{D1}}}")
    )
    assert pinned == expected
    # python:${PY}-slim is assembled from two places: it has no single spot to pin.
    assert parse_dockerfile(MULTI_STAGE)[0].insert_at is None
    again = parse_dockerfile(pinned)
    assert [f.is_pinned for f in again if f.kind is FromKind.IMAGE] == [
        False,
        True,
        True,
        True,
        True,
    ]
    assert pin_dockerfile_text(pinned, digests) == pinned


@pytest.mark.parametrize(
    ("dockerfile", "expected"),
    [
        ("FROM python:3.11\n", f"FROM python:3.11@{D1}\n"),
        ("FROM python:3.11", f"FROM python:3.11@{D1}"),  # no final newline
        ("\ufeffFROM python:3.11\r\nRUN x\r\n", f"\ufeffFROM python:3.11@{D1}\r\nRUN x\r\n"),
        ("  from   python:3.11   AS  base  \n", f"  from   python:3.11@{D1}   AS  base  \n"),
        (
            "FROM --platform=linux/arm64 python:3.11\n",
            f"FROM --platform=linux/arm64 python:3.11@{D1}\n",
        ),
        ("ARG B='python:3.11'\nFROM $B\n", f"ARG B='python:3.11@{D1}'\nFROM $B\n"),
        ('ARG B="python:3.11"\nFROM ${B}\n', f'ARG B="python:3.11@{D1}"\nFROM ${{B}}\n'),
        ("ARG B=python:3.11\nFROM ${B:+$B}\n", f"ARG B=python:3.11@{D1}\nFROM ${{B:+$B}}\n"),
        ("ARG V=3.11\nFROM python:$V\n", "ARG V=3.11\nFROM python:$V\n"),  # assembled
        ("FROM py\\\nthon:3.11\n", f"FROM py\\\nthon:3.11@{D1}\n"),
        ("# escape=`\nFROM `\n  python:3.11\n", f"# escape=`\nFROM `\n  python:3.11@{D1}\n"),
        (
            "FROM \\\n# a comment inside\n\n  python:3.11\n",
            f"FROM \\\n# a comment inside\n\n  python:3.11@{D1}\n",
        ),
    ],
)
def test_pin_edge_cases(dockerfile: str, expected: str) -> None:
    assert pin_dockerfile_text(dockerfile, {"python:3.11": D1}) == expected


def test_only_args_before_the_first_from_reach_from_lines() -> None:
    text = "ARG A=python:3.11\nFROM $A\nARG B=alpine:3\nFROM ${B:-debian:12}\n"
    assert [f.reference for f in parse_dockerfile(text)] == ["python:3.11", "debian:12"]


def test_build_args_override_defaults_but_cannot_be_pinned_in_place() -> None:
    text = "ARG BASE=python:3.11\nFROM $BASE\n"
    (entry,) = parse_dockerfile(text, build_args={"BASE": "python:3.12"})
    assert entry.reference == "python:3.12"
    assert entry.insert_at is None
    assert (
        pin_dockerfile_text(text, {"python:3.12": D1}, build_args={"BASE": "python:3.12"}) == text
    )


@pytest.mark.parametrize(
    ("dockerfile", "message"),
    [
        ("FROM\n", "Dockerfile line 1"),
        ("FROM a b c d\n", "Dockerfile line 1"),
        ("RUN x\nFROM Python:3\n", "Dockerfile line 2: 'Python:3' is not a valid image reference"),
        ("ARG X\nFROM $X\n", "Dockerfile line 2: FROM $X names no image: ARG X has no value"),
        ("FROM ${X#pattern}\n", "unsupported substitution"),
        (
            "ARG V\nFROM axsauze/vulkan-sdk:${V} AS sdk\n",
            "'axsauze/vulkan-sdk:' is not a valid image reference: '' is not a valid tag. "
            "(ARG V has no value)",
        ),
    ],
)
def test_unusable_from_lines_are_kept_with_the_reason(dockerfile: str, message: str) -> None:
    froms = parse_dockerfile(dockerfile)  # never raises: lint and pin report these
    assert froms[-1].kind is FromKind.UNRESOLVED
    with pytest.raises(UsageError) as caught:
        require_resolved(froms, "Dockerfile")
    assert message in caught.value.render()


# -- the pin use case ---------------------------------------------------------------


def _resolved(reference: str) -> ResolvedImage:
    ref = parse_reference(reference)
    return ResolvedImage(
        reference=reference,
        registry=ref.registry,
        repository=ref.repository,
        tag=ref.tag,
        index_digest=ref.digest or D2,
        media_type=OCI_INDEX,
        platforms=(),
        resolved_at=datetime(2024, 6, 1, tzinfo=UTC),
    )


def test_pin_reports_without_writing(tmp_path: Path) -> None:
    dockerfile = tmp_path / "Dockerfile"
    dockerfile.write_bytes(MULTI_STAGE.encode())
    asked: list[str] = []

    def resolve(reference: str) -> ResolvedImage:
        asked.append(reference)
        return _resolved(reference)

    result = pin_dockerfile(dockerfile, resolve)
    assert (result.changed, result.written) == (True, False)
    assert dockerfile.read_bytes() == MULTI_STAGE.encode()
    assert [e.status for e in result.entries] == [
        PinStatus.NOT_PINNED,
        PinStatus.PINNED,
        PinStatus.STAGE,
        PinStatus.STAGE,
        PinStatus.SCRATCH,
        PinStatus.PINNED,
        PinStatus.PINNED,
        PinStatus.ALREADY_PINNED,
    ]
    assert len(asked) == len(set(asked)) == 5  # each image once; pinned ones are checked too
    assert result.entries[0].pinned_reference is None  # the file cannot carry it
    assert result.entries[0].reason == (
        "${BASE} is assembled from several pieces (BASE, PY): "
        "there is no single place to put the digest"
    )
    assert "ARG BASE_IMAGE=python:3.11-slim" in (result.entries[0].fix or "")
    assert result.not_pinned == (result.entries[0],)
    assert result.entries[-1].pinned_reference == PINNED_ALPINE
    data = result.to_dict()
    assert data["from"][1]["resolved"]["index_digest"] == D2
    assert data["from"][2]["resolved"] is None


def test_pin_write_is_atomic_and_keeps_mode_and_symlinks(tmp_path: Path) -> None:
    real = tmp_path / "docker" / "Dockerfile.gpu"
    real.parent.mkdir()
    original = b"# \xff not utf-8 \r\nFROM python:3.11\r\n"
    real.write_bytes(original)
    real.chmod(0o640)
    link = tmp_path / "Dockerfile"
    link.symlink_to(real)

    result = pin_dockerfile(link, _resolved, write=True)

    assert result.written
    assert link.is_symlink()
    assert real.read_bytes() == original.replace(b"python:3.11", f"python:3.11@{D2}".encode())
    assert stat.S_IMODE(real.stat().st_mode) == 0o640
    assert [p.name for p in real.parent.iterdir()] == ["Dockerfile.gpu"]  # no temporary left behind


def test_pin_write_leaves_a_pinned_file_untouched(tmp_path: Path) -> None:
    dockerfile = tmp_path / "Dockerfile"
    dockerfile.write_text(f"FROM python:3.11@{D1}\n")
    before = dockerfile.stat().st_mtime_ns
    result = pin_dockerfile(dockerfile, _resolved, write=True)
    assert (result.changed, result.written) == (False, False)
    assert dockerfile.stat().st_mtime_ns == before
    assert result.images[0].index_digest == D1


def test_pin_errors_are_usage_errors(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match=r"The Dockerfile .*missing does not exist"):
        pin_dockerfile(tmp_path / "missing", _resolved)
    empty = tmp_path / "Dockerfile"
    empty.write_text("# nothing\nRUN true\n")
    with pytest.raises(UsageError, match="no FROM"):
        pin_dockerfile(empty, _resolved)


# -- the full instruction parser ------------------------------------------------------


FULL = """\
# syntax=docker/dockerfile:1.7
# check=skip=all
ARG BASE=python:3.11-slim
FROM --platform=$BUILDPLATFORM ${BASE} AS build
RUN --mount=type=cache,target=/root/.cache/pip --mount=type=secret,id=hf \\
    # a comment inside the continuation
    pip install -r req.txt
RUN <<EOF bash && cat <<-'TXT' > /x
set -e
# a script comment, not a Dockerfile comment
echo ok
EOF
\tliteral $HOME
\tTXT
COPY --chmod=755 --from=build ["/a b", "/c"]
ENV A=1 B="two words" \\
    C='three'
ENV LEGACY a value with spaces
ARG ONE TWO=2
FROM base-${TARGETARCH}
HEALTHCHECK --interval=30s CMD ["curl", "-f", "http://localhost/"]
"""


def test_instructions_flags_heredocs_and_exec_form() -> None:
    from lockd.images import key_values, split_instructions

    split = split_instructions(FULL)
    assert split.directives == {"syntax": "docker/dockerfile:1.7", "check": "skip=all"}
    assert [(i.line, i.keyword) for i in split.instructions] == [
        (3, "ARG"),
        (4, "FROM"),
        (5, "RUN"),
        (8, "RUN"),
        (15, "COPY"),
        (16, "ENV"),
        (18, "ENV"),
        (19, "ARG"),
        (20, "FROM"),
        (21, "HEALTHCHECK"),
    ]
    run = split.instructions[2]
    assert run.flag_values("mount") == ("type=cache,target=/root/.cache/pip", "type=secret,id=hf")
    assert run.arguments == "pip install -r req.txt"
    heredoc = split.instructions[3]
    assert [(h.name, h.strip_tabs, h.quoted, h.line) for h in heredoc.heredocs] == [
        ("EOF", False, False, 9),
        ("TXT", True, True, 13),
    ]
    assert heredoc.heredocs[0].body == (
        "set -e\n# a script comment, not a Dockerfile comment\necho ok"
    )
    assert heredoc.heredocs[1].body == "literal $HOME"
    assert heredoc.end_line == 14
    copy = split.instructions[4]
    assert (copy.flag("chmod"), copy.flag("from")) == ("755", "build")
    assert copy.exec_form == ("/a b", "/c")
    assert key_values(split.instructions[5].arguments) == (
        ("A", "1"),
        ("B", "two words"),
        ("C", "three"),
    )
    assert key_values(split.instructions[6].arguments, legacy=True) == (
        ("LEGACY", "a value with spaces"),
    )
    assert key_values(split.instructions[7].arguments) == (("ONE", None), ("TWO", "2"))
    assert split.instructions[9].exec_form == ("curl", "-f", "http://localhost/")
    assert 10 not in split.comments  # inside a heredoc body
    assert split.comments[6] == "a comment inside the continuation"


def test_platform_args_pick_the_stage_and_chain() -> None:
    from lockd.images import BuildOptions, parse_dockerfile_stages

    text = (
        "FROM --platform=linux/amd64 rocm/dev:6 AS base-amd64\n"
        "FROM --platform=linux/arm64 nvidia/l4t:36 AS base-arm64\n"
        "FROM base-${TARGETARCH} AS runtime\nUSER 1000\n"
        "FROM runtime\n"
    )
    amd = parse_dockerfile_stages(text, BuildOptions(build_platform="linux/amd64"))
    assert [s.source.reference for s in amd.stages] == [
        "rocm/dev:6",
        "nvidia/l4t:36",
        "base-amd64",
        "runtime",
    ]
    assert amd.final is not None
    assert [s.index for s in amd.chain(amd.final)] == [3, 2, 0]
    arm = parse_dockerfile_stages(text, BuildOptions(platform="linux/arm64/v8"))
    assert arm.stages[2].source.reference == "base-arm64"
    args = BuildOptions(platform="linux/arm64/v8", build_platform="linux/amd64").platform_args()
    assert args == {
        "TARGETPLATFORM": "linux/arm64/v8",
        "TARGETOS": "linux",
        "TARGETARCH": "arm64",
        "TARGETVARIANT": "v8",
        "BUILDPLATFORM": "linux/amd64",
        "BUILDOS": "linux",
        "BUILDARCH": "amd64",
        "BUILDVARIANT": "",
    }
