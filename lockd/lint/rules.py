"""Every lint rule, with its stable id (pure data; the checks live beside it).

Ids are grouped by family and never reused: ``LD0xx`` the file itself,
``LD1xx`` base images, ``LD2xx`` Python installs, ``LD3xx`` the final image,
``LD4xx`` secrets and remote sources.
"""

from __future__ import annotations

from .model import Rule, Severity

E, W, INFO = Severity.ERROR, Severity.WARNING, Severity.INFO

UNREADABLE = Rule(
    "LD001", "no-stage", E, "The Dockerfile has no FROM: nothing to build.",
    "Start every build stage with FROM <image>.",
)  # fmt: skip
LATEST = Rule(
    "LD101", "from-latest", E, "A base image without a tag (or :latest) and without a digest.",
    "Name a tag and pin its digest: `lockd images pin --write`.",
)  # fmt: skip
NO_DIGEST = Rule(
    "LD102", "from-without-digest", W, "A base image named by tag only: the tag can move.",
    "Pin it to a digest with `lockd images pin --write` (tag@sha256:…).",
)  # fmt: skip
UNPINNABLE = Rule(
    "LD103", "from-unpinnable", E,
    "A FROM lockd cannot pin in place: assembled from several ARGs, or an ARG without a value.",
    "Move the whole reference into one ARG default (ARG BASE_IMAGE=repo:tag) and FROM "
    "${BASE_IMAGE}; give every ARG a FROM uses a default.",
)  # fmt: skip
INVALID_FROM = Rule(
    "LD108", "from-invalid", E, "A FROM that names no valid image reference.",
    "Write FROM [--platform=<p>] <image> [AS <name>] with a lowercase repository, an optional "
    ":tag and an optional @sha256: digest of 64 hex digits.",
)  # fmt: skip
PYTHON_MISMATCH = Rule(
    "LD104", "base-python-mismatch", E,
    "The final stage's Python is not the Python the lock's target was resolved for.",
    "Use a base image with the target's Python (python:3.11-slim for py311), or lock for "
    "the base's Python.",
    needs_lock=True,
)  # fmt: skip
NVCC_TOO_OLD = Rule(
    "LD105", "build-nvcc-mismatch", E,
    "A build stage compiles with an nvcc older than (or of another major than) the lock's "
    "CUDA: extensions built against torch fail or load the wrong runtime.",
    "Build FROM a -devel image of the lock's CUDA (nvidia/cuda:<lock CUDA>-devel-…).",
    needs_lock=True,
)  # fmt: skip
DRIVER_FLOOR = Rule(
    "LD106", "runtime-cuda-mismatch", W,
    "The final stage's CUDA image sets a driver floor that does not match the lock's CUDA.",
    "Base the final stage on the lock's CUDA runtime (or a plain Python image: the CUDA wheels "
    "bring their own runtime), so the image starts on exactly the hosts torch can use.",
    needs_lock=True,
)  # fmt: skip
DEVEL_FINAL = Rule(
    "LD107", "devel-image-final", W,
    "The final stage is a CUDA -devel image: compilers and headers ship to production.",
    "Build in a -devel stage and copy the result into a -runtime (or slim Python) final stage.",
)  # fmt: skip
TORCH_FALLBACK = Rule(
    "LD201", "torch-without-variant-index", E,
    "The PyTorch family installed by name without the variant index: pip silently takes "
    "another build (PyPI's CUDA wheel on Linux x86_64, a CPU wheel elsewhere).",
    "Install the lock (pip install --require-hashes -r locks/<target>.requirements.txt), or "
    "at least pass --index-url https://download.pytorch.org/whl/<variant>.",
)  # fmt: skip
UNLOCKED_INSTALL = Rule(
    "LD202", "install-without-lock", W,
    "A pip/uv install that is not the lock and does not enforce hashes.",
    "Install the lock: pip install --require-hashes --no-deps -r locks/<target>.requirements.txt "
    "(or uv pip sync locks/pylock.<target>.toml); install the project itself with --no-deps.",
)  # fmt: skip
PIP_CACHE = Rule(
    "LD203", "pip-cache-kept", W,
    "pip/uv downloads cached in an image layer that ships: hundreds of MB for CUDA wheels.",
    "Use a BuildKit cache mount (RUN --mount=type=cache,target=/root/.cache/pip) or "
    "--no-cache-dir (uv: --no-cache).",
)  # fmt: skip
COMPILERS_FINAL = Rule(
    "LD301", "compilers-in-final", W,
    "Compilers or a CUDA toolkit installed in the final image.",
    "Compile in a build stage and copy only the results into the final stage.",
)  # fmt: skip
ROOT_USER = Rule(
    "LD302", "final-user-root", W, "The final stage runs as root.",
    "Add a non-root user and end with USER <uid>:<gid> (a numeric uid suits Kubernetes' "
    "runAsNonRoot).",
)  # fmt: skip
NO_HEALTHCHECK = Rule(
    "LD303", "serving-without-healthcheck", W,
    "A serving image (it exposes a port or starts a server) without a HEALTHCHECK.",
    "Add HEALTHCHECK CMD <probe of your service> (or HEALTHCHECK NONE where the orchestrator "
    "probes it).",
)  # fmt: skip
APT_RECOMMENDS = Rule(
    "LD304", "apt-recommends", INFO,
    "apt-get install without --no-install-recommends in the final image.",
    "Add --no-install-recommends.",
)  # fmt: skip
APT_LISTS = Rule(
    "LD305", "apt-lists-kept", INFO,
    "apt package lists left in the final image's layer.",
    "End the same RUN with rm -rf /var/lib/apt/lists/* (or mount a cache on /var/lib/apt).",
)  # fmt: skip
SECRET_VALUE = Rule(
    "LD401", "secret-in-dockerfile", E,
    "A token (hf_…, ghp_…, AKIA…, sk-…, a private key) written into the Dockerfile: it stays "
    "in the image and in version control.",
    "Revoke it, and pass secrets at build time with RUN --mount=type=secret.",
)  # fmt: skip
SECRET_NAME = Rule(
    "LD402", "secret-in-env-or-arg", W,
    "A secret-looking ENV/ARG (…_TOKEN, …_KEY, PASSWORD…): its value ends up in the image "
    "config or history.",
    "Use RUN --mount=type=secret,id=<name> for build secrets, and runtime configuration for "
    "the container's.",
)  # fmt: skip
REMOTE_ADD = Rule(
    "LD403", "add-remote-url", W,
    "ADD of a remote URL without --checksum: the content can change between builds.",
    "Add --checksum=sha256:<hash> (BuildKit) or download and verify in a RUN.",
)  # fmt: skip

RULES: tuple[Rule, ...] = (
    UNREADABLE,
    LATEST,
    NO_DIGEST,
    UNPINNABLE,
    PYTHON_MISMATCH,
    NVCC_TOO_OLD,
    DRIVER_FLOOR,
    DEVEL_FINAL,
    INVALID_FROM,
    TORCH_FALLBACK,
    UNLOCKED_INSTALL,
    PIP_CACHE,
    COMPILERS_FINAL,
    ROOT_USER,
    NO_HEALTHCHECK,
    APT_RECOMMENDS,
    APT_LISTS,
    SECRET_VALUE,
    SECRET_NAME,
    REMOTE_ADD,
)
