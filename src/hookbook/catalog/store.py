"""The catalog store: nodes, their data files and the events they record.

Every change runs in one write transaction together with its event row and,
through the ``on_event`` hook the webhook engine installs, the outbox rows of
every matching webhook. A change that fails records nothing and leaves no
data file behind.

Arrays and tables announce themselves (``container-child-created``) only when
their data is stored and readable: creating one declares its structure, and
the first full write of its data records the event.
"""

from __future__ import annotations

import asyncio
import json
import math
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import sqlalchemy as sa

from .. import events as ev
from ..config import Limits
from ..db import Database, WriteTransaction, nodes
from ..db import events as events_table
from ..errors import (
    AlreadyExistsError,
    ClientInputError,
    ConflictError,
    InvalidDataError,
    InvalidPathError,
    NotAStreamError,
    NotFoundError,
    PayloadTooLargeError,
    StreamClosedError,
)
from ..protocol import ArrayPatchParams, ArrayStructure, TableStructure, normalise_specs
from . import files, validation
from .paths import check_key, join_path, parse_path

FAMILIES = ("container", "array", "table")

#: How often a data write is computed again when other writers keep getting in first.
_WRITE_ATTEMPTS = 50


class _Stale(Exception):
    """The node's data changed between reading it and swapping in the new file."""


#: Called inside the write transaction after an event row is inserted:
#: ``(tx, event_row_id, event_type, path_segments)``.
EventHook = Callable[[WriteTransaction, int, str, tuple[str, ...]], Awaitable[None]]


@dataclass(frozen=True)
class Node:
    """One catalog entry, as stored."""

    id: int
    path: tuple[str, ...]
    structure_family: str
    metadata: dict[str, Any]
    specs: list[dict[str, Any]]
    structure: dict[str, Any] | None
    data_file: str | None
    stream_closed: bool
    time_created: datetime
    time_updated: datetime

    @property
    def key(self) -> str:
        return self.path[-1] if self.path else ""

    @property
    def has_data(self) -> bool:
        return self.structure_family == "container" or self.data_file is not None

    @classmethod
    def from_row(cls, row: Any) -> Node:
        return cls(
            id=row.id,
            path=parse_path(row.path),
            structure_family=row.structure_family,
            metadata=row.metadata,
            specs=row.specs,
            structure=row.structure,
            data_file=row.data_file,
            stream_closed=row.stream_closed,
            time_created=row.time_created,
            time_updated=row.time_updated,
        )


class CatalogStore:
    """Reads and writes the node tree of one server."""

    def __init__(self, db: Database, directory: Path, limits: Limits) -> None:
        self.db = db
        self.directory = directory
        self.limits = limits
        self.on_event: EventHook | None = None

    # ---- set-up -------------------------------------------------------------

    async def ensure_root(self) -> None:
        try:
            await self._ensure_root()
        except sa.exc.IntegrityError:
            # PostgreSQL: another process starting at the same moment inserted it first.
            pass

    async def _ensure_root(self) -> None:
        async with self.db.write() as tx:
            found = await tx.execute(sa.select(nodes.c.id).where(nodes.c.path == ""))
            if found.first() is None:
                stamp = ev.now()
                await tx.execute(
                    nodes.insert().values(
                        parent_id=None,
                        key="",
                        path="",
                        structure_family="container",
                        metadata={},
                        specs=[],
                        structure=None,
                        data_file=None,
                        stream_closed=False,
                        time_created=stamp,
                        time_updated=stamp,
                    )
                )

    # ---- reads --------------------------------------------------------------

    async def get(self, path: str | Sequence[str]) -> Node:
        segments = parse_path(path)
        async with self.db.read() as conn:
            return await self._get(conn, segments)

    async def _get(self, conn: Any, segments: tuple[str, ...], *, lock: bool = False) -> Node:
        """The node at ``segments``; ``lock``: lock its row until the transaction
        ends (``FOR UPDATE`` on PostgreSQL; SQLite writers are serialised anyway)."""
        query = sa.select(nodes).where(nodes.c.path == join_path(segments))
        if lock:
            query = query.with_for_update()
        row = (await conn.execute(query)).first()
        if row is None:
            raise NotFoundError(f"no node at path {join_path(segments)!r}", path=list(segments))
        return Node.from_row(row)

    async def children(
        self,
        path: str | Sequence[str],
        *,
        offset: int = 0,
        limit: int | None = None,
        descending: bool = False,
    ) -> tuple[list[Node], int]:
        """A page of a container's children (in creation order) and their total count.

        The page also stops before the child whose stored metadata and structure would
        take it over ``limits.max_page_bytes`` (it holds at least one), so that no
        listing loads hundreds of MB: the caller pages on from what it got.
        """
        segments = parse_path(path)
        async with self.db.read() as conn:
            parent = await self._get(conn, segments)
            if parent.structure_family != "container":
                raise ConflictError(f"{join_path(segments)!r} is not a container")
            count = (
                await conn.execute(sa.select(sa.func.count()).where(nodes.c.parent_id == parent.id))
            ).scalar_one()

            def page(*columns: Any) -> Any:
                query = (
                    sa.select(*columns)
                    .where(nodes.c.parent_id == parent.id)
                    .order_by(nodes.c.id.desc() if descending else nodes.c.id)
                    .offset(offset)
                )
                return query if limit is None else query.limit(limit)

            sizes = (await conn.execute(page(_STORED_BYTES))).scalars().all()
            fitting = _fitting(sizes, self.limits.max_page_bytes)
            rows = (await conn.execute(page(nodes).limit(fitting))).all()
        return [Node.from_row(r) for r in rows], count

    async def count_children(self, node: Node) -> int:
        async with self.db.read() as conn:
            return (
                await conn.execute(sa.select(sa.func.count()).where(nodes.c.parent_id == node.id))
            ).scalar_one()

    def read_array(self, node: Node) -> np.ndarray:
        self._require_data(node, "array")
        assert node.data_file is not None
        return files.read_array(self.directory, node.data_file)

    def read_table(self, node: Node) -> Any:
        self._require_data(node, "table")
        assert node.data_file is not None
        return files.read_table(self.directory, node.data_file)

    async def load_array(self, path: str | Sequence[str]) -> tuple[Node, np.ndarray]:
        """The node at ``path`` and its array, read consistently: when a writer
        replaces the file between the lookup and the read (an append), read again."""
        return await self._load(path, self.read_array)

    async def load_table(self, path: str | Sequence[str]) -> tuple[Node, Any]:
        """The node at ``path`` and its ``pyarrow.Table`` (see :meth:`load_array`)."""
        return await self._load(path, self.read_table)

    async def _load(self, path: str | Sequence[str], read: Callable[[Node], Any]) -> Any:
        for _ in range(_WRITE_ATTEMPTS):
            node = await self.get(path)
            try:
                return node, read(node)
            except FileNotFoundError:  # replaced (and the old file removed) meanwhile
                continue
        raise ConflictError(f"{join_path(parse_path(path))!r} kept changing while being read")

    @staticmethod
    def _require_data(node: Node, family: str) -> None:
        if node.structure_family != family:
            raise ConflictError(
                f"{join_path(node.path)!r} is {_a(node.structure_family)}, not {_a(family)}"
            )
        if node.data_file is None:
            raise ConflictError(f"no data has been written to {join_path(node.path)!r} yet")

    # ---- validation ---------------------------------------------------------

    def _check_metadata(self, metadata: Any) -> dict[str, Any]:
        if metadata is None:
            return {}
        if not isinstance(metadata, dict):
            raise ClientInputError(f"metadata must be a JSON object, not {type(metadata).__name__}")
        depth = _nesting_depth(metadata)
        if depth > self.limits.max_metadata_depth:
            raise ClientInputError(
                f"metadata is nested {depth} levels deep; the limit is "
                f"{self.limits.max_metadata_depth}",
                depth=depth,
                limit=self.limits.max_metadata_depth,
            )
        try:
            size = len(json.dumps(metadata, allow_nan=False).encode())
        except (TypeError, ValueError) as exc:
            raise ClientInputError(f"metadata is not JSON-serializable: {exc}") from None
        if size > self.limits.max_metadata_bytes:
            raise PayloadTooLargeError(
                f"metadata is {size} bytes as JSON; the limit is {self.limits.max_metadata_bytes}",
                size=size,
                limit=self.limits.max_metadata_bytes,
            )
        return metadata

    @staticmethod
    def _check_specs(specs: Any) -> list[dict[str, Any]]:
        try:
            return [s.model_dump() for s in normalise_specs(specs or [])]
        except ValueError as exc:
            raise ClientInputError(f"invalid specs: {exc}") from None

    # ---- events -------------------------------------------------------------

    async def _record(self, tx: WriteTransaction, event: Any) -> None:
        segments = tuple(event.path)
        result = await tx.execute(
            events_table.insert().values(
                type=event.type,
                path=join_path(segments),
                body=ev.serialize(event),
                time_created=event.timestamp,
            )
        )
        if self.on_event is not None:
            await self.on_event(tx, result.inserted_primary_key[0], event.type, segments)

    @staticmethod
    def _created_event(node: Node, stamp: datetime) -> ev.ContainerChildCreated:
        return ev.ContainerChildCreated(
            timestamp=stamp,
            key=node.key,
            path=list(node.path),
            structure_family=node.structure_family,  # type: ignore[arg-type]
            specs=node.specs,
            metadata=node.metadata,
        )

    # ---- writes -------------------------------------------------------------

    async def create(
        self,
        parent_path: str | Sequence[str],
        key: str,
        structure_family: str,
        *,
        metadata: Any = None,
        specs: Any = None,
        structure: dict[str, Any] | None = None,
    ) -> Node:
        """Create a child. A container announces itself now; an array or a
        table when its data is first written (:meth:`write_array`, :meth:`write_table`)."""
        parent_segments = parse_path(parent_path)
        check_key(key, max_length=self.limits.max_key_length)
        if len(parent_segments) + 1 > self.limits.max_path_depth:
            raise InvalidPathError(
                f"{key!r} would be {len(parent_segments) + 1} levels deep; "
                f"the limit is {self.limits.max_path_depth}",
                limit=self.limits.max_path_depth,
            )
        if structure_family not in FAMILIES:
            raise ClientInputError(
                f"structure_family {structure_family!r} is not supported; "
                f"hookbook serves {', '.join(FAMILIES)}"
            )
        metadata = self._check_metadata(metadata)
        specs = self._check_specs(specs)
        if structure_family != "container":
            if structure is None:
                raise ClientInputError(f"a {structure_family} needs a structure")
            structure = self._check_structure(structure_family, structure)
        else:
            structure = None
        segments = (*parent_segments, key)
        stamp = ev.now()
        async with self.db.write() as tx:
            parent = await self._get(tx.conn, parent_segments)
            if parent.structure_family != "container":
                raise ConflictError(
                    f"cannot create {key!r} inside {join_path(parent_segments)!r}: "
                    f"it is {_a(parent.structure_family)}, not a container"
                )
            taken = await tx.execute(
                sa.select(nodes.c.id).where(nodes.c.path == join_path(segments))
            )
            if taken.first() is not None:
                raise AlreadyExistsError(
                    f"{join_path(segments)!r} already exists", path=list(segments)
                )
            row = dict(
                parent_id=parent.id,
                key=key,
                path=join_path(segments),
                structure_family=structure_family,
                metadata=metadata,
                specs=specs,
                structure=structure,
                data_file=None,
                stream_closed=False,
                time_created=stamp,
                time_updated=stamp,
            )
            try:
                result = await tx.execute(nodes.insert().values(**row))
            except sa.exc.IntegrityError as exc:
                # Another transaction created the same key since the check above
                # (PostgreSQL; SQLite writers are serialised).
                if not _is_unique_violation(exc):
                    raise
                raise AlreadyExistsError(
                    f"{join_path(segments)!r} already exists", path=list(segments)
                ) from None
            node = Node(
                id=result.inserted_primary_key[0],
                path=segments,
                structure_family=structure_family,
                metadata=metadata,
                specs=specs,
                structure=structure,
                data_file=None,
                stream_closed=False,
                time_created=stamp,
                time_updated=stamp,
            )
            if structure_family == "container":
                await self._record(tx, self._created_event(node, stamp))
        return node

    def _check_structure(self, family: str, structure: dict[str, Any]) -> dict[str, Any]:
        model = ArrayStructure if family == "array" else TableStructure
        try:
            checked = model.model_validate(structure).model_dump(mode="json")
        except ValueError as exc:
            raise ClientInputError(f"invalid {family} structure: {_first_problem(exc)}") from None
        validation.check_structure(family, checked, self.limits)
        return checked

    async def _swap_data(
        self, node: Node, write_file: Callable[[], str], structure: dict[str, Any]
    ) -> Node:
        """Write a new data file, point the node at it in one transaction (with
        the created event if this is the node's first data), then drop the old file.

        ``node`` is the state the new file was computed from. If another writer
        changed the node's data since (an append racing an append), nothing is
        written and :class:`_Stale` asks the caller to compute again from the new
        state. The row is locked (``FOR UPDATE`` on PostgreSQL; SQLite has one
        writer at a time) so the check and the update are one step.
        """
        # Off the event loop: the write (and its fsync) would stall every request.
        new_file = await asyncio.to_thread(write_file)
        stamp = ev.now()
        try:
            async with self.db.write() as tx:
                current = await self._get(tx.conn, node.path, lock=True)
                if current.stream_closed:
                    raise StreamClosedError(
                        f"{join_path(node.path)!r} is closed: it takes no more data",
                        path=list(node.path),
                    )
                if current.id != node.id or current.data_file != node.data_file:
                    raise _Stale
                await tx.execute(
                    nodes.update()
                    .where(nodes.c.id == current.id)
                    .values(data_file=new_file, structure=structure, time_updated=stamp)
                )
                updated = Node(
                    **{
                        **current.__dict__,
                        "data_file": new_file,
                        "structure": structure,
                        "time_updated": stamp,
                    }
                )
                if current.data_file is None:
                    await self._record(tx, self._created_event(updated, stamp))
        except BaseException:
            files.remove(self.directory, [new_file])
            raise
        files.remove(self.directory, [current.data_file])
        return updated

    async def _write_data(
        self,
        path: str | Sequence[str],
        family: str,
        prepare: Callable[[Node], tuple[Callable[[], str], dict[str, Any]]],
    ) -> Node:
        """Compute new data from the node's current state (``prepare(node)`` returns
        the file writer and the new structure) and swap it in; computed again when
        another writer got in between, so concurrent appends all land."""
        for _ in range(_WRITE_ATTEMPTS):
            node = await self._open_node(path, family)
            if node.stream_closed:
                raise StreamClosedError(
                    f"{join_path(node.path)!r} is closed: it takes no more data",
                    path=list(node.path),
                )
            try:
                write_file, structure = prepare(node)
            except FileNotFoundError:  # replaced by another writer since we looked
                continue
            try:
                return await self._swap_data(node, write_file, structure)
            except _Stale:
                continue
        raise ConflictError(
            f"{join_path(parse_path(path))!r} kept changing while this write was prepared "
            f"({_WRITE_ATTEMPTS} tries); try again"
        )

    async def _open_node(self, path: str | Sequence[str], family: str) -> Node:
        node = await self.get(path)
        if node.structure_family == "container":
            raise NotAStreamError(
                f"{join_path(node.path)!r} is a container: it holds no {family} data"
            )
        if node.structure_family != family:
            raise ConflictError(
                f"{join_path(node.path)!r} is {_a(node.structure_family)}, not {_a(family)}"
            )
        return node

    def _check_size(self, nbytes: int) -> None:
        if nbytes > self.limits.max_data_bytes:
            raise PayloadTooLargeError(
                f"data is {nbytes} bytes; the limit is {self.limits.max_data_bytes}",
                size=nbytes,
                limit=self.limits.max_data_bytes,
            )

    async def write_array(self, path: str | Sequence[str], data: bytes) -> Node:
        """Store the full contents of an array from raw C-order bytes of its declared
        dtype and shape."""
        self._check_size(len(data))

        def prepare(node: Node) -> tuple[Callable[[], str], dict[str, Any]]:
            structure = ArrayStructure.model_validate(node.structure)
            array = _array_from_bytes(data, structure.data_type.to_numpy(), tuple(structure.shape))
            return lambda: files.write_array(self.directory, array), node.structure or {}

        return await self._write_data(path, "array", prepare)

    async def patch_array(
        self, path: str | Sequence[str], data: bytes, params: ArrayPatchParams
    ) -> Node:
        """Write ``data`` (of ``params.shape``) at ``params.offset``; with
        ``params.extend`` the array grows to fit (appending is ``offset=(length,)``)."""
        return await self._patch_array(path, data, lambda node: params)

    async def append_array(
        self, path: str | Sequence[str], data: bytes, shape: Sequence[int]
    ) -> Node:
        """Append ``data`` (of ``shape``) along the first axis, at whatever the length
        is when it lands: concurrent appends all land, none overwrites another."""

        def at_the_end(node: Node) -> ArrayPatchParams:
            current = ArrayStructure.model_validate(node.structure).shape
            if not current:
                raise ConflictError(
                    f"{join_path(node.path)!r} is 0-d: it has no axis to append along"
                )
            return ArrayPatchParams(offset=(current[0],), shape=tuple(shape), extend=True)

        return await self._patch_array(path, data, at_the_end)

    async def _patch_array(
        self,
        path: str | Sequence[str],
        data: bytes,
        params_for: Callable[[Node], ArrayPatchParams],
    ) -> Node:
        self._check_size(len(data))

        def prepare(node: Node) -> tuple[Callable[[], str], dict[str, Any]]:
            params = params_for(node)
            if node.data_file is None:
                raise ConflictError(f"no data has been written to {join_path(node.path)!r} yet")
            structure = ArrayStructure.model_validate(node.structure)
            dtype = structure.data_type.to_numpy()
            old_shape = tuple(structure.shape)
            try:
                plan = params.plan(old_shape)
            except ValueError as exc:
                raise InvalidDataError(str(exc)) from None
            if plan.conflict:
                raise ConflictError(plan.conflict)
            grown_bytes = int(np.prod(plan.new_shape, dtype=np.float64)) * dtype.itemsize
            if grown_bytes > self.limits.max_data_bytes:
                raise PayloadTooLargeError(
                    f"the array would grow to shape {list(plan.new_shape)} "
                    f"({grown_bytes} bytes); the limit is {self.limits.max_data_bytes}",
                    size=grown_bytes,
                    limit=self.limits.max_data_bytes,
                )
            piece = _array_from_bytes(data, dtype, tuple(params.shape))
            old = files.read_array(self.directory, node.data_file)
            grown = np.zeros(plan.new_shape, dtype=dtype)
            grown[tuple(slice(0, d) for d in old_shape)] = old
            grown[plan.region] = piece
            new_structure = ArrayStructure.model_validate(node.structure).with_shape(grown.shape)
            return (
                lambda: files.write_array(self.directory, grown),
                new_structure.model_dump(mode="json"),
            )

        return await self._write_data(path, "array", prepare)

    def _prepare_table(self, node: Node, table: Any) -> tuple[Callable[[], str], dict[str, Any]]:
        declared = TableStructure.model_validate(node.structure)
        try:
            written = TableStructure.from_arrow_schema(table.schema)  # pandas index left out
        except (ValueError, RecursionError) as exc:  # the schema's pandas metadata is JSON
            raise InvalidDataError(f"invalid table: {_first_problem(exc)}") from None
        validation.check_structure("table", written.model_dump(mode="json"), self.limits)
        if declared.columns and list(written.columns) != list(declared.columns):
            raise InvalidDataError(
                f"table has columns {list(written.columns)}; {list(declared.columns)} were declared"
            )
        return lambda: files.write_table(self.directory, table), written.model_dump(mode="json")

    async def write_table(self, path: str | Sequence[str], table: Any) -> Node:
        """Store the full contents of a table (a ``pyarrow.Table``)."""
        return await self._write_data(path, "table", lambda node: self._prepare_table(node, table))

    async def append_table(self, path: str | Sequence[str], table: Any) -> Node:
        """Add rows to a table; their columns must match."""
        import pyarrow as pa

        def prepare(node: Node) -> tuple[Callable[[], str], dict[str, Any]]:
            if node.data_file is None:
                return self._prepare_table(node, table)
            old = files.read_table(self.directory, node.data_file)
            if old.column_names != table.column_names:
                raise InvalidDataError(
                    f"rows have columns {table.column_names}; the table has {old.column_names}"
                )
            try:
                combined = pa.concat_tables([old, table.cast(old.schema)])
            except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError) as exc:
                raise InvalidDataError(
                    f"rows do not match the table's column types: {exc}"
                ) from None
            structure = TableStructure.from_arrow_schema(combined.schema)
            return (
                lambda: files.write_table(self.directory, combined),
                structure.model_dump(mode="json"),
            )

        return await self._write_data(path, "table", prepare)

    async def update_metadata(
        self, path: str | Sequence[str], *, metadata: Any = None, specs: Any = None
    ) -> Node:
        """Replace what is given (metadata and/or specs) and record the update."""
        segments = parse_path(path)
        new_metadata = None if metadata is None else self._check_metadata(metadata)
        new_specs = None if specs is None else self._check_specs(specs)
        stamp = ev.now()
        async with self.db.write() as tx:
            node = await self._get(tx.conn, segments, lock=True)
            values: dict[str, Any] = {"time_updated": stamp}
            if new_metadata is not None:
                values["metadata"] = new_metadata
            if new_specs is not None:
                values["specs"] = new_specs
            await tx.execute(nodes.update().where(nodes.c.id == node.id).values(**values))
            updated = Node(**{**node.__dict__, **values})
            if segments:
                await self._record(
                    tx,
                    ev.ContainerChildMetadataUpdated(
                        timestamp=stamp,
                        key=updated.key,
                        path=list(segments),
                        specs=updated.specs,
                        metadata=updated.metadata,
                    ),
                )
        return updated

    async def close_stream(self, path: str | Sequence[str]) -> Node:
        segments = parse_path(path)
        stamp = ev.now()
        async with self.db.write() as tx:
            node = await self._get(tx.conn, segments, lock=True)
            if node.structure_family == "container":
                raise NotAStreamError(
                    f"{join_path(segments) or 'the root'!r} is a container: only arrays "
                    "and tables are streams"
                )
            if node.stream_closed:
                raise StreamClosedError(f"{join_path(segments)!r} is already closed")
            await tx.execute(
                nodes.update()
                .where(nodes.c.id == node.id)
                .values(stream_closed=True, time_updated=stamp)
            )
            if node.has_data:  # a node never announced is not announced closed either
                await self._record(
                    tx, ev.StreamClosed(timestamp=stamp, key=node.key, path=list(segments))
                )
        return Node(**{**node.__dict__, "stream_closed": True, "time_updated": stamp})

    async def delete(
        self,
        path: str | Sequence[str],
        *,
        before_event: Callable[[WriteTransaction, tuple[str, ...]], Awaitable[None]] | None = None,
    ) -> int:
        """Delete a node and everything below it; returns how many nodes went.

        ``before_event`` runs in the same transaction before the event is recorded
        (the webhook engine removes the subtree's webhooks there).
        """
        segments = parse_path(path)
        if not segments:
            raise ClientInputError("the root cannot be deleted")
        joined = join_path(segments)
        stamp = ev.now()
        async with self.db.write() as tx:
            node = await self._get(tx.conn, segments)
            subtree = (nodes.c.path == joined) | (
                sa.func.substr(nodes.c.path, 1, len(joined) + 1) == joined + "/"
            )
            doomed = (await tx.execute(sa.select(nodes.c.data_file).where(subtree))).all()
            await tx.execute(nodes.delete().where(subtree))
            if before_event is not None:
                await before_event(tx, segments)
            if node.has_data:  # a node never announced is not announced gone either
                await self._record(
                    tx,
                    ev.ContainerChildDeleted(timestamp=stamp, key=node.key, path=list(segments)),
                )
        files.remove(self.directory, [row.data_file for row in doomed])
        return len(doomed)


def _first_problem(exc: Exception) -> str:
    """A pydantic ValidationError's first message (without its URL), or the text."""
    errors = getattr(exc, "errors", None)
    if callable(errors):
        first = errors()[0]
        where = ".".join(str(p) for p in first.get("loc", ()))
        return f"{where}: {first['msg']}" if where else str(first["msg"])
    return str(exc)


#: What a node's row weighs in a listing: its metadata and structure, as stored JSON.
_STORED_BYTES = sa.func.length(sa.cast(nodes.c.metadata, sa.Text)) + sa.func.coalesce(
    sa.func.length(sa.cast(nodes.c.structure, sa.Text)), 0
)


def _fitting(sizes: Sequence[int], budget: int) -> int:
    """How many of ``sizes``, from the first, fit in ``budget`` (at least one)."""
    total = 0
    for count, size in enumerate(sizes):
        total += size
        if count and total > budget:
            return count
    return len(sizes)


def _nesting_depth(value: Any) -> int:
    """How deeply objects and lists nest in ``value`` (``{}`` is 1), without recursion."""
    deepest = 0
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            children: Any = item.values()
        elif isinstance(item, list | tuple):
            children = item
        else:
            continue
        deepest = max(deepest, depth)
        stack.extend((child, depth + 1) for child in children)
    return deepest


def _is_unique_violation(exc: Exception) -> bool:
    text = str(getattr(exc, "orig", exc)).lower()
    return "unique" in text or "duplicate" in text


def _a(family: str) -> str:
    """``"an array"``, ``"a table"``: a family name with its article."""
    return ("an " if family[:1] in "aeiou" else "a ") + family


def _array_from_bytes(data: bytes, dtype: np.dtype[Any], shape: tuple[int, ...]) -> np.ndarray:
    expected = math.prod(shape) * dtype.itemsize  # Python ints: no overflow
    if len(data) != expected:
        raise InvalidDataError(
            f"got {len(data)} bytes; dtype {dtype.str} and shape {shape} need {expected}",
            got=len(data),
            expected=expected,
        )
    return np.frombuffer(data, dtype=dtype).reshape(shape)
