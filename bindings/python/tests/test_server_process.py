"""One end-to-end run through a real uvicorn process (`python -m sako serve`) on a free
loopback port."""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time

import httpx
import pytest


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_up(proc: subprocess.Popen, url: str, what: str, **kw) -> httpx.Response:
    """The first answer of GET url (any status) from the process; fail with its output
    if it exits or has not answered within 60 s."""
    deadline = time.monotonic() + 60
    while True:
        try:
            return httpx.get(url, timeout=1, **kw)
        except httpx.HTTPError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            out = proc.stdout.read().decode(errors="replace") if proc.stdout else ""
            proc.kill()
            pytest.fail(f"{what} did not start: {out}")
        time.sleep(0.2)


@pytest.fixture
def server(tmp_path):
    port = _free_port()
    env = dict(os.environ, SAKO_CLIENT_KEYS="ck", SAKO_ADMIN_KEYS="ak")
    db = tmp_path / "var" / "sako.db"
    proc = subprocess.Popen([sys.executable, "-m", "sako", "serve", "--db", str(db),
                             "--port", str(port), "--seed", "1", "--log-level", "warning"],
                            env=env, cwd=str(tmp_path), stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    assert _wait_up(proc, base + "/healthz", "server").status_code == 200
    yield base, proc, db
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:  # pragma: no cover
            proc.kill()


def test_real_server_round_trip(server):
    base, proc, db = server
    h = {"X-API-Key": "ck"}
    with httpx.Client(base_url=base, timeout=10) as c:
        r = c.post("/v1/recommendations", json={"user_id": 5, "k": 3}, headers=h)
        assert r.status_code == 200, r.text
        rec = r.json()
        item = rec["items"][0]["item_id"]
        r = c.post("/v1/events", headers=h, json={"events": [
            {"user_id": 5, "item_id": item, "type": "click", "rec_id": rec["recommendation_id"]}]})
        assert r.json() == {"accepted": 1}
        assert c.post("/v1/retrain", headers=h).status_code == 403
        assert c.post("/v1/retrain", headers={"X-API-Key": "ak"}).status_code == 200
        assert c.post("/v1/recommendations", json={"user_id": 5, "k": -1}, headers=h).status_code == 422
        assert "sako_http_requests_total" in c.get("/metrics").text
    proc.send_signal(signal.SIGTERM)  # graceful shutdown closes the engine
    assert proc.wait(20) == 0  # sako serve ends a graceful shutdown with status 0
    assert db.exists()
    wal = db.with_name(db.name + "-wal")
    assert not wal.exists() or wal.stat().st_size == 0  # closed: WAL checkpointed away


def test_serve_refuses_without_keys(tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in ("SAKO_CLIENT_KEYS", "SAKO_ADMIN_KEYS")}
    r = subprocess.run([sys.executable, "-m", "sako", "serve", "--db", str(tmp_path / "x.db")],
                       env=env, capture_output=True, text=True, timeout=60)
    assert r.returncode == 2
    assert "no API key" in r.stderr


def test_uvicorn_factory_reads_environment(tmp_path):
    """`uvicorn --factory sako.service:create_app` starts with keys from the environment
    (it used to ignore them and refuse to start)."""
    port = _free_port()
    env = dict(os.environ, SAKO_CLIENT_KEYS="fk", SAKO_DB=str(tmp_path / "f.db"),
               SAKO_DEMO="false")
    proc = subprocess.Popen([sys.executable, "-m", "uvicorn", "--factory",
                             "sako.service:create_app", "--port", str(port),
                             "--log-level", "warning"],
                            env=env, cwd=str(tmp_path), stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT)
    try:
        r = _wait_up(proc, f"http://127.0.0.1:{port}/v1/stats", "uvicorn --factory",
                     headers={"X-API-Key": "fk"})
        assert r.status_code == 200 and r.json()["n_items"] == 0
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:  # pragma: no cover
            proc.kill()
