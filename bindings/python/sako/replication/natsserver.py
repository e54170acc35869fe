"""Start and stop local ``nats-server`` processes with JetStream (tests, benchmarks,
trying replicated mode on one machine): one server or a cluster on free loopback
ports, each with its store in a folder of its own."""
from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from typing import List, Optional


async def _quiet(exc: Exception) -> None:  # nats-py prints a traceback otherwise
    pass


def binary() -> Optional[str]:
    return shutil.which("nats-server") or next(
        (p for p in ("/usr/sbin/nats-server", "/usr/bin/nats-server") if os.path.exists(p)), None)


def free_ports(n: int) -> List[int]:
    socks, ports = [], []
    for _ in range(n):
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        socks.append(s)
        ports.append(s.getsockname()[1])
    for s in socks:
        s.close()
    return ports


class Cluster:
    """``size`` JetStream servers on loopback (a cluster when size > 1)."""

    def __init__(self, folder: str, size: int = 3, max_payload: int = 8 << 20) -> None:
        self.folder, self.size, self.max_payload = folder, size, max_payload
        os.makedirs(folder, exist_ok=True)
        ports = free_ports(2 * size)
        self.client_ports, self.route_ports = ports[:size], ports[size:]
        self.procs: List[Optional[subprocess.Popen]] = [None] * size
        self.bin = binary()
        if not self.bin:
            raise FileNotFoundError("nats-server is not installed (Debian package nats-server)")

    @property
    def urls(self) -> List[str]:
        return [f"nats://127.0.0.1:{p}" for p in self.client_ports]

    def _config(self, i: int) -> str:
        store = os.path.join(self.folder, f"n{i}")
        os.makedirs(store, exist_ok=True)
        lines = [f'server_name: "n{i}"', "host: 127.0.0.1", f"port: {self.client_ports[i]}",
                 f"max_payload: {self.max_payload}",
                 f'jetstream {{ store_dir: "{store}", max_memory_store: 64MB, max_file_store: 2GB }}']
        if self.size > 1:
            routes = ", ".join(f"nats-route://127.0.0.1:{p}" for j, p in enumerate(self.route_ports)
                               if j != i)
            lines.append(f'cluster {{ name: "sako", host: 127.0.0.1, port: {self.route_ports[i]}, '
                         f"routes: [{routes}] }}")
        path = os.path.join(self.folder, f"n{i}.conf")
        with open(path, "w") as f:
            f.write("\n".join(lines) + "\n")
        return path

    def start_node(self, i: int) -> None:
        log = open(os.path.join(self.folder, f"n{i}.log"), "ab")
        self.procs[i] = subprocess.Popen([self.bin, "-c", self._config(i)], stdout=log,
                                         stderr=subprocess.STDOUT)

    def kill_node(self, i: int, sig: int = signal.SIGKILL) -> None:
        p = self.procs[i]
        if p is not None and p.poll() is None:
            p.send_signal(sig)
            p.wait(10)
        self.procs[i] = None

    def start(self, timeout: float = 20.0) -> "Cluster":
        for i in range(self.size):
            self.start_node(i)
        self.wait_ready(timeout)
        return self

    def wait_ready(self, timeout: float = 20.0) -> None:
        """Until every server takes connections and JetStream has a meta leader."""
        import asyncio

        import nats

        async def probe() -> bool:
            try:
                nc = await nats.connect(servers=self.urls, connect_timeout=1,
                                        max_reconnect_attempts=1, error_cb=_quiet)
            except Exception:
                return False
            try:
                await nc.jetstream().account_info()
                return True
            except Exception:
                return False
            finally:
                await nc.close()

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if asyncio.run(probe()):
                return
            time.sleep(0.3)
        raise TimeoutError("nats-server cluster did not become ready")

    def stop(self) -> None:
        for i in range(self.size):
            self.kill_node(i, signal.SIGTERM)

    def __enter__(self) -> "Cluster":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
