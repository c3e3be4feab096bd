"""Base image tags resolved again against the digests recorded with the lockset."""

from __future__ import annotations

from ...drift import CheckError, Finding, compare_image
from ...lockset import Lockset
from ...urls import redact


def image_findings(
    lockset: Lockset, environ: dict[str, str]
) -> tuple[list[Finding], list[CheckError]]:
    """Where each recorded base image's reference points now (one HEAD per tag)."""
    from ...errors import ImageNotFoundError, RegistryError
    from ...images import RegistryClient, RegistryOptions

    findings: list[Finding] = []
    errors: list[CheckError] = []
    with RegistryClient(RegistryOptions.from_env(environ)) as client:
        for image in lockset.images:
            reference = str(image.get("reference"))
            recorded = str(image.get("index_digest"))
            try:
                current: str | None = client.digest(reference)
            except ImageNotFoundError:  # the tag, digest or repository is gone
                current = None
            except RegistryError as err:
                errors.append(CheckError(None, f"image {reference}", redact(err.render())))
                continue
            findings += compare_image(reference, recorded, current)
    return findings, errors
