"""Deployment: graceful shutdown on SIGTERM (in-flight request answered, engine closed,
exit status 0, acknowledged events on disk) and the wheel (built with `pip wheel`,
installed into a fresh virtual environment outside the repository, serving)."""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
import venv

import httpx
import pytest

import sako
from test_server_process import _free_port, _wait_up

HERE = os.path.dirname(os.path.abspath(__file__))
PKG = os.path.dirname(HERE)  # bindings/python


def _serve(python_or_cmd, db, port, cwd, extra=()):
    env = dict(os.environ, SAKO_CLIENT_KEYS="ck", SAKO_ADMIN_KEYS="ak")
    env.pop("PYTHONPATH", None)
    cmd = list(python_or_cmd) + ["serve", "--db", str(db), "--port", str(port), "--seed", "1",
                                 "--log-level", "info", *extra]
    return subprocess.Popen(cmd, env=env, cwd=str(cwd), stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT)


def test_sigterm_finishes_in_flight_request_and_exits_0(tmp_path):
    port = _free_port()
    db = tmp_path / "var" / "sako.db"
    proc = _serve([sys.executable, "-m", "sako"], db, port, tmp_path)
    base = f"http://127.0.0.1:{port}"
    try:
        assert _wait_up(proc, base + "/readyz", "server").status_code == 200
        h = {"X-API-Key": "ck"}
        rec = httpx.post(base + "/v1/recommendations", json={"user_id": 9, "k": 5}, headers=h).json()
        items = [r["item_id"] for r in rec["items"]]
        n0 = httpx.get(base + "/v1/stats", headers=h).json()["n_events"]
        events = [{"user_id": 9, "item_id": items[i % len(items)], "type": "impression"}
                  for i in range(5000)]
        body = json.dumps({"events": events}).encode()
        chunks = [body[i:i + len(body) // 20 + 1] for i in range(0, len(body), len(body) // 20 + 1)]
        sent_half = threading.Event()

        def slow_body():  # a slow client: the request is in flight for about 2 s
            for i, c in enumerate(chunks):
                if i == len(chunks) // 2:
                    sent_half.set()
                time.sleep(0.1)
                yield c

        result = {}

        def post():
            try:
                r = httpx.post(base + "/v1/events", content=slow_body(), timeout=30,
                               headers={**h, "Content-Type": "application/json"})
                result["status"], result["body"], result["t"] = r.status_code, r.json(), time.monotonic()
            except Exception as e:  # pragma: no cover - reported below
                result["error"] = repr(e)

        t = threading.Thread(target=post)
        t.start()
        assert sent_half.wait(20)
        t_term = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        t.join(30)
        assert "error" not in result, result
        assert result["status"] == 200 and result["body"] == {"accepted": 5000}, result
        assert result["t"] > t_term  # it was answered after SIGTERM: it was in flight
        rc = proc.wait(30)
        out = proc.stdout.read().decode(errors="replace")
        assert rc == 0, out
        assert "engine closed" in out
    finally:
        if proc.poll() is None:
            proc.kill()
    wal = db.with_name(db.name + "-wal")
    assert not wal.exists() or wal.stat().st_size == 0  # closed: checkpointed
    with sako.open(str(db)) as e:  # the acknowledged events are all there
        assert e.stats().n_events == n0 + 5000


@pytest.mark.slow
def test_wheel_installs_into_fresh_venv_and_serves(tmp_path):
    """`pip wheel` builds a self-contained wheel (libsako compiled into the extension);
    a fresh venv outside the repository installs it and serves from it."""
    if os.environ.get("SAKO_SKIP_WHEEL_TEST"):
        pytest.skip("SAKO_SKIP_WHEEL_TEST set")
    wheels = tmp_path / "wheels"
    r = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-w", str(wheels), PKG],
                       capture_output=True, text=True, timeout=900)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    (whl,) = [p for p in os.listdir(wheels) if p.endswith(".whl")]
    assert whl.startswith(f"sako-{sako.__version__}-")
    env_dir = tmp_path / "venv"
    venv.EnvBuilder(with_pip=True).create(env_dir)
    py = str(env_dir / "bin" / "python")
    r = subprocess.run([py, "-m", "pip", "install", "--quiet", f"{wheels / whl}[service]"],
                       capture_output=True, text=True, timeout=900)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    # Imported from the venv, from a directory with no checkout in sight.
    run = tmp_path / "run"
    run.mkdir()
    r = subprocess.run([py, "-c", "import sako, os; print(sako.__version__, sako.__file__)"],
                       capture_output=True, text=True, cwd=str(run), timeout=60,
                       env={k: v for k, v in os.environ.items() if k != "PYTHONPATH"})
    assert r.returncode == 0, r.stderr
    version, where = r.stdout.split()
    assert version == sako.__version__ and where.startswith(str(env_dir))
    port = _free_port()
    proc = _serve([str(env_dir / "bin" / "sako")], run / "db" / "sako.db", port, run)
    base = f"http://127.0.0.1:{port}"
    try:
        assert _wait_up(proc, base + "/readyz", "wheel server").status_code == 200
        h = httpx.get(base + "/healthz").json()
        assert h["status"] == "ok" and h["version"] == sako.__version__ and h["n_items"] > 0
        r = httpx.post(base + "/v1/recommendations", json={"user_id": 3, "k": 5},
                       headers={"X-API-Key": "ck"})
        assert r.status_code == 200 and len(r.json()["items"]) == 5
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
    shutil.rmtree(env_dir, ignore_errors=True)
