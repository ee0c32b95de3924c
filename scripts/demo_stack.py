"""`make demo`: a local central (SQLite), one counter's sync daemon and the counter app.

Everything lives in a temporary directory removed on exit.  Central and the sync daemon
run as real processes on 127.0.0.1 (their logs go to ``central.log`` / ``sync.log`` in
that directory); the counter app runs in this terminal with a simulated card reader.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import re
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

BIN = Path(sys.executable).parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_healthy(port: int, proc: subprocess.Popen[bytes], timeout: float = 15) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit("central stopped while starting: see central.log")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1) as r:
                if r.status == 200:
                    return
        except OSError:
            time.sleep(0.1)
    raise SystemExit(f"central did not answer /healthz within {timeout:.0f} s")


def run(*args: str) -> str:
    out = subprocess.run(args, capture_output=True, text=True, timeout=60)
    if out.returncode != 0:
        raise SystemExit(f"{' '.join(args[:3])} failed: {out.stderr.strip()}")
    return out.stdout


def stop(proc: subprocess.Popen[bytes] | None) -> None:
    if proc is None or proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(5)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(5)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--language", choices=("zh", "en"), default="zh")
    args = ap.parse_args()
    from edge_node import config as cfgmod
    from edge_node.demo import NODE, build

    with tempfile.TemporaryDirectory(prefix="onecard-demo-") as tmp:
        base = Path(tmp)
        port = free_port()
        ccfg = base / "central" / "central.toml"
        out = run(str(BIN / "onecard-central"), "--config", str(ccfg), "init",
                  "--dir", str(base / "central"), "--port", str(port))
        central_key = re.search(r"central key\s+([0-9a-f]{64})", out)
        if central_key is None:
            raise SystemExit(f"could not read central's key from init:\n{out}")
        central = sync = None
        try:
            with open(base / "central.log", "wb") as log:
                central = subprocess.Popen(
                    [str(BIN / "onecard-central"), "--config", str(ccfg), "serve",
                     "--port", str(port)], stdout=log, stderr=subprocess.STDOUT)
            wait_healthy(port, central)
            config, app = build(base / "counter", args.language)
            config = dataclasses.replace(config, sync=cfgmod.SyncConfig(
                f"ws://127.0.0.1:{port}/sync", central_key.group(1)))
            counter_cfg = base / "counter" / "onecard-edge.toml"
            counter_cfg.write_text(cfgmod.render(config), encoding="utf-8")
            pub = config.load_key().public_key.hex()
            run(str(BIN / "onecard-central"), "--config", str(ccfg), "enrol", NODE,
                "--key", pub, "--role", "cashier")
            with open(base / "sync.log", "wb") as log:
                sync = subprocess.Popen(
                    [str(BIN / "onecard-edge"), "--config", str(counter_cfg), "sync"],
                    stdout=log, stderr=subprocess.STDOUT, env={**os.environ})
            print(f"central on 127.0.0.1:{port}, sync daemon running; files in {base}",
                  file=sys.stderr)
            print("login: demo / 1234   Ctrl+T: tap a demo card   Ctrl+Q: quit",
                  file=sys.stderr)
            app.run()
        finally:
            stop(sync)
            stop(central)
    return 0


if __name__ == "__main__":
    sys.exit(main())
