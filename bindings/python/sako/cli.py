"""The ``sako`` command: ``sako serve``, ``sako eval ...``, ``sako demo-db``, ``sako version``."""
from __future__ import annotations

import argparse
import logging
import os
import sys
from typing import List, Optional


def _serve(args: argparse.Namespace) -> int:
    try:
        import uvicorn

        from .service import KeyRing, create_app
    except ImportError as e:  # pragma: no cover - depends on the install
        print(f"sako serve needs the service extra: pip install 'sako[service]' ({e})",
              file=sys.stderr)
        return 2
    logging.basicConfig(level=getattr(logging, args.log_level.upper(), logging.INFO),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        keys = KeyRing.from_sources(args.keys_file)
    except (OSError, ValueError) as e:
        print(f"sako serve: {e}", file=sys.stderr)
        return 2
    if not len(keys) and not args.dev:
        print("sako serve: no API key configured. Set SAKO_CLIENT_KEYS / SAKO_ADMIN_KEYS "
              "(comma-separated), pass --keys-file, or use --dev to run without keys.",
              file=sys.stderr)
        return 2
    if not len(keys):
        logging.getLogger("sako.service").warning(
            "--dev and no API key: every request is treated as admin")
    options = {"durability": args.durability}
    if args.seed is not None:
        options["seed"] = args.seed
    app = create_app(db_path=args.db, keys=keys, dev=args.dev, seed_demo=not args.no_demo,
                     engine_options=options, inline_recommend={"auto": None, "loop": True,
                                       "threadpool": False}[args.recommend_in])
    uvicorn.run(app, host=args.host, port=args.port, log_level=args.log_level,
                access_log=args.access_log, timeout_graceful_shutdown=10)
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


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="sako", description="libsako recommendations: service and tools")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")

    s = sub.add_parser("serve", help="run the HTTP service (FastAPI on uvicorn)")
    s.add_argument("--db", default=None,
                   help="database file (default ./var/sako.db, created with a demo catalog)")
    s.add_argument("--host", default="127.0.0.1")
    s.add_argument("--port", type=int, default=8000)
    s.add_argument("--dev", action="store_true", help="allow running with no API key")
    s.add_argument("--keys-file", default=None, help="file of 'client:KEY' / 'admin:KEY' lines")
    s.add_argument("--no-demo", action="store_true", help="do not seed a new database")
    s.add_argument("--durability", choices=("full", "normal", "off"), default="full")
    s.add_argument("--seed", type=int, default=None, help="RNG seed (default: from the clock)")
    s.add_argument("--log-level", default="info")
    s.add_argument("--access-log", action="store_true", help="log every request")
    s.add_argument("--recommend-in", choices=("auto", "loop", "threadpool"), default="auto",
                   help="where recommend runs: on the event loop, in the threadpool, or "
                        "chosen from its measured cost (default)")

    sub.add_parser("eval", help="evaluation tools (sako.eval)", add_help=False)

    d = sub.add_parser("demo-db", help="create a database with the demo catalog")
    d.add_argument("path")
    d.add_argument("--products", type=int, default=3000)
    d.add_argument("--events", type=int, default=20000)
    d.add_argument("--seed", type=int, default=42)
    d.add_argument("--force", action="store_true")

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
    if args.command == "version":
        from . import __version__

        print(__version__)
        return 0
    p.print_help()
    return 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
