"""Backup and restore of a libsako database file, as the ``sako backup`` and ``sako
restore`` commands run them (docs/operations.md walks through both).

A backup is made by the engine itself (:meth:`sako.Engine.backup`, SQLite's online
backup API). A restore checks a backup before it replaces anything: it copies the file
next to the target, checks the copy (``PRAGMA integrity_check``, the libsako stamp) and
opens it as an engine (which migrates an older schema), and only then renames it over the
target, holding the target's engine lock throughout so that no engine can open the file
half-way. The file it replaces is kept (``TARGET.replaced-<UTC time>``) unless told not to.
"""
from __future__ import annotations

import datetime as _dt
import errno
import fcntl
import os
import shutil
import sqlite3
import tempfile
import time
from dataclasses import dataclass
from typing import Optional, Union

from ._engine import Engine
from ._errors import Busy, InvalidArgument

PathLike = Union[str, "os.PathLike[str]"]

#: PRAGMA application_id of a libsako database ('SAKO')
APPLICATION_ID = 0x53414B4F


@dataclass(frozen=True)
class BackupResult:
    path: str
    size_bytes: int
    duration_seconds: float
    n_events: int
    online: bool  #: made by an engine (True) or by a read snapshot of a busy file (False)


@dataclass(frozen=True)
class RestoreResult:
    target: str
    n_events: int
    n_items: int
    replaced: Optional[str]  #: where the file it replaced was kept, if any


class RestoreError(Exception):
    """The backup was refused, or the target is in use; nothing was changed."""


def timestamp() -> str:
    """UTC time for file names: 20261201T101502.123Z."""
    now = _dt.datetime.now(_dt.timezone.utc)
    return now.strftime("%Y%m%dT%H%M%S.") + f"{now.microsecond // 1000:03d}Z"


def _fsync_dir(path: str) -> None:
    try:
        fd = os.open(path or ".", os.O_RDONLY | os.O_DIRECTORY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def backup(db: PathLike, out: PathLike) -> BackupResult:
    """Back up the database file ``db`` into the new file ``out``.

    When no engine holds ``db``, an engine opens it and makes the backup (the file is
    fully checked on the way). When a running service holds it (:class:`sako.Busy`),
    the copy is taken in one step from a read-only SQLite snapshot instead, which WAL
    lets the service go on writing through; prefer ``POST /v1/backup`` there.

    Raises
    ------
    InvalidArgument
        ``out`` exists (never overwritten) or ``db`` does not.
    SakoError
        The engine refused ``db`` or the copy failed.
    """
    db, out = os.fspath(db), os.fspath(out)
    if not os.path.exists(db):
        raise InvalidArgument(f"{db}: no such database")
    if os.path.lexists(out):
        raise InvalidArgument(f"{out} exists; a backup never overwrites a file")
    t0 = time.monotonic()
    try:
        with Engine(db) as eng:
            eng.backup(out)
        online = True
    except Busy:
        _snapshot(db, out)
        online = False
    n_events = _stored_events(out)
    return BackupResult(out, os.path.getsize(out), time.monotonic() - t0, n_events, online)


def _snapshot(db: str, out: str) -> None:
    """One-step copy from a read transaction (a consistent snapshot), to a private file
    linked to ``out`` when complete."""
    d = os.path.dirname(os.path.abspath(out))
    fd, tmp = tempfile.mkstemp(prefix=os.path.basename(out) + ".partial-", dir=d)
    os.close(fd)
    try:
        src = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
        dst = sqlite3.connect(tmp)
        try:
            src.backup(dst, pages=-1)
        finally:
            dst.close()
            src.close()
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.link(tmp, out)
    finally:
        os.unlink(tmp)
    _fsync_dir(d)


def _stored_events(path: str) -> int:
    # read-write: a backup is in WAL mode like its source, and a read-only connection
    # would leave an empty -wal and -shm behind
    con = sqlite3.connect(f"file:{path}?mode=rw", uri=True)
    try:
        return int(con.execute("SELECT value FROM sako_meta WHERE key = 'n_events'").fetchone()[0])
    finally:
        con.close()


def check_backup(path: str, label: Optional[str] = None) -> None:
    """Refuse a file that is not an intact libsako database (before opening it as one);
    messages name it ``label`` (default ``path``).

    Raises
    ------
    RestoreError
    """
    name = label or path
    with open(path, "rb") as f:
        if f.read(16) != b"SQLite format 3\x00":
            raise RestoreError(f"{name} is not an SQLite database")
    try:
        con = sqlite3.connect(f"file:{path}?mode=rw", uri=True)  # a private copy
        try:
            app_id = con.execute("PRAGMA application_id").fetchone()[0]
            rows = [r[0] for r in con.execute("PRAGMA integrity_check")]
        finally:
            con.close()
    except sqlite3.DatabaseError as e:
        raise RestoreError(f"{name}: {e}") from None
    if app_id != APPLICATION_ID:
        raise RestoreError(f"{name} is an SQLite database of another application")
    if rows != ["ok"]:
        raise RestoreError(f"{name} failed PRAGMA integrity_check: {'; '.join(rows[:5])}")


def restore(backup_path: PathLike, target: PathLike, keep_replaced: bool = True) -> RestoreResult:
    """Put the backup ``backup_path`` in place as the database ``target``, atomically.

    The backup itself is never changed (a copy is checked and opened). ``target`` need
    not exist; if it does, it is kept as ``TARGET.replaced-<UTC time>`` (with its WAL, if
    it has one) unless ``keep_replaced`` is False.

    Raises
    ------
    RestoreError
        An engine holds ``target``, the backup is not an intact libsako database, or it
        has a WAL beside it (it is open, or was not closed cleanly). Nothing was changed.
    SakoError
        The engine refused the copy (damaged rows, a newer schema): nothing was changed.
    """
    src, target = os.fspath(backup_path), os.path.abspath(os.fspath(target))
    if not os.path.isfile(src):
        raise RestoreError(f"{src}: no such file")
    if os.path.exists(src + "-wal") and os.path.getsize(src + "-wal") > 0:
        raise RestoreError(f"{src} has a WAL beside it: it is open in an engine or was not "
                           f"closed cleanly; back it up with `sako backup` instead")
    if os.path.abspath(src) == target:
        raise RestoreError("the backup and the target are the same file")
    d = os.path.dirname(target)
    lock_fd = os.open(target + "-lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    try:
        try:
            fcntl.flock(lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as e:
            if e.errno in (errno.EWOULDBLOCK, errno.EACCES):
                raise RestoreError(f"{target} is open in an engine (a running service?); "
                                   f"stop it first") from None
            raise
        fd, tmp = tempfile.mkstemp(prefix=os.path.basename(target) + ".restore-", dir=d)
        os.close(fd)
        try:
            shutil.copyfile(src, tmp)
            check_backup(tmp, src)
            with Engine(tmp) as eng:  # the whole load: every table and the log replay
                s = eng.stats()
            for suffix in ("-lock", "-wal", "-shm"):
                if os.path.exists(tmp + suffix):
                    os.unlink(tmp + suffix)
            with open(tmp, "rb+") as f:
                os.fsync(f.fileno())
            replaced = None
            if os.path.exists(target):
                if keep_replaced:
                    replaced = f"{target}.replaced-{timestamp()}"
                    os.link(target, replaced)
                wal = target + "-wal"
                if os.path.exists(wal):
                    # a WAL left by a crash belongs to the file it replaces, never to the
                    # restored one (SQLite would apply it at the next open)
                    if replaced:
                        os.replace(wal, replaced + "-wal")
                    else:
                        os.unlink(wal)
                if os.path.exists(target + "-shm"):
                    os.unlink(target + "-shm")
            os.replace(tmp, target)
            _fsync_dir(d)
        finally:
            for p in (tmp, tmp + "-lock", tmp + "-wal", tmp + "-shm"):
                if os.path.exists(p):
                    os.unlink(p)
    finally:
        os.close(lock_fd)
    return RestoreResult(target, s.n_events, s.n_items, replaced)
