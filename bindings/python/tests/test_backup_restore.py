"""Backup and restore: Engine.backup, `sako backup` / `sako restore` round trips compared
posterior by posterior, the restore's refusals, POST /v1/backup and /readyz."""
from __future__ import annotations

import os
import random
import sqlite3
import subprocess
import sys

import pytest
from fastapi.testclient import TestClient

import sako
from sako.restore import RestoreError, restore
from sako.service import Settings, create_app

from conftest import ITEMS, fill

USERS = range(1, 21)


def _traffic(e: sako.Engine, n: int, seed: int) -> None:
    rng = random.Random(seed)
    evs = []
    for i in range(n):
        item = ITEMS[rng.randrange(len(ITEMS))][0]
        t = rng.choice(["impression"] * 6 + ["click", "purchase"])
        evs.append((rng.choice(USERS), item, t, 1_700_000_000_000 + i * 1000, 0, 1 + i // 7
                    if t == "purchase" else 0))
    for k in range(0, n, 50):
        e.update(evs[k:k + 50])


def _state(e: sako.Engine) -> dict:
    """Every item's evidence and posterior, every user's state and history entries."""
    out: dict = {"stats": e.stats()}
    for item, _ in ITEMS:
        out[("item", item)] = e.item(item)
    for u in USERS:
        try:
            out[("user", u)] = e.user(u)
        except sako.NotFound:
            continue
        for item, _ in ITEMS:
            try:
                out[("user_item", u, item)] = e.user_item(u, item)
            except sako.NotFound:
                pass
    return out


def _run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "sako", *args], capture_output=True, text=True,
                          timeout=120)


def test_engine_backup_equals_source(tmp_path):
    with sako.open(str(tmp_path / "a.db"), seed=3) as e:
        fill(e)
        _traffic(e, 2000, 1)
        e.backup(tmp_path / "b.db")
        want = _state(e)
        with pytest.raises(sako.InvalidArgument, match="exists"):
            e.backup(tmp_path / "b.db")
        with pytest.raises(sako.SakoError):
            e.backup(tmp_path / "missing-dir" / "c.db")
        assert not (tmp_path / "missing-dir").exists()
    with sako.open(str(tmp_path / "b.db")) as b:
        assert _state(b) == want


def test_cli_backup_restore_round_trip(tmp_path):
    src, bk, target = tmp_path / "shop.db", tmp_path / "shop-backup.db", tmp_path / "restored.db"
    with sako.open(str(src), seed=5) as e:
        fill(e)
        _traffic(e, 1500, 2)
    r = _run("backup", str(src), str(bk))
    assert r.returncode == 0, r.stderr
    assert "1500 events" in r.stdout
    assert _run("backup", str(src), str(bk)).returncode == 2  # never overwritten
    with sako.open(str(src)) as e:  # the source goes on after the backup
        want = _state(e)
        _traffic(e, 300, 3)
        later = _state(e)
    r = _run("restore", str(bk), str(target))
    assert r.returncode == 0, r.stderr
    with sako.open(str(target)) as t:
        assert _state(t) == want
    # Restoring over an existing database keeps the replaced file.
    r = _run("restore", str(bk), str(src))
    assert r.returncode == 0, r.stderr
    kept = [p for p in os.listdir(tmp_path) if p.startswith("shop.db.replaced-")]
    assert len(kept) == 1
    with sako.open(str(src)) as e:
        assert _state(e) == want
    with sako.open(str(tmp_path / kept[0])) as e:
        assert _state(e) == later
    # The backup itself is untouched: byte-identical to a fresh read of it.
    with sqlite3.connect(bk) as con:
        assert con.execute("PRAGMA integrity_check").fetchone()[0] == "ok"


def test_cli_backup_of_a_busy_file_takes_a_snapshot(tmp_path):
    """With a service holding the file, `sako backup` copies a read snapshot instead."""
    src = tmp_path / "busy.db"
    with sako.open(str(src), seed=4) as e:
        fill(e)
        _traffic(e, 400, 6)
        r = _run("backup", str(src), str(tmp_path / "snap.db"))
        assert r.returncode == 0, r.stderr
        assert "read snapshot" in r.stdout and "400 events" in r.stdout
        want = _state(e)
    with sako.open(str(tmp_path / "snap.db")) as b:
        assert _state(b) == want
    r = _run("backup", str(src), str(tmp_path / "no-such-dir" / "x.db"))
    assert r.returncode == 2 and "Traceback" not in r.stderr
    r = _run("restore", str(tmp_path / "snap.db"), str(tmp_path / "no-such-dir" / "x.db"))
    assert r.returncode == 2 and "Traceback" not in r.stderr


def test_restore_refusals_change_nothing(tmp_path):
    target = tmp_path / "live.db"
    with sako.open(str(target), seed=1) as e:
        fill(e)
        _traffic(e, 200, 4)
        e.backup(tmp_path / "good.db")
        before = target.read_bytes()
        # an engine holds the target
        with pytest.raises(RestoreError, match="open in an engine"):
            restore(tmp_path / "good.db", target)
        r = _run("restore", str(tmp_path / "good.db"), str(target))
        assert r.returncode == 2 and "open in an engine" in r.stderr
    before = target.read_bytes()
    bad = tmp_path / "text.db"
    bad.write_text("not a database at all, not even close")
    foreign = tmp_path / "foreign.db"
    with sqlite3.connect(foreign) as con:
        con.execute("CREATE TABLE t(x)")
    damaged = tmp_path / "damaged.db"
    data = bytearray((tmp_path / "good.db").read_bytes())
    data[len(data) // 2:len(data) // 2 + 4096] = b"\xff" * 4096
    damaged.write_bytes(bytes(data))
    for path, why in ((bad, "not an SQLite database"), (foreign, "another application"),
                      (damaged, None), (tmp_path / "absent.db", "no such file")):
        with pytest.raises((RestoreError, sako.SakoError), match=why):
            restore(path, target)
        assert target.read_bytes() == before
    assert not [p for p in os.listdir(tmp_path) if ".restore-" in p]


def test_post_backup_route(tmp_path):
    settings = Settings(client_keys=["ck"], admin_keys=["ak"], backup_dir=str(tmp_path / "bk"))
    admin = {"X-API-Key": "ak"}
    with sako.open(str(tmp_path / "db.sqlite"), seed=2) as e:
        fill(e)
        _traffic(e, 500, 5)
        app = create_app(settings, engine=e)
        with TestClient(app) as c:
            assert c.post("/v1/backup", headers={"X-API-Key": "ck"}).status_code == 403
            assert c.post("/v1/backup").status_code == 401
            r = c.post("/v1/backup", headers=admin)
            assert r.status_code == 200, r.text
            body = r.json()
            assert os.path.dirname(body["path"]) == str(tmp_path / "bk")
            assert os.path.basename(body["path"]).startswith("sako-")
            assert body["size_bytes"] == os.path.getsize(body["path"]) > 0
            assert body["n_events"] == 500 and body["duration_seconds"] >= 0
            r = c.post("/v1/backup", headers=admin, json={"name": "nightly.db"})
            assert r.status_code == 200, r.text
            r = c.post("/v1/backup", headers=admin, json={"name": "nightly.db"})
            assert r.status_code == 409 and r.json()["error"] == "exists"
            for bad in ("../escape.db", "a/b.db", ".hidden", "", "x" * 200):
                r = c.post("/v1/backup", headers=admin, json={"name": bad})
                assert r.status_code == 422, (bad, r.text)
            assert not (tmp_path / "escape.db").exists()
            m = c.get("/metrics").text
            assert "sako_backup_last_success_timestamp_seconds" in m
            assert 'sako_backups_total{result="ok"} 2.0' in m
            want = _state(e)
    with sako.open(str(tmp_path / "bk" / "nightly.db")) as b:
        assert _state(b) == want


def test_readiness_distinct_from_liveness(tmp_path, engine):
    app = create_app(Settings(dev=True), engine=engine)
    with TestClient(app) as c:
        h = c.get("/healthz")
        assert h.status_code == 200 and h.json()["ready"] is True
        r = c.get("/readyz")
        assert r.status_code == 200 and r.json()["ready"] is True
        app.state.stopping = True  # what the shutdown sets before the engine closes
        r = c.get("/readyz")
        assert r.status_code == 503 and r.json()["error"] == "not_ready"
        assert c.get("/healthz").status_code == 200  # still alive
        app.state.stopping = False
        app.state.engine = None  # not open yet
        assert c.get("/readyz").status_code == 503
        app.state.engine = engine
        assert c.get("/readyz").status_code == 200
