"""LD1xx: base images: tags, digests, ARG templates, CUDA and Python against the lock."""

from __future__ import annotations

from lockd.errors import clipped, sentence
from lockd.images import FromKind, Stage, parse_reference

from . import rules
from .baseimage import version_text
from .context import Context


def check_base_images(ctx: Context) -> None:
    """LD101–LD108."""
    for stage in ctx.dockerfile.stages:
        source = stage.source
        if source.kind is FromKind.UNRESOLVED:
            # An ARG without a usable value, or text that is no image reference at all.
            rule = rules.UNPINNABLE if source.variables else rules.INVALID_FROM
            problem = sentence(source.problem or "no usable reference")
            ctx.report(rule, source.line, f"FROM {clipped(source.image)}: {problem}")
            continue
        if source.kind is not FromKind.IMAGE or source.is_pinned:
            continue
        tag = parse_reference(source.reference).tag
        if source.unpinnable:
            ctx.report(
                rules.UNPINNABLE,
                source.line,
                f"FROM {source.unpinnable}; it resolves to {source.reference}.",
            )
        if tag in (None, "latest"):
            ctx.report(
                rules.LATEST,
                source.line,
                f"FROM {source.reference} has {'the tag latest' if tag else 'no tag'} and no "
                "digest: every build may get another image.",
            )
        elif not source.unpinnable:
            ctx.report(
                rules.NO_DIGEST,
                source.line,
                f"FROM {source.reference} is not pinned to a digest.",
            )
    final = ctx.dockerfile.final
    if final is not None and ctx.facts(final).devel:
        ctx.report(
            rules.DEVEL_FINAL,
            final.source.line,
            f"The final stage builds on {_root_reference(ctx, final)}, a CUDA image with "
            "compilers and headers.",
        )
    _check_against_lock(ctx)


def _root_reference(ctx: Context, stage: Stage) -> str:
    return ctx.dockerfile.chain(stage)[-1].source.reference


def _check_against_lock(ctx: Context) -> None:
    lock = ctx.lock
    final = ctx.dockerfile.final
    if lock is None or final is None:
        return
    what = f"the lock's target {lock.target}" if lock.target else "the lock"
    final_facts = ctx.facts(final)
    if lock.python and final_facts.python and final_facts.python != lock.python:
        ctx.report(
            rules.PYTHON_MISMATCH,
            final.source.line,
            f"The final stage's Python is {version_text(final_facts.python)}, but {what} "
            f"was resolved for Python {version_text(lock.python)}: its wheels will not install "
            "or will not import.",
        )
    for stage in ctx.dockerfile.stages:
        facts = ctx.facts(stage)
        if not (facts.devel and facts.cuda and lock.cuda):
            continue
        if facts.cuda < lock.cuda or facts.cuda[0] != lock.cuda[0]:
            ctx.report(
                rules.NVCC_TOO_OLD,
                stage.source.line,
                f"Stage {stage.name} compiles with CUDA {version_text(facts.cuda)}'s nvcc, but "
                f"{what} installs torch for CUDA {version_text(lock.cuda)}.",
            )
    cuda = final_facts.cuda
    if cuda is None or final_facts.devel:
        return
    if lock.accelerator == "cpu":
        ctx.report(
            rules.DRIVER_FLOOR,
            final.source.line,
            f"The final stage is a CUDA {version_text(cuda)} image, but {what} is a CPU build: "
            "gigabytes of CUDA libraries and an NVIDIA driver requirement for nothing.",
        )
    elif lock.cuda and cuda != lock.cuda:
        why = (
            "it also starts on hosts whose driver is too old for the lock's CUDA"
            if cuda < lock.cuda
            else "it refuses hosts whose driver would run the lock's CUDA"
        )
        ctx.report(
            rules.DRIVER_FLOOR,
            final.source.line,
            f"The final stage is a CUDA {version_text(cuda)} image (driver floor CUDA "
            f"{version_text(cuda)}), but {what} uses CUDA {version_text(lock.cuda)}: {why}.",
        )
