"""Every C status code maps to its exception class, with the C message."""
from __future__ import annotations

import os
import sqlite3

import numpy as np
import pytest

import sako
from sako import _errors, _sako
from sako._engine import DTYPES

from conftest import fill

TABLE = [
    ("SAKO_ERROR", sako.InternalError, ()),
    ("SAKO_NOMEM", sako.OutOfMemory, (MemoryError,)),
    ("SAKO_INVALID", sako.InvalidArgument, (ValueError,)),
    ("SAKO_NOTFOUND", sako.NotFound, (KeyError,)),
    ("SAKO_RANGE", sako.RangeError, (ValueError,)),
    ("SAKO_IO", sako.IOFailure, (OSError,)),
    ("SAKO_CORRUPT", sako.Corrupt, ()),
    ("SAKO_BUSY", sako.Busy, ()),
    ("SAKO_MISUSE", sako.Misuse, ()),
    ("SAKO_VERSION", sako.VersionError, ()),
]


@pytest.mark.parametrize("const,cls,extra", TABLE)
def test_every_code_has_its_class(const, cls, extra):
    code = getattr(_sako, const)
    assert sako.ERRORS[code] is cls
    assert sako.error_for(code) is cls
    assert cls.code == code
    assert issubclass(cls, sako.SakoError)
    for base in extra:
        assert issubclass(cls, base)
    with pytest.raises(cls) as ei:
        _errors._raise(code, b"raised on request")  # what the status typemap calls
    assert str(ei.value) == "raised on request"
    assert ei.value.code == code
    assert "'" not in str(ei.value)  # KeyError's quoting is undone
    with pytest.raises(cls, match="^" + _sako.sako_errstr(code) + "$"):
        _errors._raise(code, b"")  # no detailed message: the code's static text


def test_all_codes_covered():
    codes = {v for k, v in vars(_sako).items()
             if k.startswith("SAKO_") and isinstance(v, int) and -100 < v < 0
             and k in {t[0] for t in TABLE}}
    assert codes == set(sako.ERRORS)


def test_unknown_code_is_base_class():
    with pytest.raises(sako.SakoError) as ei:
        _errors._raise(-99, b"new")
    assert type(ei.value) is sako.SakoError


def test_c_failure_goes_through_the_status_typemap(engine):
    with pytest.raises(sako.NotFound, match="99999") as ei:
        _sako.sako_item_get(engine._h, 99999, np.zeros(1, DTYPES["sako_item_info"]))
    assert ei.value.code == _sako.SAKO_NOTFOUND
    assert _sako.sako_retrain(engine._h) is None  # SAKO_OK is None


def test_invalid(engine):
    with pytest.raises(sako.InvalidArgument, match="negative"):
        engine.recommend(1, k=-1)
    with pytest.raises(ValueError):  # also a ValueError
        engine.update([(1, 100, 9)])


def test_notfound(engine):
    with pytest.raises(sako.NotFound):
        engine.item(99999)
    with pytest.raises(KeyError):
        engine.recommend(1, category=4242)
    with pytest.raises(sako.NotFound, match="unknown item"):
        engine.update([(1, 100, 0), (1, 99999, 0)])
    assert engine.stats().n_events == 0  # atomic


def test_range(engine):
    with pytest.raises(sako.RangeError, match="SAKO_MAX_K"):
        engine.recommend(1, k=1001)
    with pytest.raises(sako.RangeError):
        engine.recommend(1, exclude=list(range(1, sako.MAX_EXCLUDE + 2)))


def test_misuse_null_handle_and_closed(engine):
    with pytest.raises(sako.Misuse):
        # a NULL engine reaches the C library: SAKO_MISUSE
        _sako.sako_stats_get(None, np.zeros(1, DTYPES["sako_stats"]))
    engine.close()
    with pytest.raises(sako.Misuse, match="engine is closed"):
        engine.recommend(1)


def test_corrupt_not_sqlite(tmp_path):
    p = tmp_path / "junk.db"
    p.write_bytes(os.urandom(4096))
    with pytest.raises(sako.Corrupt):
        sako.open(str(p))


def test_corrupt_other_application(tmp_path):
    p = str(tmp_path / "other.db")
    con = sqlite3.connect(p)
    con.execute("create table t(x)")
    con.commit()
    con.close()
    with pytest.raises(sako.Corrupt, match="another application"):
        sako.open(p)


def test_version_newer_schema(db_path):
    with sako.open(db_path) as e:
        fill(e)
    con = sqlite3.connect(db_path)
    (v,) = con.execute("PRAGMA user_version").fetchone()
    con.execute(f"PRAGMA user_version = {v + 1}")
    con.commit()
    con.close()
    with pytest.raises(sako.VersionError, match="newer"):
        sako.open(db_path)


def test_io_failure(tmp_path):
    with pytest.raises(sako.IOFailure):
        sako.open(str(tmp_path / "no" / "such" / "dir.db"))
    with pytest.raises(OSError):
        sako.open(str(tmp_path))  # a directory


def test_busy(db_path):
    with sako.open(db_path, busy_timeout_ms=20) as e:
        fill(e)
        con = sqlite3.connect(db_path, isolation_level=None)
        con.execute("BEGIN EXCLUSIVE")
        try:
            with pytest.raises(sako.Busy):
                e.update([(1, 100, "click")])
        finally:
            con.execute("ROLLBACK")
            con.close()
        e.update([(1, 100, "click")])  # fine once the lock is gone
        assert e.item(100).clicks == 1


def test_open_empty_path_refused(tmp_path, monkeypatch):
    # "" was an SQLite temporary database: acknowledged updates vanished at close.
    monkeypatch.chdir(tmp_path)
    with pytest.raises(sako.InvalidArgument, match="empty"):
        sako.open("")
    assert not (tmp_path / "-lock").exists()


def test_open_zero_length_file(tmp_path):
    p = tmp_path / "zero.db"
    p.write_bytes(b"")
    with pytest.raises(sako.Corrupt, match="create_empty"):
        sako.open(str(p))
    assert p.stat().st_size == 0
    assert sorted(x.name for x in tmp_path.iterdir()) == ["zero.db"]
    with sako.open(str(p), create_empty=1, seed=1) as e:
        e.upsert_categories([(1, 0, "Dairy")])
    with sako.open(str(p)) as e:
        assert e.stats().n_categories == 1


def test_verify_and_cli(tmp_path, capsys):
    from sako.cli import main

    p = tmp_path / "v.db"
    with sako.open(str(p), seed=1, durability="off") as e:
        fill(e)
        e.update([(1, 100, "impression"), (1, 100, "click"), (2, 101, "purchase")])
        e.update([(3, 104, "impression", 1_700_000_000_000), (3, 104, "cart", 1_700_000_000_001)])
    r = sako.verify(p)
    assert r.n_batches >= 1 and r.n_checksummed == r.n_batches and r.n_events > 0
    assert main(["verify", str(p)]) == 0
    assert "ok" in capsys.readouterr().out
    assert sorted(x.name for x in tmp_path.iterdir()) == ["v.db", "v.db-lock"]
    # One byte of the last logged batch flipped: both refuse, naming the batch.
    con = sqlite3.connect(str(p))
    seq, blob = con.execute("SELECT seq, events FROM event_batches ORDER BY seq DESC LIMIT 1").fetchone()
    con.close()
    data = bytearray(p.read_bytes())
    at = data.find(blob)
    assert at > 0
    data[at + 9] ^= 0x04
    p.write_bytes(bytes(data))
    with pytest.raises(sako.Corrupt, match=f"batch {seq}"):
        sako.verify(p)
    assert main(["verify", str(p)]) == 2
    assert f"batch {seq}" in capsys.readouterr().err
    with pytest.raises(sako.Corrupt, match=f"batch {seq}"):
        sako.open(str(p))
