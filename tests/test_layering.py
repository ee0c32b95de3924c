"""protocol/ is pure: importing it loads no storage, network, terminal or card library."""

from __future__ import annotations

import json
import subprocess
import sys

FORBIDDEN = ["aiosqlite", "sqlite3", "_sqlite3", "websockets", "textual", "smartcard", "asyncpg"]


def test_importing_protocol_loads_no_io_library() -> None:
    code = (
        "import json, pkgutil, importlib, sys\n"
        "import protocol\n"
        "for m in pkgutil.walk_packages(protocol.__path__, 'protocol.'):\n"
        "    importlib.import_module(m.name)\n"
        f"print(json.dumps([m for m in {FORBIDDEN!r} if m in sys.modules]))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True)
    assert json.loads(out.stdout) == []


def test_the_check_would_notice_a_leak() -> None:
    """The subprocess probe really sees modules that a protocol import would pull in."""
    out = subprocess.run([sys.executable, "-c", "import sys, edge_node.ledger; "
                          "print('aiosqlite' in sys.modules)"], capture_output=True, text=True,
                         check=True)
    assert out.stdout.strip() == "True"
