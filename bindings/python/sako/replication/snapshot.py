"""Snapshots for replicas that the stream's retention has left behind: an online
backup of a replica (``sako_backup``: the database at one instant, its log position
included) kept in the JetStream object store ``sako_snapshots`` under the name
``latest``. A new or wiped replica restores it and reads the stream's tail from its
position + 1 (docs/operations.md, "Replication")."""
from __future__ import annotations

import asyncio
import os
import sqlite3
import tempfile
import time
from typing import Any, Optional, Sequence, Tuple

import sako

BUCKET = "sako_snapshots"
NAME = "latest"


async def _quiet(exc: Exception) -> None:  # nats-py prints a traceback otherwise
    pass


def file_position(path: str) -> int:
    """The log position stored in a database file (0: none; read-only)."""
    con = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        row = con.execute("SELECT value FROM sako_meta WHERE key = 'log_position'").fetchone()
    finally:
        con.close()
    return int(row[0]) if row else 0


async def upload(js: Any, path: str, position: int, replicas: int = 1) -> None:
    from nats.js.api import ObjectMeta, ObjectStoreConfig, StorageType

    try:
        obs = await js.object_store(BUCKET)
    except Exception:
        obs = await js.create_object_store(BUCKET, config=ObjectStoreConfig(
            bucket=BUCKET, replicas=replicas, storage=StorageType.FILE))
    with open(path, "rb") as f:
        await obs.put(NAME, f, meta=ObjectMeta(name=NAME, description=str(position)))


def take(engine: sako.Engine, folder: Optional[str] = None) -> Tuple[str, int]:
    """An online backup of the replica into a temporary file, and its position."""
    fd, path = tempfile.mkstemp(prefix="sako-snapshot-", suffix=".db", dir=folder)
    os.close(fd)
    os.unlink(path)  # sako_backup creates the file itself
    engine.backup(path)
    return path, file_position(path)


def stream_bounds(servers: Sequence[str], stream: str = "SAKO",
                  timeout: float = 10.0) -> Tuple[int, int]:
    """(first_seq, last_seq) of the stream ((0, 0) when it does not exist)."""
    import nats

    async def run() -> Tuple[int, int]:
        nc = await nats.connect(servers=list(servers), connect_timeout=2,
                                max_reconnect_attempts=2, error_cb=_quiet)
        try:
            try:
                info = await nc.jetstream().stream_info(stream)
            except Exception:
                return 0, 0
            return info.state.first_seq, info.state.last_seq
        finally:
            await nc.close()

    return asyncio.run(asyncio.wait_for(run(), timeout))


def restore(servers: Sequence[str], db_path: str, timeout: float = 120.0) -> int:
    """Fetch the latest snapshot into ``db_path`` (which must not exist), checked
    with ``sako.verify`` before it is put in place. Returns its position.

    Raises
    ------
    FileNotFoundError
        The object store holds no snapshot.
    """
    import nats

    if os.path.exists(db_path):
        raise FileExistsError(db_path)
    partial = f"{db_path}.partial-{os.getpid()}"

    async def run() -> None:
        nc = await nats.connect(servers=list(servers), connect_timeout=2,
                                max_reconnect_attempts=2, error_cb=_quiet)
        try:
            try:
                obs = await nc.jetstream().object_store(BUCKET)
                with open(partial, "wb") as f:
                    await obs.get(NAME, writeinto=f)
            except Exception as exc:
                raise FileNotFoundError(f"no snapshot in the object store {BUCKET}: {exc}") from None
        finally:
            await nc.close()

    try:
        asyncio.run(asyncio.wait_for(run(), timeout))
        sako.verify(partial)
        position = file_position(partial)
        os.replace(partial, db_path)
    finally:
        if os.path.exists(partial):
            os.unlink(partial)
    return position


def prepare(servers: Sequence[str], db_path: str, stream: str = "SAKO") -> Optional[int]:
    """Before a replica opens ``db_path``: when the stream no longer holds the entries
    after the file's position (retention), restore the latest snapshot (an existing
    file is kept beside it as ``<db>.behind-<unix time>``). Returns the restored
    position, or None when the file can follow the stream as it is."""
    first, last = stream_bounds(servers, stream)
    if last == 0 or first <= 1:
        return None
    position = file_position(db_path) if os.path.exists(db_path) else 0
    if position >= first - 1:
        return None
    set_aside(db_path)
    return restore(servers, db_path)


def set_aside(db_path: str) -> None:
    """Move a (closed) database and its -wal/-shm files to ``<db>.behind-<unix time>``."""
    if os.path.exists(db_path):
        aside = f"{db_path}.behind-{int(time.time())}"
        for suffix in ("", "-wal", "-shm"):
            if os.path.exists(db_path + suffix):
                os.replace(db_path + suffix, aside + suffix)
