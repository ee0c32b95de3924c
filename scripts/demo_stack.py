"""`make demo`: central, a cashier and a pharmacy counter, an offline double spend, the app.

The pieces live in :mod:`edge_node.demo`.  Here the demo's directory is ``.demo/`` in
this checkout, so that ``make console`` (in another terminal) opens central's IT console
on it; it is removed when the app quits.  One demo at a time per checkout.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
DEMO_DIR = REPO / ".demo"


def _running(pid_file: Path) -> int:
    """The pid of a demo still running in this checkout, else 0."""
    try:
        pid = int(pid_file.read_text().strip())
        os.kill(pid, 0)
    except (OSError, ValueError):
        return 0
    return pid


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--language", choices=("zh", "en"), default="zh")
    ap.add_argument("--desk", choices=("cashier", "triage", "doctor", "kiosk", "lab",
                                       "pharmacy"),
                    default="cashier", help="the desk to open (its own counter)")
    args = ap.parse_args()
    from edge_node.demo import run_demo

    pid_file = DEMO_DIR / "demo.pid"
    if pid := _running(pid_file):
        print(f"a demo is already running in this checkout (pid {pid}); quit it first",
              file=sys.stderr)
        return 1
    shutil.rmtree(DEMO_DIR, ignore_errors=True)  # what a killed demo left behind
    DEMO_DIR.mkdir()
    pid_file.write_text(f"{os.getpid()}\n")
    try:
        return run_demo(DEMO_DIR, args.language, "make console", args.desk)
    finally:
        shutil.rmtree(DEMO_DIR, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
