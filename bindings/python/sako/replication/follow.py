"""``python -m sako.replication.follow DB URLS [STATUS_FILE]``: a replica process with
no HTTP service: it follows the log into DB and, with STATUS_FILE, writes its applied
position there every 0.1 s (the convergence test kills and restarts it)."""
from __future__ import annotations

import os
import signal
import sys
import time

import sako

from .replica import Replica


def main(argv: list) -> int:
    db, urls = argv[0], argv[1]
    status = argv[2] if len(argv) > 2 else None
    stop = []
    signal.signal(signal.SIGTERM, lambda *a: stop.append(1))
    from . import snapshot

    try:
        snapshot.prepare(urls.split(","), db)
    except Exception as exc:  # unreachable now: follow what the file holds
        print(f"follow: no snapshot check ({exc})", file=sys.stderr)
    applied = []  # (seq, wall ns): SAKO_APPLY_LOG, for the lag benchmark
    apply_log = os.environ.get("SAKO_APPLY_LOG")
    with sako.Engine(db, durability=os.environ.get("SAKO_DURABILITY", "normal")) as e:
        r = Replica(e, urls, retrain_check_seconds=float(os.environ.get("SAKO_RETRAIN_CHECK", "0")),
                    on_applied=(lambda seq: applied.append((seq, time.time_ns())))
                    if apply_log else None)
        r.start()
        while not stop:
            if status:
                tmp = status + ".tmp"
                with open(tmp, "w") as f:
                    f.write(f"{r.engine.log_position} {r.last_seq}\n")
                os.replace(tmp, status)
            time.sleep(0.1)
        r.stop()
        if r.engine is not e:  # a snapshot replaced it while running
            r.engine.close()
    if apply_log:
        with open(apply_log, "w") as f:
            f.writelines(f"{s} {t}\n" for s, t in applied)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
