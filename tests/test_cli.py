"""``onecard-edge``: init, info, verify, rebuild, balance, history, export — as staff run it."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from edge_node import cli
from edge_node import config as cfgmod
from edge_node.ledger import Ledger
from edge_node.service import CounterService
from tests.conftest import ID_MALE, item


def run(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "edge_node.cli", *args], cwd=cwd,
                          capture_output=True, text=True, timeout=60,
                          env={**os.environ, "PYTHONPATH": str(Path(__file__).parents[1])})


@pytest.fixture
def counter(tmp_path: Path) -> Path:
    out = run("--config", "c.toml", "init", "cashier-07", "--role", "cashier", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert "fingerprint ed25519:" in out.stdout and "onecard-central enrol cashier-07" in out.stdout
    return tmp_path / "c.toml"


def test_init_writes_config_and_a_private_key(counter: Path) -> None:
    cfg = cfgmod.load(counter)
    assert cfg.node_id == "cashier-07" and cfg.db.parent == counter.parent
    assert cfg.key_file.stat().st_mode & 0o777 == 0o600
    again = run("--config", str(counter), "init", "cashier-07", cwd=counter.parent)
    assert again.returncode == 1 and "already exists" in again.stderr


def test_key_readable_by_others_is_refused(counter: Path) -> None:
    cfg = cfgmod.load(counter)
    cfg.key_file.chmod(0o644)
    out = run("--config", str(counter), "info", cwd=counter.parent)
    assert out.returncode == 1 and "chmod 600" in out.stderr


async def seed(counter: Path) -> None:
    cfg = cfgmod.load(counter)
    async with await Ledger.open(cfg.db, cfg.node_id, cfg.load_key()) as led:
        svc = CounterService(led, "op.li")
        await svc.register_patient(name="张三", national_id=ID_MALE, phone="13800138000",
                                   card_no="8600000001", first_deposit=10_000)
        await svc.charge("8600000001", [item(2500)], "检验科")


def test_inspection_commands(counter: Path, capsys: pytest.CaptureFixture[str]) -> None:
    asyncio.run(seed(counter))
    c = ["--config", str(counter)]
    assert cli.main([*c, "info"]) == 0
    assert "4 events, own head seq 4" in capsys.readouterr().out
    assert cli.main([*c, "verify"]) == 0
    assert "verified: 4 events" in capsys.readouterr().out
    assert cli.main([*c, "balance", "8600000001"]) == 0
    assert "balance ¥75.00" in capsys.readouterr().out
    assert cli.main([*c, "history", "8600000001"]) == 0
    assert "account.charged ¥25.00" in capsys.readouterr().out
    assert cli.main([*c, "rebuild"]) == 0
    assert "from 4 events" in capsys.readouterr().out
    assert cli.main([*c, "export"]) == 0
    lines = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
    assert [x["seq"] for x in lines] == [1, 2, 3, 4]
    assert lines[0]["body"]["national_id"] == "110101********0011"  # masked by default
    assert cli.main([*c, "balance", "0000000000"]) == 1
    assert "not known" in capsys.readouterr().err


def test_verify_exits_nonzero_on_tampering(counter: Path) -> None:
    asyncio.run(seed(counter))
    import sqlite3
    cfg = cfgmod.load(counter)
    con = sqlite3.connect(cfg.db)
    con.execute("UPDATE events SET data = data || x'00' WHERE seq = 2")
    con.commit()
    out = run("--config", str(counter), "verify", cwd=counter.parent)
    assert out.returncode == 1 and "BROKEN at cashier-07 seq 2" in out.stdout


def test_missing_or_bad_config_is_a_clear_message(tmp_path: Path) -> None:
    out = run("--config", "nope.toml", "info", cwd=tmp_path)
    assert out.returncode == 1 and "run `onecard-edge init` first" in out.stderr
    (tmp_path / "bad.toml").write_text('node_id = "x"\ncolour = "red"\n')
    out = run("--config", "bad.toml", "info", cwd=tmp_path)
    assert out.returncode == 1 and "unknown config key(s): colour" in out.stderr


def test_every_subcommand_has_help() -> None:
    parser = cli.build_parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    for name, p in sub.choices.items():  # type: ignore[union-attr]
        helps = [a.help for a in sub._choices_actions if a.dest == name]  # type: ignore[attr-defined]
        assert helps and helps[0], f"{name} has no help text"
        assert p.format_help()
