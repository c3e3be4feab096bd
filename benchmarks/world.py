"""A PyTorch-shaped package world for the matrix benchmarks, built in code.

Served by the tests' ``IndexServer`` on 127.0.0.1 with a configurable latency
per request (``server.latency_s``): ``/simple`` is PyPI-shaped (JSON pages with
upload times, PEP 658 metadata), ``/whl/<variant>`` PyTorch-shaped (HTML,
root-relative ``%2B`` hrefs, no upload times) for ``cpu``, ``cu121`` and
``cu124``. The shapes follow the real indexes: a CUDA torch requires thirteen
``nvidia-*-cu12`` runtime wheels (served by the default index) and ``triton``
(served by the variant index next to torch, so lockd promotes it), the
variant indexes host old copies of ordinary packages, and every binary
package has one wheel per CPython (3.10, 3.11, 3.12) for manylinux x86_64.
"""

from __future__ import annotations

from tests.support.pyindex import Index, IndexServer
from tests.support.wheels import WheelSpec as W

PYTHONS = ("3.10", "3.11", "3.12")
VARIANTS = ("cpu", "cu121", "cu124")
LINUX = "manylinux_2_17_x86_64.manylinux2014_x86_64"
LINUX_MARKER = 'platform_system == "Linux" and platform_machine == "x86_64"'
REQUIREMENTS = (
    "torch>=2.5",
    "torchvision",
    "numpy",
    "pandas",
    "requests",
    "pillow",
    "pyyaml",
    "tqdm",
    "jinja2",
)

# Ordinary packages on the default index: name -> [(version, requires)], a few
# versions each so the resolver has choices. Binary ones get a wheel per Python.
PURE: dict[str, list[tuple[str, tuple[str, ...]]]] = {
    "filelock": [("3.15.4", ()), ("3.16.1", ())],
    "typing-extensions": [("4.11.0", ()), ("4.12.2", ())],
    "fsspec": [("2024.9.0", ()), ("2024.10.0", ())],
    "networkx": [("3.3", ()), ("3.4.2", ())],
    "mpmath": [("1.3.0", ())],
    "sympy": [("1.13.1", ("mpmath<1.4,>=1.1.0",)), ("1.13.3", ("mpmath<1.4,>=1.1.0",))],
    "jinja2": [("3.1.3", ("MarkupSafe>=2.0",)), ("3.1.4", ("MarkupSafe>=2.0",))],
    "idna": [("3.8", ()), ("3.10", ())],
    "urllib3": [("2.2.2", ()), ("2.2.3", ())],
    "certifi": [("2024.8.30", ())],
    "requests": [
        (v, ("charset-normalizer<4,>=2", "idna<4,>=2.5", "urllib3<3,>=1.21.1", "certifi"))
        for v in ("2.32.2", "2.32.3")
    ],
    "six": [("1.16.0", ())],
    "python-dateutil": [("2.9.0.post0", ("six>=1.5",))],
    "pytz": [("2024.1", ()), ("2024.2", ())],
    "tzdata": [("2024.1", ()), ("2024.2", ())],
    "tqdm": [("4.66.5", ('colorama; platform_system == "Windows"',)), ("4.67.1", ())],
    "colorama": [("0.4.6", ())],
    "setuptools": [("75.1.0", ()), ("75.6.0", ())],
}
BINARY: dict[str, list[tuple[str, tuple[str, ...]]]] = {
    "numpy": [("2.0.2", ()), ("2.1.3", ())],
    "pandas": [
        (
            v,
            (
                'numpy>=1.22.4; python_version < "3.11"',
                'numpy>=1.23.2; python_version == "3.11"',
                'numpy>=1.26.0; python_version >= "3.12"',
                "python-dateutil>=2.8.2",
                "pytz>=2020.1",
                "tzdata>=2022.7",
            ),
        )
        for v in ("2.2.2", "2.2.3")
    ],
    "pillow": [("10.4.0", ()), ("11.0.0", ())],
    "pyyaml": [("6.0.1", ()), ("6.0.2", ())],
    "markupsafe": [("2.1.5", ()), ("3.0.2", ())],
    "charset-normalizer": [("3.3.2", ()), ("3.4.0", ())],
}
# The CUDA runtime wheels each torch build requires (served by the default index).
NVIDIA = {
    "cu121": {
        "nvidia-cuda-nvrtc-cu12": "12.1.105",
        "nvidia-cuda-runtime-cu12": "12.1.105",
        "nvidia-cuda-cupti-cu12": "12.1.105",
        "nvidia-cudnn-cu12": "9.1.0.70",
        "nvidia-cublas-cu12": "12.1.3.1",
        "nvidia-cufft-cu12": "11.0.2.54",
        "nvidia-curand-cu12": "10.3.2.106",
        "nvidia-cusolver-cu12": "11.4.5.107",
        "nvidia-cusparse-cu12": "12.1.0.106",
        "nvidia-nccl-cu12": "2.21.5",
        "nvidia-nvtx-cu12": "12.1.105",
        "nvidia-nvjitlink-cu12": "12.4.127",
    },
    "cu124": {
        "nvidia-cuda-nvrtc-cu12": "12.4.127",
        "nvidia-cuda-runtime-cu12": "12.4.127",
        "nvidia-cuda-cupti-cu12": "12.4.127",
        "nvidia-cudnn-cu12": "9.1.0.70",
        "nvidia-cublas-cu12": "12.4.5.8",
        "nvidia-cufft-cu12": "11.2.1.3",
        "nvidia-curand-cu12": "10.3.5.147",
        "nvidia-cusolver-cu12": "11.6.1.9",
        "nvidia-cusparse-cu12": "12.3.1.170",
        "nvidia-cusparselt-cu12": "0.6.2",
        "nvidia-nccl-cu12": "2.21.5",
        "nvidia-nvtx-cu12": "12.4.127",
        "nvidia-nvjitlink-cu12": "12.4.127",
    },
}
NVIDIA_REQUIRES = {
    "nvidia-cudnn-cu12": ("nvidia-cublas-cu12",),
    "nvidia-cusolver-cu12": ("nvidia-cublas-cu12", "nvidia-nvjitlink-cu12", "nvidia-cusparse-cu12"),
    "nvidia-cusparse-cu12": ("nvidia-nvjitlink-cu12",),
}
# variant -> (torch version, torchvision version, triton version or None)
TORCH = {
    "cpu": [("2.5.1", "0.20.1", None), ("2.6.0", "0.21.0", None)],
    "cu121": [("2.5.1", "0.20.1", "3.1.0")],
    "cu124": [("2.5.1", "0.20.1", "3.1.0"), ("2.6.0", "0.21.0", "3.2.0")],
}


def _cp(python: str) -> str:
    return "cp" + python.replace(".", "")


def _binary_tag(python: str) -> str:
    return f"{_cp(python)}-{_cp(python)}-{LINUX}"


def build_matrix_world(server: IndexServer, pythons: tuple[str, ...] = PYTHONS) -> IndexServer:
    """Add the default index and the three variant indexes to ``server``."""
    _default_index(server.pypi("simple"), pythons)
    for variant in VARIANTS:
        _variant_index(server.pytorch(variant), variant, pythons)
    return server


def _default_index(pypi: Index, pythons: tuple[str, ...]) -> None:
    for name, releases in PURE.items():
        for version, requires in releases:
            pypi.add(W(name, version, requires=requires))
    for name, releases in BINARY.items():
        for version, requires in releases:
            for python in pythons:
                pypi.add(W(name, version, _binary_tag(python), requires=requires))
    # PyPI's own triton (the variant index's copy is the one a CUDA lock must take)
    for version in ("3.1.0", "3.2.0"):
        for python in pythons:
            pypi.add(W("triton", version, _binary_tag(python), ("filelock",)))
    runtime = {(name, version) for wheels in NVIDIA.values() for name, version in wheels.items()}
    for name, version in sorted(runtime):  # one runtime wheel may serve both CUDA versions
        pypi.add(W(name, version, "py3-none-manylinux2014_x86_64", NVIDIA_REQUIRES.get(name, ())))


def _variant_index(index: Index, variant: str, pythons: tuple[str, ...]) -> None:
    # old copies of ordinary packages: the trap the routing avoids
    index.add(W("filelock", "3.13.1"), upload_time=None)
    index.add(W("typing-extensions", "4.9.0"), upload_time=None)
    for python in pythons:
        index.add(W("numpy", "1.26.3", _binary_tag(python)), upload_time=None)
    tritons = {triton for _, _, triton in TORCH[variant] if triton}
    for triton in sorted(tritons):
        for python in pythons:
            index.add(W("triton", triton, _binary_tag(python), ("filelock",)), upload_time=None)
    for torch, vision, triton in TORCH[variant]:
        requires = _torch_requires(variant, triton)
        for python in pythons:
            tag = _binary_tag(python)
            index.add(W("torch", f"{torch}+{variant}", tag, requires), upload_time=None)
            vision_requires = (f"torch=={torch}", "numpy", "pillow")
            vision_wheel = W("torchvision", f"{vision}+{variant}", tag, vision_requires)
            index.add(vision_wheel, upload_time=None)


def _torch_requires(variant: str, triton: str | None) -> tuple[str, ...]:
    requires = [
        "filelock",
        "typing-extensions>=4.8.0",
        "networkx",
        "jinja2",
        "fsspec",
        'sympy==1.13.1; python_version >= "3.9"',
        'setuptools; python_version >= "3.12"',
    ]
    runtime = NVIDIA.get(variant, {})
    requires += [f"{name}=={version}; {LINUX_MARKER}" for name, version in runtime.items()]
    if triton:
        requires.append(f"triton=={triton}; {LINUX_MARKER}")
    return tuple(requires)


def targets(pythons: tuple[str, ...] = PYTHONS, variants: tuple[str, ...] = VARIANTS) -> list[str]:
    """lockd's matrix flags for linux-x86_64 × ``pythons`` × ``variants``."""
    flags = ["--platform", "linux-x86_64"]
    for python in pythons:
        flags += ["--python", python]
    for variant in variants:
        flags += ["--cuda", variant]
    return flags
