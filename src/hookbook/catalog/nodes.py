"""A catalog node as stored, and what its state allows: which writes and reads it
takes (its family, whether its stream is closed, whether its data is in)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from ..errors import ClientInputError, ConflictError, NotAStreamError, StreamClosedError
from ..paths import join_path, parse_path

if TYPE_CHECKING:
    from ..protocol import TableStructure

__all__ = ["Node", "check_open", "check_partition", "check_readable", "check_writable"]


@dataclass(frozen=True)
class Node:
    """One catalog entry, as stored."""

    id: int
    path: tuple[str, ...]
    structure_family: str
    metadata: dict[str, Any]
    specs: list[dict[str, Any]]
    structure: dict[str, Any] | None
    data_location: str | None
    announced: bool
    stream_closed: bool
    time_created: datetime
    time_updated: datetime

    @property
    def key(self) -> str:
        return self.path[-1] if self.path else ""

    @classmethod
    def from_row(cls, row: Any) -> Node:
        return cls(
            id=row.id,
            path=parse_path(row.path),
            structure_family=row.structure_family,
            metadata=row.metadata,
            specs=row.specs,
            structure=row.structure,
            data_location=row.data_location,
            announced=bool(row.announced),
            stream_closed=row.stream_closed,
            time_created=row.time_created,
            time_updated=row.time_updated,
        )


def check_writable(node: Node, family: str) -> None:
    """``node`` takes ``family`` data: it is of that family and its stream is open."""
    if node.structure_family == "container":
        raise NotAStreamError(f"{join_path(node.path)!r} is a container: it holds no {family} data")
    _check_family(node, family)
    check_open(node)


def check_open(node: Node) -> None:
    """``node``'s stream is not closed."""
    if node.stream_closed:
        raise StreamClosedError(
            f"{join_path(node.path)!r} is closed: it takes no more data", path=list(node.path)
        )


def check_readable(node: Node, family: str) -> None:
    """``node`` is of ``family`` and its data is in (it has been announced)."""
    _check_family(node, family)
    if not node.announced:
        raise ConflictError(f"no data has been written to {join_path(node.path)!r} yet")


def _check_family(node: Node, family: str) -> None:
    if node.structure_family != family:
        raise ConflictError(
            f"{join_path(node.path)!r} is {with_article(node.structure_family)}, "
            f"not {with_article(family)}"
        )


def check_partition(node: Node, structure: TableStructure, partition: int) -> None:
    """``partition`` is one of the table's."""
    if not 0 <= partition < structure.npartitions:
        raise ClientInputError(
            f"partition {partition} does not exist: {join_path(node.path)!r} has "
            f"{structure.npartitions} (0 to {structure.npartitions - 1})"
        )


def with_article(family: str) -> str:
    """``"an array"``, ``"a table"``: a family name with its article."""
    return ("an " if family[:1] in "aeiou" else "a ") + family
