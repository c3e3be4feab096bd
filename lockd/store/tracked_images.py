"""Images tracked per project: ``drift --all`` checks each against a target's lock."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlmodel import Session, col, select

from .chain import project_id
from .tables import ProjectRow, TrackedImageRow


@dataclass(frozen=True, slots=True)
class TrackedImage:
    """An image checked by ``drift --all``, against ``target`` of its project's latest lockset."""

    project: str
    reference: str
    target: str
    created_at: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "project": self.project,
            "reference": self.reference,
            "target": self.target,
            "created_at": self.created_at,
        }


def track_image(session: Session, project: str, reference: str, target: str) -> bool:
    """Track an image for ``project``; ``False`` when it already was."""
    owner = project_id(session, project)
    if session.exec(
        select(TrackedImageRow).where(
            TrackedImageRow.project_id == owner,
            TrackedImageRow.reference == reference,
            TrackedImageRow.target == target,
        )
    ).first():
        return False
    session.add(
        TrackedImageRow(
            project_id=owner, reference=reference, target=target, created_at=datetime.now(UTC)
        )
    )
    return True


def untrack_image(session: Session, project: str, reference: str, target: str) -> bool:
    """Stop tracking; ``False`` when the image was not tracked for that target."""
    owner = session.exec(select(ProjectRow.id).where(ProjectRow.name == project)).first()
    row = session.exec(
        select(TrackedImageRow).where(
            TrackedImageRow.project_id == owner,
            TrackedImageRow.reference == reference,
            TrackedImageRow.target == target,
        )
    ).first()
    if row is None:
        return False
    session.delete(row)
    return True


def tracked_images(session: Session, project: str | None = None) -> list[TrackedImage]:
    """Tracked images, by project and order of tracking."""
    query = (
        select(TrackedImageRow, ProjectRow)
        .join(ProjectRow)
        .order_by(ProjectRow.name, col(TrackedImageRow.id))
    )
    if project:
        query = query.where(ProjectRow.name == project)
    return [
        TrackedImage(
            project=proj.name,
            reference=row.reference,
            target=row.target,
            created_at=row.created_at.replace(tzinfo=None).isoformat(timespec="seconds") + "Z",
        )
        for row, proj in session.exec(query).all()
    ]
