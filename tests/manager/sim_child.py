"""One manager run in a process of its own, at a simulated time, for kill tests.

    python -m tests.manager.sim_child '{"now": "2026-11-02T11:00:00+00:00", "config": {...}}'

Prints the run's result as JSON; exits 0 when the run succeeded, 1 when it failed.
"""

from __future__ import annotations

import json
import logging
import sys
from datetime import datetime

from snapferry.manager.service import Manager, ManagerConfig
from tests.manager.sim import SimClock


def main(arg: str) -> int:
    spec = json.loads(arg)
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(message)s")
    mgr = Manager(ManagerConfig(**spec["config"]), clock=SimClock(datetime.fromisoformat(spec["now"])))
    try:
        res = mgr.run_once()
    finally:
        mgr.close()
    print(json.dumps({"ok": res.ok, "error": res.error, "steps": [s.name for s in res.steps if s.ok]}))
    return 0 if res.ok else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
