"""What an image reference and a stage's ``ENV`` say about CUDA and Python (pure).

Read from names only, never from a registry: ``nvidia/cuda:12.4.1-devel-ubuntu22.04``
is CUDA 12.4 with the compiler, ``pytorch/pytorch:2.4.0-cuda12.4-cudnn9-runtime``
CUDA 12.4 without it, ``python:3.12-slim`` Python 3.12. ``ENV CUDA_VERSION=…``
and ``ENV PYTHON_VERSION=…`` in a stage (as NVIDIA's and the official Python
images set them) say the same where a tag does not. What none of these say is
unknown, and the rules that need it stay silent.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from lockd.errors import UsageError
from lockd.images import ImageRef, Instruction, key_values, parse_reference

_CUDA_TAG = re.compile(r"(?:^|[-_])(?:cuda|cu)-?(\d{1,2})\.?(\d)(?:\.\d+)?(?=$|[-_.])")
_CU_COMPACT = re.compile(r"(?:^|[-_])cu(\d{2})(\d)(?=$|[-_.])")
_VERSION_START = re.compile(r"^(\d{1,2})\.(\d{1,2})")
_PY_TAG = re.compile(r"(?:^|[-_])(?:py|python)(3)\.?(1\d|[6-9])(?=$|[-_.])")
# NGC framework images carry the whole CUDA toolkit, nvcc included.
_NGC_DEVEL = ("nvcr.io/nvidia/pytorch", "nvcr.io/nvidia/tensorflow", "nvcr.io/nvidia/jax")


@dataclass(frozen=True, slots=True)
class ImageFacts:
    """What a base image's name (and its stage's ENV) tells."""

    cuda: tuple[int, int] | None = None
    devel: bool = False  # ships nvcc and headers
    python: tuple[int, int] | None = None


def reference_facts(reference: str) -> ImageFacts:
    """CUDA, ``-devel`` and Python as an image's name tells them."""
    try:
        ref = parse_reference(reference)
    except UsageError:
        return ImageFacts()
    tag = (ref.tag or "").lower()
    repository = ref.repository.lower()
    cuda = _cuda(ref, tag)
    devel = (cuda is not None and "devel" in re.split(r"[-_.]", tag)) or any(
        f"{ref.registry}/{repository}".startswith(prefix) for prefix in _NGC_DEVEL
    )
    return ImageFacts(cuda, devel, _python(repository, tag))


def _cuda(ref: ImageRef, tag: str) -> tuple[int, int] | None:
    repository = ref.repository.lower()
    if repository.rsplit("/", 1)[-1] == "cuda" and (match := _VERSION_START.match(tag)):
        return int(match[1]), int(match[2])
    for pattern in (_CUDA_TAG, _CU_COMPACT):
        if match := pattern.search(tag):
            return int(match[1]), int(match[2])
    return None


def _python(repository: str, tag: str) -> tuple[int, int] | None:
    if repository.rsplit("/", 1)[-1] == "python" and (match := _VERSION_START.match(tag)):
        return int(match[1]), int(match[2])
    if match := _PY_TAG.search(tag):
        return int(match[1]), int(match[2])
    return None


def env_facts(instructions: Iterable[Instruction], inherited: ImageFacts) -> ImageFacts:
    """``inherited`` updated by a stage's ``ENV CUDA_VERSION`` / ``ENV PYTHON_VERSION``."""
    cuda, python = inherited.cuda, inherited.python
    for instruction in instructions:
        if instruction.keyword != "ENV":
            continue
        for name, value in key_values(instruction.arguments, legacy=True):
            match = _VERSION_START.match(value or "")
            if match is None or "$" in (value or ""):
                continue
            version = int(match[1]), int(match[2])
            if name == "CUDA_VERSION":
                cuda = version
            elif name == "PYTHON_VERSION":
                python = version
    return ImageFacts(cuda, inherited.devel, python)


def version_text(version: tuple[int, int]) -> str:
    """``(12, 4)`` -> ``"12.4"``."""
    return "{}.{}".format(*version)
