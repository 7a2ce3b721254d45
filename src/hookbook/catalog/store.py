"""The catalog store: the node tree, the events it records, and the rules.

Every change runs in one write transaction together with its rules (a
container with children is deleted only when asked to be, ``recursive``), its
event row and, through the ``on_event`` hook the webhook engine installs, the
outbox rows of every matching webhook (and, for a deletion, the removal of the
webhooks registered in the deleted subtree).

The database is the truth. A node's row holds what readers see, an array's
shape included; the data storage (:mod:`hookbook.storage`) holds bytes at the
locations rows name: an array's zarr folder (``nodes.data_location``), a
table's Parquet fragments (rows of ``fragments``, per logical partition). New
data is written before the transaction that makes it visible commits. Data no
row refers to any more (replaced, compacted, deleted) is retired and removed
after a grace period, so reads in flight finish; data of a write that never
committed is swept at the next start (:mod:`hookbook.catalog.recovery`).

A write to a node's data holds the node's row lock while it writes its own
bytes: ``FOR UPDATE`` in the write transaction on PostgreSQL; on SQLite (one
process per directory) an in-process lock per node, and the write transaction
only for the commit, so writers of other nodes never wait for this one's I/O.
An append therefore costs the I/O of what it appends, and a reader sees the
old length or the new one, never half an append.

Arrays and tables announce themselves (``container-child-created``) only when
their data is complete and readable: creating one declares its structure; the
event goes out with the first full write, the last block of a block-by-block
upload, the first append, or once every partition of a table is written.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import replace
from datetime import datetime
from typing import Any

import numpy as np
import sqlalchemy as sa

from .. import events as ev
from ..config import Limits, StorageSettings
from ..db import (
    Database,
    WriteTransaction,
    event_log,
    fragments,
    nodes,
    retired_data,
    upload_blocks,
)
from ..errors import (
    AlreadyExistsError,
    ClientInputError,
    ConflictError,
    InvalidPathError,
    NotAStreamError,
    NotFoundError,
    PayloadTooLargeError,
    StreamClosedError,
)
from ..paths import check_key, join_path, parse_path
from ..protocol import (
    SUPPORTED_FAMILIES,
    ArrayPatchParams,
    ArrayStructure,
    TableStructure,
    normalise_specs,
    parse_structure,
)
from ..protocol.structures import unsupported_family_message
from ..storage import Storage
from ..storage.arrays import chunk_lengths
from . import validation
from .decoding import array_from_bytes
from .locking import KeyedLocks
from .nodes import (
    Node,
    check_open,
    check_partition,
    check_readable,
    check_writable,
    with_article,
)

__all__ = ["CatalogStore", "EventHook", "Node"]

logger = logging.getLogger(__name__)


#: Called inside the write transaction of every change that makes an event:
#: ``(tx, event_row_id, event_type, path_segments)``, after the event row is
#: inserted. ``event_row_id`` is ``None`` for a change that is not announced (a
#: node deleted before it was announced): no event goes out, but what hangs on
#: the node (its webhooks) goes with it.
EventHook = Callable[[WriteTransaction, int | None, str, tuple[str, ...]], Awaitable[None]]


#: Given the transaction and the node as it is now (row locked), write the
#: new state and return it.
Commit = Callable[[WriteTransaction, Node], Awaitable[Node]]


class _Locked:
    """A node whose row lock is held (see :meth:`CatalogStore._locked`)."""

    def __init__(self, store: CatalogStore, node: Node, tx: WriteTransaction | None) -> None:
        self.store = store
        self.node = node
        self._tx = tx

    async def commit(self, write: Commit) -> Node:
        if self._tx is not None:  # PostgreSQL: the transaction that holds the row lock
            return await write(self._tx, self.node)

        async def body(tx: WriteTransaction) -> Node:  # SQLite: only the commit is a transaction
            current = await self.store._get(tx.conn, self.node.path)
            if current.id != self.node.id:
                raise NotFoundError(
                    f"{join_path(self.node.path)!r} was deleted meanwhile", path=list(current.path)
                )
            check_open(current)
            return await write(tx, current)

        return await self.store.db.transaction(body)


class CatalogStore:
    """Reads and writes the node tree of one server."""

    def __init__(
        self,
        db: Database,
        storage: Storage,
        limits: Limits,
        settings: StorageSettings | None = None,
    ) -> None:
        self.db = db
        self.storage = storage
        self.limits = limits
        self.settings = settings or StorageSettings()
        self.on_event: EventHook | None = None
        self._node_locks = KeyedLocks()

    # ---- set-up -------------------------------------------------------------

    async def ensure_root(self) -> None:
        try:
            await self._ensure_root()
        except sa.exc.IntegrityError:
            # PostgreSQL: another process starting at the same moment inserted it first.
            pass

    async def _ensure_root(self) -> None:
        async def body(tx: WriteTransaction) -> None:
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
                        data_location=None,
                        announced=True,
                        stream_closed=False,
                        time_created=stamp,
                        time_updated=stamp,
                    )
                )

        await self.db.transaction(body)

    # ---- reads --------------------------------------------------------------

    async def get(self, path: str | Sequence[str]) -> Node:
        segments = parse_path(path)
        async with self.db.read() as conn:
            return await self._get(conn, segments)

    async def _get(
        self, conn: Any, segments: tuple[str, ...], *, lock: bool = False, keep: bool = False
    ) -> Node:
        """The node at ``segments``. Until the transaction ends (PostgreSQL; SQLite
        writers are serialised anyway), ``lock``: lock its row (``FOR UPDATE``);
        ``keep``: keep it from being deleted meanwhile (``FOR KEY SHARE``, as a
        child's foreign key does; many may keep one row at once)."""
        query = sa.select(nodes).where(nodes.c.path == join_path(segments))
        if lock:
            query = query.with_for_update()
        elif keep:
            query = query.with_for_update(read=True, key_share=True)
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
            return await _count_children(conn, node.id)

    @staticmethod
    def array_structure(node: Node, *, require_data: bool = True) -> ArrayStructure:
        """The structure of an array node (409 for another family, or, with
        ``require_data``, before its data is written)."""
        if require_data:
            check_readable(node, "array")
        else:
            check_writable(node, "array")
        return ArrayStructure.model_validate(node.structure)

    async def read_array(self, node: Node, key: tuple[slice | int, ...]) -> np.ndarray:
        """``array[key]`` of ``node`` (as :meth:`get` returned it: the shape it
        names is the one read), in its declared dtype and byte order, touching
        only the chunks the key needs."""
        structure = self.array_structure(node)
        assert node.data_location is not None
        data = await self.storage.arrays.read(node.data_location, structure.shape, key)
        return data.astype(structure.data_type.to_numpy(), copy=False)

    async def read_table(self, path: str | Sequence[str], partition: int | None = None) -> Any:
        """A table's rows as a ``pyarrow.Table``: one logical partition, or all of
        them in order (``partition=None``)."""
        segments = parse_path(path)
        async with self.db.read() as conn:  # the node and its fragments at one moment
            node = await self._get(conn, segments)
            check_readable(node, "table")
            structure = TableStructure.model_validate(node.structure)
            if partition is not None:
                check_partition(node, structure, partition)
            locations = [f.location for f in await _fragments(conn, node.id, partition)]
        return await asyncio.to_thread(
            self.storage.tables.read, locations, structure.decoded_schema()
        )

    # ---- validation ---------------------------------------------------------

    def _check_metadata(self, metadata: Any) -> dict[str, Any]:
        if metadata is None:
            return {}
        if not isinstance(metadata, dict):
            raise ClientInputError(f"metadata must be a JSON object, not {type(metadata).__name__}")
        depth = validation.nesting_depth(metadata)
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
        return [s.model_dump() for s in normalise_specs(specs or [])]

    def _check_size(self, nbytes: int) -> None:
        if nbytes > self.limits.max_data_bytes:
            raise PayloadTooLargeError(
                f"data is {nbytes} bytes; the limit is {self.limits.max_data_bytes}",
                size=nbytes,
                limit=self.limits.max_data_bytes,
            )

    # ---- events -------------------------------------------------------------

    async def _record(self, tx: WriteTransaction, event: Any) -> None:
        segments = tuple(event.path)
        result = await tx.execute(
            event_log.insert().values(
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
            structure_family=node.structure_family,  # type: ignore[arg-type]  # pydantic checks the str
            specs=node.specs,
            metadata=node.metadata,
        )

    # ---- the tree -----------------------------------------------------------

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
        table when its data is complete (see the module's docstring)."""
        parent_segments = parse_path(parent_path)
        check_key(key, max_length=self.limits.max_key_length)
        if len(parent_segments) + 1 > self.limits.max_path_depth:
            raise InvalidPathError(
                f"{key!r} would be {len(parent_segments) + 1} levels deep; "
                f"the limit is {self.limits.max_path_depth}",
                limit=self.limits.max_path_depth,
            )
        if structure_family not in SUPPORTED_FAMILIES:
            raise ClientInputError(unsupported_family_message(structure_family))
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

        async def body(tx: WriteTransaction) -> Node:
            # Kept until the commit: a deletion of the parent waits for this child.
            parent = await self._get(tx.conn, parent_segments, keep=True)
            if parent.structure_family != "container":
                raise ConflictError(
                    f"cannot create {key!r} inside {join_path(parent_segments)!r}: "
                    f"it is {with_article(parent.structure_family)}, not a container"
                )
            taken = await tx.execute(
                sa.select(nodes.c.id).where(nodes.c.path == join_path(segments))
            )
            if taken.first() is not None:
                raise AlreadyExistsError(
                    f"{join_path(segments)!r} already exists", path=list(segments)
                )
            node = Node(
                id=0,
                path=segments,
                structure_family=structure_family,
                metadata=metadata,
                specs=specs,
                structure=structure,
                data_location=None,
                announced=structure_family == "container",
                stream_closed=False,
                time_created=stamp,
                time_updated=stamp,
            )
            try:
                result = await tx.execute(
                    nodes.insert().values(
                        parent_id=parent.id,
                        key=key,
                        path=join_path(segments),
                        structure_family=structure_family,
                        metadata=metadata,
                        specs=specs,
                        structure=structure,
                        data_location=None,
                        announced=node.announced,
                        stream_closed=False,
                        time_created=stamp,
                        time_updated=stamp,
                    )
                )
            except sa.exc.IntegrityError as exc:
                # Another transaction created the same key since the check above
                # (PostgreSQL; SQLite writers are serialised).
                if not _is_unique_violation(exc):
                    raise
                raise AlreadyExistsError(
                    f"{join_path(segments)!r} already exists", path=list(segments)
                ) from None
            node = replace(node, id=result.inserted_primary_key[0])
            if node.announced:
                await self._record(tx, self._created_event(node, stamp))
            return node

        return await self.db.transaction(body)

    def _check_structure(self, family: str, structure: dict[str, Any]) -> dict[str, Any]:
        checked = parse_structure(family, structure).model_dump(mode="json")
        validation.check_structure(family, checked, self.limits)
        return checked

    async def update_metadata(
        self, path: str | Sequence[str], *, metadata: Any = None, specs: Any = None
    ) -> Node:
        """Replace what is given (metadata and/or specs) and record the update."""
        segments = parse_path(path)
        new_metadata = None if metadata is None else self._check_metadata(metadata)
        new_specs = None if specs is None else self._check_specs(specs)
        stamp = ev.now()

        async def body(tx: WriteTransaction) -> Node:
            node = await self._get(tx.conn, segments, lock=True)
            values: dict[str, Any] = {"time_updated": stamp}
            if new_metadata is not None:
                values["metadata"] = new_metadata
            if new_specs is not None:
                values["specs"] = new_specs
            await tx.execute(nodes.update().where(nodes.c.id == node.id).values(**values))
            updated = replace(node, **values)
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

        return await self.db.transaction(body)

    async def close_stream(self, path: str | Sequence[str]) -> Node:
        """Close an array's or a table's stream (no more data), then compact a
        table's fragments (``storage.compact_on_close``)."""
        segments = parse_path(path)
        stamp = ev.now()

        async def body(tx: WriteTransaction) -> Node:
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
            if node.announced:  # a node never announced is not announced closed either
                await self._record(
                    tx, ev.StreamClosed(timestamp=stamp, key=node.key, path=list(segments))
                )
            return replace(node, stream_closed=True, time_updated=stamp)

        closed = await self.db.transaction(body)
        if closed.structure_family == "table" and self.settings.compact_on_close:
            try:
                await self.compact(closed)
            except Exception:  # the stream is closed either way; its fragments stay valid
                logger.warning("compacting %s failed", join_path(segments), exc_info=True)
        return closed

    async def delete(self, path: str | Sequence[str], *, recursive: bool = False) -> int:
        """Delete a node and, with ``recursive``, everything below it (a container
        with children is refused without it); returns how many nodes went. Their
        data is retired (removed after the grace period); the ``on_event`` hook
        removes the webhooks registered in the subtree in the same transaction."""
        segments = parse_path(path)
        if not segments:
            raise ClientInputError("the root cannot be deleted")
        joined = join_path(segments)
        stamp = ev.now()

        async def body(tx: WriteTransaction) -> int:
            # The row lock makes the emptiness check hold until the commit (PostgreSQL).
            node = await self._get(tx.conn, segments, lock=True)
            if node.structure_family == "container" and not recursive:
                count = await _count_children(tx.conn, node.id)
                if count:
                    raise ConflictError(
                        f"{joined!r} has {count} children; pass recursive=true to "
                        "delete it with everything below it"
                    )
            subtree = (nodes.c.path == joined) | (
                sa.func.substr(nodes.c.path, 1, len(joined) + 1) == joined + "/"
            )
            doomed = (
                await tx.execute(sa.select(nodes.c.id, nodes.c.data_location).where(subtree))
            ).all()
            ids = [row.id for row in doomed]
            pieces = await tx.execute(
                sa.select(fragments.c.location).where(fragments.c.node_id.in_(ids))
            )
            await _retire(tx, [row.data_location for row in doomed] + list(pieces.scalars()))
            await tx.execute(fragments.delete().where(fragments.c.node_id.in_(ids)))
            await tx.execute(upload_blocks.delete().where(upload_blocks.c.node_id.in_(ids)))
            await tx.execute(nodes.delete().where(subtree))
            deleted = ev.ContainerChildDeleted(timestamp=stamp, key=node.key, path=list(segments))
            if node.announced:  # a node never announced is not announced gone either
                await self._record(tx, deleted)
            elif self.on_event is not None:
                await self.on_event(tx, None, deleted.type, segments)
            return len(doomed)

        return await self.db.transaction(body)

    # ---- holding a node ----------------------------------------------------

    @asynccontextmanager
    async def _locked(self, path: str | Sequence[str], family: str) -> AsyncIterator[_Locked]:
        """Hold the row lock of the node at ``path`` (an open ``family`` node)
        until the block ends: its data may be written, then :meth:`_Locked.commit`."""
        segments = parse_path(path)
        if self.db.sqlite:
            first = await self.get(segments)
            async with self._node_locks.hold(first.id):
                node = await self.get(segments)
                if node.id != first.id:  # deleted and created again meanwhile
                    raise ConflictError(f"{join_path(segments)!r} changed meanwhile; try again")
                check_writable(node, family)
                yield _Locked(self, node, None)
        else:
            # By hand, not Database.transaction(): the block writes data before the
            # commit, so it cannot simply be run again.
            async with self.db.write() as tx:
                node = await self._get(tx.conn, segments, lock=True)
                check_writable(node, family)
                yield _Locked(self, node, tx)

    async def _write_data(
        self,
        path: str | Sequence[str],
        family: str,
        write: Callable[[Node, list[str]], Awaitable[Commit]],
    ) -> Node:
        """Every data write: hold the node's row lock; ``write(node, created)``
        writes the data (noting each new location in ``created``) and returns how
        to commit it; commit. New locations are removed if anything fails."""
        created: list[str] = []
        try:
            async with self._locked(path, family) as locked:
                return await locked.commit(await write(locked.node, created))
        except BaseException:
            await asyncio.to_thread(self.storage.remove, created)
            raise

    async def _set_node(
        self,
        tx: WriteTransaction,
        node: Node,
        *,
        announce: bool = False,
        **values: Any,
    ) -> Node:
        """Update the node's row with ``values``; record its created event if
        ``announce`` and it was not announced yet."""
        values["time_updated"] = stamp = ev.now()
        if announce:
            values["announced"] = True
        await tx.execute(nodes.update().where(nodes.c.id == node.id).values(**values))
        updated = replace(node, **values)
        if announce and not node.announced:
            await tx.execute(upload_blocks.delete().where(upload_blocks.c.node_id == node.id))
            await self._record(tx, self._created_event(updated, stamp))
        return updated

    # ---- arrays -------------------------------------------------------------

    async def _stored_structure(
        self, structure: ArrayStructure, location: str, shape: Sequence[int]
    ) -> dict[str, Any]:
        """``structure`` with ``shape`` and the chunks stored at ``location``."""
        chunks = chunk_lengths(shape, await self.storage.arrays.chunk_shape(location))
        return structure.with_shape(shape, chunks).model_dump(mode="json")

    async def _new_array(
        self, structure: ArrayStructure, created: list[str], array: np.ndarray | None = None
    ) -> str:
        """A new zarr array of ``structure`` (holding ``array``, if given)."""
        dtype = structure.data_type.to_numpy()
        location = await self.storage.arrays.create(dtype, structure.shape, structure.dims)
        created.append(location)
        if array is not None:
            everything = tuple(slice(0, n) for n in structure.shape)
            await self.storage.arrays.write(location, structure.shape, everything, array)
        return location

    async def write_array(self, path: str | Sequence[str], data: bytes) -> Node:
        """Store the full contents of an array (raw C-order bytes of its declared
        dtype and shape) at a new location; the old one is retired."""
        self._check_size(len(data))

        async def write(node: Node, created: list[str]) -> Commit:
            structure = ArrayStructure.model_validate(node.structure)
            array = array_from_bytes(data, structure.data_type.to_numpy(), tuple(structure.shape))
            location = await self._new_array(structure, created, array)
            stored = await self._stored_structure(structure, location, structure.shape)

            async def commit(tx: WriteTransaction, current: Node) -> Node:
                await _retire(tx, [current.data_location])
                return await self._set_node(
                    tx, current, announce=True, data_location=location, structure=stored
                )

            return commit

        return await self._write_data(path, "array", write)

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
        """Write into the node's own chunks: only the chunks the new data touches
        (new ones, and the partial last one rewritten); then commit the new
        shape, then publish it in ``zarr.json``."""
        self._check_size(len(data))

        async def write(node: Node, created: list[str]) -> Commit:
            check_readable(node, "array")
            assert node.data_location is not None
            params = params_for(node)
            structure = ArrayStructure.model_validate(node.structure)
            dtype = structure.data_type.to_numpy()
            plan = params.plan(structure.shape)
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
            piece = array_from_bytes(data, dtype, tuple(params.shape))
            await self.storage.arrays.write(node.data_location, plan.new_shape, plan.region, piece)
            stored = await self._stored_structure(structure, node.data_location, plan.new_shape)

            async def commit(tx: WriteTransaction, current: Node) -> Node:
                return await self._set_node(tx, current, structure=stored)

            return commit

        updated = await self._write_data(path, "array", write)
        await self._publish(updated)
        return updated

    async def write_block(
        self, path: str | Sequence[str], block: Sequence[int], data: bytes
    ) -> Node:
        """Write one block of the node's chunk grid (Tiled's ``PUT /array/block``).

        Until an array's data is complete, its grid is the one declared at
        creation (the tiled client uploads big arrays block by block on the
        grid it declared, without reading the structure back): each block is
        placed where it belongs in hookbook's chunks, and once every block is
        written the array is announced and reports hookbook's chunks."""
        self._check_size(len(data))
        name = ",".join(map(str, block))

        async def write(node: Node, created: list[str]) -> Commit:
            structure = ArrayStructure.model_validate(node.structure)
            region = structure.block_region(block)
            dtype = structure.data_type.to_numpy()
            piece = array_from_bytes(data, dtype, tuple(s.stop - s.start for s in region))
            location = node.data_location or await self._new_array(structure, created)
            await self.storage.arrays.write(location, structure.shape, region, piece)
            stored = await self._stored_structure(structure, location, structure.shape)

            async def commit(tx: WriteTransaction, current: Node) -> Node:
                if current.announced:
                    return await self._set_node(tx, current, data_location=location)
                query = sa.select(upload_blocks.c.block).where(
                    upload_blocks.c.node_id == current.id
                )
                written = set((await tx.execute(query)).scalars())
                if name not in written:
                    await tx.execute(upload_blocks.insert().values(node_id=current.id, block=name))
                    written.add(name)
                complete = len(written) >= structure.nblocks
                return await self._set_node(
                    tx,
                    current,
                    announce=complete,
                    data_location=location,
                    structure=stored if complete else current.structure,
                )

            return commit

        return await self._write_data(path, "array", write)

    async def _publish(self, node: Node) -> None:
        """Write the committed shape to ``zarr.json`` (for outside readers; repaired
        at start-up if this fails)."""
        assert node.data_location is not None
        shape = ArrayStructure.model_validate(node.structure).shape
        try:
            await asyncio.to_thread(self.storage.arrays.publish, node.data_location, shape)
        except OSError:
            logger.warning("could not update zarr.json of %s", join_path(node.path), exc_info=True)

    # ---- tables -------------------------------------------------------------

    async def _new_fragment(self, rows: Any, created: list[str]) -> str:
        location = await asyncio.to_thread(self.storage.tables.write, rows)
        created.append(location)
        return location

    async def write_table(
        self, path: str | Sequence[str], table: Any, partition: int | None = None
    ) -> Node:
        """Replace a table's rows: all of them (``partition=None``, a table of one
        partition), or one logical partition's."""

        async def write(node: Node, created: list[str]) -> Commit:
            declared = TableStructure.model_validate(node.structure)
            if partition is None and declared.npartitions != 1:
                raise ConflictError(
                    f"{join_path(node.path)!r} has {declared.npartitions} partitions: write "
                    "them one by one (PUT /table/partition/...?partition=N)"
                )
            index = partition or 0
            check_partition(node, declared, index)
            rows, structure = validation.conform_table(
                node, declared, table, fresh=declared.npartitions == 1, limits=self.limits
            )
            location = await self._new_fragment(rows, created)

            async def commit(tx: WriteTransaction, current: Node) -> Node:
                old = await _fragments(tx.conn, current.id, index)
                await _retire(tx, [f.location for f in old])
                await tx.execute(fragments.delete().where(fragments.c.id.in_([f.id for f in old])))
                await tx.execute(
                    fragments.insert().values(
                        node_id=current.id, partition=index, location=location
                    )
                )
                written = await tx.execute(
                    sa.select(sa.func.count(sa.distinct(fragments.c.partition))).where(
                        fragments.c.node_id == current.id
                    )
                )
                complete = written.scalar_one() >= declared.npartitions
                return await self._set_node(tx, current, announce=complete, structure=structure)

            return commit

        return await self._write_data(path, "table", write)

    async def append_table(self, path: str | Sequence[str], table: Any, partition: int = 0) -> Node:
        """Add rows to a logical partition: one new fragment; its columns must match."""

        async def write(node: Node, created: list[str]) -> Commit:
            declared = TableStructure.model_validate(node.structure)
            check_partition(node, declared, partition)
            rows, structure = validation.conform_table(
                node, declared, table, fresh=not node.announced, limits=self.limits
            )
            location = await self._new_fragment(rows, created)

            async def commit(tx: WriteTransaction, current: Node) -> Node:
                await tx.execute(
                    fragments.insert().values(
                        node_id=current.id, partition=partition, location=location
                    )
                )
                return await self._set_node(tx, current, announce=True, structure=structure)

            return commit

        return await self._write_data(path, "table", write)

    async def compact(self, node: Node) -> int:
        """Merge each partition's fragments into one, swapped in one transaction;
        the old files are retired. Returns how many fragments were merged away."""
        async with self.db.read() as conn:
            pieces = await _fragments(conn, node.id, None)
        schema = TableStructure.model_validate(node.structure).decoded_schema()
        merged_away = 0
        for partition in sorted({f.partition for f in pieces}):
            old = [f for f in pieces if f.partition == partition]
            if len(old) < 2:
                continue
            location = await asyncio.to_thread(
                self.storage.tables.merge, [f.location for f in old], schema
            )
            try:
                await self._swap_fragments(node, partition, old, location)
            except (ConflictError, NotFoundError):
                await asyncio.to_thread(self.storage.remove, [location])
                continue
            merged_away += len(old) - 1
        return merged_away

    async def _swap_fragments(
        self, node: Node, partition: int, old: Sequence[Any], location: str
    ) -> None:
        """Replace a partition's fragments ``old`` by the one at ``location``
        (``ConflictError`` if they changed meanwhile); ``old`` is retired."""

        async def body(tx: WriteTransaction) -> None:
            current = await self._get(tx.conn, node.path, lock=True)
            still = await _fragments(tx.conn, current.id, partition)
            if [f.id for f in still] != [f.id for f in old]:
                raise ConflictError("the partition changed while it was compacted")
            await _retire(tx, [f.location for f in old])
            await tx.execute(fragments.delete().where(fragments.c.id.in_([f.id for f in old])))
            await tx.execute(
                fragments.insert().values(
                    node_id=current.id, partition=partition, location=location
                )
            )

        await self.db.transaction(body)

    # ---- retired data -------------------------------------------------------

    async def reap(self, now: float | None = None) -> int:
        """Remove retired data whose grace period is over; returns how many."""
        cutoff = (time.time() if now is None else now) - self.settings.retire_after

        async def body(tx: WriteTransaction) -> list[str]:
            gone = await tx.execute(
                retired_data.delete()
                .where(retired_data.c.retired_at <= cutoff)
                .returning(retired_data.c.location)
            )
            return list(gone.scalars())

        locations = await self.db.transaction(body)
        await asyncio.to_thread(self.storage.remove, locations)
        return len(locations)

    async def run_reaper(self) -> None:
        """Reap every so often, until cancelled."""
        interval = max(1.0, min(self.settings.retire_after, 60.0))
        while True:
            await asyncio.sleep(interval)
            try:
                await self.reap()
            except Exception:
                logger.warning("removing retired data failed; will try again", exc_info=True)


# ---- helpers ------------------------------------------------------------------


async def _retire(tx: WriteTransaction, locations: Sequence[str | None]) -> None:
    """Mark data as no longer referred to: removed once the grace period is over."""
    stamp = time.time()
    rows = [{"location": loc, "retired_at": stamp} for loc in locations if loc]
    if rows:
        await tx.execute(retired_data.insert(), rows)


async def _count_children(conn: Any, node_id: int) -> int:
    query = sa.select(sa.func.count()).where(nodes.c.parent_id == node_id)
    return int((await conn.execute(query)).scalar_one())


async def _fragments(conn: Any, node_id: int, partition: int | None) -> list[Any]:
    """A table's fragments (of one partition, or all), in partition and write order."""
    query = sa.select(fragments).where(fragments.c.node_id == node_id)
    if partition is not None:
        query = query.where(fragments.c.partition == partition)
    return list((await conn.execute(query.order_by(fragments.c.partition, fragments.c.id))).all())


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


def _is_unique_violation(exc: Exception) -> bool:
    text = str(getattr(exc, "orig", exc)).lower()
    return "unique" in text or "duplicate" in text
