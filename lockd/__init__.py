"""lockd: dependency locks, CUDA verification, image digests and drift detection for ML."""

__version__ = "0.1.0"
__all__ = ["__version__"]
