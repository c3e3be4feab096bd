"""Dockerfile FROM parsing and pinning (pure), and the pin use case's atomic write."""

from __future__ import annotations

import os
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
)

D1, D2, D3 = (f"sha256:{c * 64}" for c in "abc")

MULTI_STAGE = """\
# syntax=docker/dockerfile:1.7
ARG PY=3.11
ARG BASE="python:${PY}-slim"
ARG CUDA_IMAGE=nvidia/cuda:12.4.1-runtime-ubuntu22.04
ARG UNSET

FROM --platform=$BUILDPLATFORM ${BASE} AS build
ARG NOT_SEEN_BY_FROM=alpine:3
RUN <<EOF
FROM this-is-a-heredoc-line:1
