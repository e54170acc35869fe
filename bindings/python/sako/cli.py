"""The ``sako`` command: ``sako serve``, ``sako eval ...``, ``sako demo-db``, ``sako backup``,
``sako restore``, ``sako verify``, ``sako compact``, ``sako version``."""
from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
from typing import List, Optional


def _serve(args: argparse.Namespace) -> int:
    try:
        import uvicorn

        from .service import create_app
        from .service.settings import from_args
    except ImportError as e:  # pragma: no cover - depends on the install
        print(f"sako serve needs the service extra: pip install 'sako[service]' ({e})",
              file=sys.stderr)
        return 2
    try:
        settings = from_args(args.settings_source, args)
    except ValueError as e:  # pydantic's ValidationError (a bad SAKO_* value) is one
        print(f"sako serve: {e}", file=sys.stderr)
        return 2
    logging.basicConfig(level=getattr(logging, settings.log_level.upper(), logging.INFO),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        keys = settings.keyring()
    except (OSError, ValueError) as e:
        print(f"sako serve: {e}", file=sys.stderr)
        return 2
    if not len(keys) and not settings.dev:
        print("sako serve: no API key configured. Set SAKO_CLIENT_KEYS / SAKO_ADMIN_KEYS "
              "(comma-separated), pass --keys-file, or use --dev to run without keys.",
              file=sys.stderr)
        return 2
    if not len(keys):
        logging.getLogger("sako.service").warning(
            "--dev and no API key: every request is treated as admin")
    if settings.workers > 1:
        if not settings.replicate:
            print("sako serve: --workers N needs --replicate nats://...: each worker is a "
                  "replica with its own file following one log", file=sys.stderr)
            return 2
        return _serve_workers(settings)
    app = create_app(settings)
    if os.environ.get("SAKO_REUSE_PORT") == "1":  # a worker of --workers N
        return _serve_reuse_port(app, settings)
    # uvicorn finishes the requests in flight (up to 10 s), runs the app's shutdown
    # (the engine is closed, its log folded into a checkpoint), then raises the signal
    # it caught again with the handler found at start. With this one, SIGTERM and
    # SIGINT end a graceful shutdown with status 0, as a service manager expects.
    stopped = []
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda signum, frame: stopped.append(signum))
    uvicorn.run(app, host=settings.host, port=settings.port, log_level=settings.log_level,
                access_log=settings.access_log, timeout_graceful_shutdown=10)
    if stopped:
        logging.getLogger("sako.service").info("stopped by signal %d", stopped[0])
    return 0


def worker_db(db: str, i: int) -> str:
    """Worker i's replica file: var/sako.db -> var/sako-1.db."""
    root, ext = os.path.splitext(db)
    return f"{root}-{i}{ext}"


def _serve_workers(settings: "object") -> int:
    """--workers N: N processes, each `sako serve` on its own replica file, sharing the
    port (SO_REUSEPORT: the kernel spreads connections). Stops them all on SIGTERM or
    SIGINT, or when one exits."""
    import subprocess
    import time

    argv, skip = [], False
    for a in sys.argv[2:]:  # after "sako serve": the flags, less --db and --workers
        if skip:
            skip = False
            continue
        if a in ("--db", "--workers"):
            skip = True
            continue
        if a.startswith("--db=") or a.startswith("--workers="):
            continue
        argv.append(a)
    n = settings.workers  # type: ignore[attr-defined]
    procs = []
    env = {**os.environ, "SAKO_REUSE_PORT": "1"}
    for i in range(1, n + 1):
        cmd = [sys.executable, "-m", "sako", "serve", *argv, "--db",
               worker_db(settings.db, i), "--workers", "1"]  # type: ignore[attr-defined]
        procs.append(subprocess.Popen(cmd, env=env))
    stopped: List[int] = []
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda signum, frame: stopped.append(signum))
    while not stopped and all(p.poll() is None for p in procs):
        time.sleep(0.2)
    for p in procs:
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)
    rc = 0
    for p in procs:  # each finishes its requests and closes its engine
        try:
            code = p.wait(30)
        except subprocess.TimeoutExpired:
            p.kill()
            code = p.wait()
        rc = rc or (0 if stopped else code)
    return rc


def _serve_reuse_port(app: "object", settings: "object") -> int:
    import socket

    import uvicorn

    sock = socket.socket(socket.AF_INET6 if ":" in settings.host else socket.AF_INET)  # type: ignore[attr-defined]
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((settings.host, settings.port))  # type: ignore[attr-defined]
    sock.listen(2048)
    stopped = []
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda signum, frame: stopped.append(signum))
    config = uvicorn.Config(app, log_level=settings.log_level,  # type: ignore[attr-defined]
                            access_log=settings.access_log,  # type: ignore[attr-defined]
                            timeout_graceful_shutdown=10)
    uvicorn.Server(config).run(sockets=[sock])
    return 0


def _eval(argv: List[str]) -> int:
    try:
        from .eval.cli import main as eval_main  # written separately; optional
    except ImportError as e:
        print("sako eval is not available in this installation: the sako.eval subpackage "
              f"is missing ({e}).", file=sys.stderr)
        return 2
    rc = eval_main(argv)
    return int(rc or 0)


def _demo_db(args: argparse.Namespace) -> int:
    from . import Engine
    from .demo import seed_engine

    if os.path.exists(args.path) and not args.force:
        print(f"{args.path} exists; use --force to add the demo catalog to it", file=sys.stderr)
        return 2
    if os.path.dirname(args.path):
        os.makedirs(os.path.dirname(args.path), exist_ok=True)
    with Engine(args.path) as eng:
        cat = seed_engine(eng, n_products=args.products, seed=args.seed, events=args.events)
        s = eng.stats()
    print(f"{args.path}: {len(cat.categories)} categories, {s.n_items} items, {s.n_events} events")
    return 0


def _backup(args: argparse.Namespace) -> int:
    from . import SakoError
    from .restore import backup

    try:
        r = backup(args.db, args.out)
    except (SakoError, OSError) as e:
        print(f"sako backup: {e}", file=sys.stderr)
        return 2
    how = "online backup" if r.online else "read snapshot (the file is open in an engine)"
    print(f"{r.path}: {r.size_bytes} bytes, {r.n_events} events, {r.duration_seconds:.3f} s ({how})")
    return 0


def _restore(args: argparse.Namespace) -> int:
    from . import SakoError
    from .restore import RestoreError, restore

    try:
        r = restore(args.backup, args.target, keep_replaced=not args.no_keep)
    except (RestoreError, SakoError, OSError) as e:
        print(f"sako restore: refused, nothing changed: {e}", file=sys.stderr)
        return 2
    print(f"{r.target}: restored ({r.n_items} items, {r.n_events} events)"
          + (f"; the replaced file is kept as {r.replaced}" if r.replaced else ""))
    return 0


def _verify(args: argparse.Namespace) -> int:
    from . import SakoError, verify

    try:
        r = verify(args.db)
    except (SakoError, OSError) as e:
        print(f"sako verify: {args.db}: damaged or unreadable: {e}", file=sys.stderr)
        return 2
    unchecked = r.n_batches - r.n_checksummed
    print(f"{args.db}: ok (integrity_check ok; {r.n_checksummed} event batches verified"
          + (f", {unchecked} written before 0.3 without a checksum" if unchecked else "")
          + f"; {r.n_events} events"
          + (f"; log checkpoint at batch {r.compact_batch}: {r.n_checkpoint_chunks} chunks "
             f"verified" if r.compact_batch else "") + ")")
    return 0


def _compact(args: argparse.Namespace) -> int:
    from . import SakoError, open as sako_open

    try:
        with sako_open(args.db) as eng:
            before = eng.log_stats()
            r = eng.compact(keep_days=args.keep_days, keep_events=args.keep_events)
            after = eng.log_stats()
    except (SakoError, OSError) as e:
        print(f"sako compact: {args.db}: {e}", file=sys.stderr)
        return 2
    if r.batches_removed == 0 and r.checkpoint_bytes == 0:
        print(f"{args.db}: nothing to compact ({after.n_events} events in the log"
              + (f", compacted up to batch {r.compact_batch}" if r.compact_batch else "") + ")")
        return 0
    print(f"{args.db}: compacted up to batch {r.compact_batch}: {r.batches_removed} batches "
          f"({r.events_removed} events) deleted, checkpoint {r.checkpoint_bytes} bytes, "
          f"{after.n_events} events left in the log (of {before.n_events}), "
          f"{r.elapsed_ms / 1000.0:.3f} s; file {after.file_bytes} bytes of which "
          f"{after.free_bytes} free (reused by later writes)")
    return 0


def _versions(args: argparse.Namespace) -> int:
    from . import Busy, SakoError, open as sako_open

    try:
        with sako_open(args.db) as e:
            if args.activate is not None:
                e.activate(args.activate)
                print(f"{args.db}: version {args.activate} is active")
            for n, pinned in ((args.pin, True), (args.unpin, False)):
                if n is not None:
                    e.pin(n, pinned)
                    print(f"{args.db}: version {n} {'pinned' if pinned else 'unpinned'}")
            for v in e.versions():
                print(f"{v.version:>6}  {v.status:<8}  {'pinned' if v.pinned else '      '}  "
                      f"{','.join(v.reason_names):<14}  {v.verdict}")
    except Busy as exc:
        print(f"sako versions: {args.db} is open in an engine (a running service: use "
              f"/v1/versions): {exc}", file=sys.stderr)
        return 2
    except (SakoError, OSError) as exc:
        print(f"sako versions: {args.db}: {exc}", file=sys.stderr)
        return 2
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="sako", description="libsako recommendations: service and tools")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")

    s = sub.add_parser("serve", help="run the HTTP service (FastAPI on uvicorn)",
                       description="Run the HTTP service. Every flag is also read from the "
                                   "environment variable SAKO_<FLAG> (see docs/service.md).")
    try:
        from .service.settings import add_arguments
    except ImportError:  # pragma: no cover - no service extra; _serve explains
        pass
    else:
        s.set_defaults(settings_source=add_arguments(s))

    sub.add_parser("eval", help="evaluation tools (sako.eval)", add_help=False)

    d = sub.add_parser("demo-db", help="create a database with the demo catalog")
    d.add_argument("path")
    d.add_argument("--products", type=int, default=3000)
    d.add_argument("--events", type=int, default=20000)
    d.add_argument("--seed", type=int, default=42)
    d.add_argument("--force", action="store_true")

    b = sub.add_parser("backup", help="back up a database file into a new file",
                       description="Back up DB into the new file OUT (never overwritten). A "
                                   "running service: use POST /v1/backup instead.")
    b.add_argument("db")
    b.add_argument("out")

    r = sub.add_parser("restore", help="check a backup and put it in place of a database",
                       description="Check BACKUP (integrity, libsako stamp, opens as an engine) "
                                   "and atomically put it in place as TARGET. Refused while an "
                                   "engine holds TARGET; the replaced file is kept as "
                                   "TARGET.replaced-<time> unless --no-keep.")
    r.add_argument("backup")
    r.add_argument("target")
    r.add_argument("--no-keep", action="store_true", help="delete the replaced file")

    v = sub.add_parser("verify", help="check a database file or backup; changes nothing",
                       description="Run SQLite's integrity_check on DB and check every logged "
                                   "event batch against its checksum. Exit status 0 if intact, "
                                   "2 if damaged or unreadable. Safe on a file in use.")
    v.add_argument("db")

    c = sub.add_parser("compact", help="fold the old part of the event log into a checkpoint",
                       description="Compact the event log of DB (sako_compact): batches older "
                                   "than the retention window and at or before the latest "
                                   "retrain are folded into a checkpoint and deleted. Needs the "
                                   "file to itself; a running service: POST /v1/compact.")
    c.add_argument("db")
    c.add_argument("--keep-days", type=float, default=30.0,
                   help="days of event time to keep (default 30; 0: no time window)")
    c.add_argument("--keep-events", type=int, default=100_000,
                   help="latest events to keep at least (default 100000; raised to 10000 "
                        "and to the retrain policy's gate_holdout_events)")
    m = sub.add_parser("versions", help="list the model versions of a database; activate "
                                        "(roll back) or pin one",
                       description="List DB's model versions, newest first (status, pin, what "
                                   "asked for it, the gate's verdict); with --activate N serve "
                                   "version N (a rollback), with --pin/--unpin N pin it. The "
                                   "file must not be open in an engine: a running service has "
                                   "the same under /v1/versions.")
    m.add_argument("db")
    m.add_argument("--activate", type=int, metavar="N")
    m.add_argument("--pin", type=int, metavar="N")
    m.add_argument("--unpin", type=int, metavar="N")

    sub.add_parser("version", help="print the library version")
    return p


def main(argv: Optional[List[str]] = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] == "eval":
        return _eval(argv[1:])
    p = build_parser()
    args = p.parse_args(argv)
    if args.command == "serve":
        return _serve(args)
    if args.command == "demo-db":
        return _demo_db(args)
    if args.command == "backup":
        return _backup(args)
    if args.command == "restore":
        return _restore(args)
    if args.command == "verify":
        return _verify(args)
    if args.command == "compact":
        return _compact(args)
    if args.command == "versions":
        return _versions(args)
    if args.command == "version":
        from . import __version__

        print(__version__)
        return 0
    p.print_help()
    return 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
