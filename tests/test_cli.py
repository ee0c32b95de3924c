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
from tests.conftest import ID_MALE, TEST_PATIENT_KEYS, item


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
    out = capsys.readouterr().out
    assert "4 events, own head seq 4" in out
    assert f"patient keys {TEST_PATIENT_KEYS.key_id}: data key" in out
    assert cli.main([*c, "verify"]) == 0
    assert "verified: 4 events" in capsys.readouterr().out
    assert cli.main([*c, "balance", "8600000001"]) == 0
    assert "balance ¥75.00" in capsys.readouterr().out
    assert cli.main([*c, "history", "8600000001"]) == 0
    assert "account.charged -¥25.00  C-" in capsys.readouterr().out  # its effect, then what
    assert cli.main([*c, "rebuild"]) == 0
    assert "from 4 events" in capsys.readouterr().out
    assert cli.main([*c, "export"]) == 0
    lines = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
    assert [x["seq"] for x in lines] == [1, 2, 3, 4]
    sealed = lines[0]["body"]["national_id"]  # sealed by default: nothing in clear
    assert sealed.startswith("sb1:") and "0011" not in sealed
    assert cli.main([*c, "export", "--full"]) == 0  # opened where this counter may
    lines = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
    assert lines[0]["body"]["national_id"] == "110101199003070011"
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


def test_staff_subcommands_have_help() -> None:
    parser = cli.build_parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    staff = sub.choices["staff"]  # type: ignore[index]
    actions = next(a for a in staff._actions if a.dest == "staff_command")
    assert set(actions.choices) == {"add", "list", "disable"}  # type: ignore[arg-type]
    for name in actions.choices:  # type: ignore[union-attr]
        helps = [a.help for a in actions._choices_actions if a.dest == name]  # type: ignore[attr-defined]
        assert helps and helps[0], f"staff {name} has no help text"


def test_staff_add_list_disable_and_login(counter: Path) -> None:
    from edge_node import staff

    def staff_cmd(*args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "edge_node.cli", "--config", str(counter),
                               "staff", *args], cwd=counter.parent, input=stdin,
                              capture_output=True, text=True, timeout=60,
                              env={**os.environ, "PYTHONPATH": str(Path(__file__).parents[1])})

    out = staff_cmd("add", "wang.li", "王丽", "--role", "supervisor", "--pin-stdin",
                    stdin="246810\n")
    assert out.returncode == 0 and "wang.li" in out.stdout, out.stderr
    again = staff_cmd("add", "wang.li", "王丽", "--pin-stdin", stdin="246810\n")
    assert again.returncode == 1 and "already exists" in again.stderr
    weak = staff_cmd("add", "zhao", "赵", "--pin-stdin", stdin="12\n")
    assert weak.returncode == 1 and "4 to 12 digits" in weak.stderr
    listed = staff_cmd("list")
    assert "wang.li" in listed.stdout and "supervisor" in listed.stdout

    async def login() -> str:
        cfg = cfgmod.load(counter)
        async with await Ledger.open(cfg.db, cfg.node_id, cfg.load_key()) as led:
            return (await staff.login(led, "wang.li", "246810")).role
    assert asyncio.run(login()) == "supervisor"
    assert staff_cmd("disable", "wang.li").returncode == 0
    assert "wang.li" not in staff_cmd("list").stdout
    assert staff_cmd("disable", "nobody").returncode == 1
    with pytest.raises(staff.LoginRefused):
        asyncio.run(login())


def test_reader_config_defaults_checks_and_round_trip(tmp_path: Path) -> None:
    assert cfgmod.from_dict({"node_id": "c-1"}).reader == cfgmod.ReaderConfig("none", "", "")
    cfg = cfgmod.from_dict({"node_id": "c-1", "reader": {"kind": "pcsc",
                                                         "name": "ACS ACR1252 00 00"}})
    assert (cfg.reader.kind, cfg.reader.name) == ("pcsc", "ACS ACR1252 00 00")
    wedge = cfgmod.from_dict({"node_id": "c-1", "reader": {
        "kind": "wedge", "device": "/dev/serial/by-id/usb-scanner"}}).reader.make()
    assert (wedge.name, wedge.device) == ("Keyboard wedge", "/dev/serial/by-id/usb-scanner")
    for bad, words in (({"kind": "nfc"}, "kind must be one of"),
                       ({"kind": "pcsc"}, "needs name"),
                       ({"port": "x"}, "[reader] takes only"),
                       ({"kind": 3}, "values are strings")):
        with pytest.raises(cfgmod.ConfigError, match=words.replace("[", r"\[")):
            cfgmod.from_dict({"node_id": "c-1", "reader": bad})
    path = tmp_path / "c.toml"
    path.write_text(cfgmod.render(cfg), encoding="utf-8")
    assert cfgmod.load(path).reader == cfg.reader


def test_several_central_urls_checks_and_round_trip(tmp_path: Path) -> None:
    """``[sync] central_urls``: the instances a counter fails over between."""
    assert cfgmod.from_dict({"node_id": "c-1"}).sync.urls == ("ws://127.0.0.1:8765/sync",)
    urls = ["wss://central-a:8765/sync", "wss://central-b:8765/sync"]
    cfg = cfgmod.from_dict({"node_id": "c-1", "sync": {"central_urls": urls,
                                                       "tls_pin": "sha256:" + "ab" * 32}})
    assert cfg.sync.urls == tuple(urls) and cfg.sync.tls
    for bad, words in (({"central_urls": "wss://a/sync"}, "must be a list of URLs"),
                       ({"central_urls": ["", "ws://b/sync"]}, "must be a list of URLs"),
                       ({"central_urls": ["ws://a/sync", "wss://b/sync"]}, "all wss://"),
                       ({"central_urls": ["ws://a/sync"], "tls_pin": "sha256:" + "ab" * 32},
                        "need central_url")):
        with pytest.raises(cfgmod.ConfigError, match=words):
            cfgmod.from_dict({"node_id": "c-1", "sync": bad})
    path = tmp_path / "c.toml"
    path.write_text(cfgmod.render(cfg), encoding="utf-8")
    assert cfgmod.load(path).sync == cfg.sync


def test_run_passes_the_configured_reader(counter: Path,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    from edge_node.card.reader import SimulatedReader
    from edge_node.card.wedge import WedgeReader
    from edge_node.tui import app

    seen: list[object] = []
    monkeypatch.setattr(app, "run", lambda cfg, reader=None: seen.append(reader))
    text = counter.read_text(encoding="utf-8")
    for kind, cls in (("simulated", SimulatedReader), ("wedge", WedgeReader),
                      ("none", type(None))):
        counter.write_text(text.replace('kind = "none"', f'kind = "{kind}"'), encoding="utf-8")
        assert cli.main(["--config", str(counter), "run"]) == 0
        assert isinstance(seen[-1], cls), (kind, seen[-1])
    counter.write_text(text.replace('kind = "none"', 'kind = "pcsc"').replace(
        'name = ""', 'name = "OneCard Test 00 00"'), encoding="utf-8")
    assert cli.main(["--config", str(counter), "run"]) == 0
    assert type(seen[-1]).__name__ == "PcscReader"
    assert seen[-1].name == "OneCard Test 00 00"  # type: ignore[attr-defined]


# -- human times, order, last sync error; no traceback whatever happens ---------------------

T0 = 1_790_000_000_000  # 2026-09-21 22:13:20 in Asia/Shanghai (14:13:20 UTC)


async def seed_two_counters(counter: Path) -> None:
    """This counter registers 张三 and charges ¥20.00 at T0+2 s; another counter, which
    synced the registration, charged ¥10.00 at T0+1 s and reaches this one afterwards:
    stored last, it happened in between."""
    from protocol.crypto import SigningKey

    cfg = cfgmod.load(counter)
    other_key = SigningKey(b"o" * 32)
    now = {"ms": T0}
    async with await Ledger.open(cfg.db, cfg.node_id, cfg.load_key(),
                                 clock=lambda: now["ms"]) as here:
        await CounterService(here, "op.li").register_patient(
            name="张三", national_id=ID_MALE, phone="13800138000", card_no="8600000001",
            first_deposit=10_000)
        async with await Ledger.open(counter.parent / "other.sqlite3", "cashier-08", other_key,
                                     clock=lambda: T0 + 1_000) as other:
            await other.set_node_keys({cfg.node_id: (cfg.load_key().public_key, "cashier")})
            await other.ingest(await here.own_events_after(0))
            await CounterService(other, "op.zhao").charge("8600000001", [item(1000)], "检验科")
            now["ms"] = T0 + 2_000
            await CounterService(here, "op.li").charge("8600000001", [item(2000)], "检验科")
            await here.set_node_keys({"cashier-08": (other_key.public_key, "cashier")})
            assert await here.ingest(await other.own_events_after(0)) == 1


def test_history_prints_local_times_in_the_order_things_happened(counter: Path) -> None:
    asyncio.run(seed_two_counters(counter))
    out = run("--config", str(counter), "history", "8600000001", cwd=counter.parent)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert [line.split()[2] for line in lines] == [
        "cashier-07#1", "cashier-07#2", "cashier-07#3", "cashier-08#1", "cashier-07#4"]
    assert lines[0].startswith("2026-09-21 22:13:20  cashier-07#1")
    assert lines[3].startswith("2026-09-21 22:13:21  cashier-08#1  op.zhao")
    assert "-¥10.00" in lines[3] and "-¥20.00" in lines[4]
    last = run("--config", str(counter), "history", "8600000001", "--limit", "2",
               cwd=counter.parent).stdout.splitlines()
    assert [line.split()[2] for line in last] == ["cashier-08#1", "cashier-07#4"]
    counter.write_text(counter.read_text().replace('"Asia/Shanghai"', '"UTC"'))
    utc = run("--config", str(counter), "history", "8600000001", cwd=counter.parent)
    assert utc.stdout.startswith("2026-09-21 14:13:20  cashier-07#1")


def test_info_shows_the_last_sync_in_local_time_and_the_last_sync_error(counter: Path) -> None:
    """The sync daemon's own failure path records the error; `info` prints it."""
    import socket

    from edge_node.sync.daemon import SyncClient, SyncOptions

    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]

    async def fail_once() -> None:
        cfg = cfgmod.load(counter)
        async with await Ledger.open(cfg.db, cfg.node_id, cfg.load_key()) as led:
            await led.update_sync_state(last_sync_ms=T0)
            stop = asyncio.Event()
            client = SyncClient(led, cfg.load_key(), f"ws://127.0.0.1:{port}/sync", b"\0" * 32,
                                SyncOptions(backoff_base_s=0.01, backoff_max_s=0.05))
            task = asyncio.create_task(client.run(stop))
            async with asyncio.timeout(30):
                while not (await led.sync_state()).last_error:
                    await asyncio.sleep(0.01)
            stop.set()
            await task

    asyncio.run(fail_once())
    out = run("--config", str(counter), "info", cwd=counter.parent)
    assert out.returncode == 0, out.stderr
    assert "last sync 2026-09-21 22:13:20 (Asia/Shanghai)" in out.stdout
    assert "signatures  every received event's own signature checked" in out.stdout
    error = next(x for x in out.stdout.splitlines() if x.startswith("last error"))
    assert "link:" in error and "Connect" in error, error
    assert str(T0) not in out.stdout  # no epoch milliseconds


def test_staff_add_without_a_terminal_says_how_to_give_the_pin(counter: Path) -> None:
    out = subprocess.run([sys.executable, "-m", "edge_node.cli", "--config", str(counter),
                          "staff", "add", "wang.li", "王丽"], cwd=counter.parent,
                         stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=60,
                         env={**os.environ, "PYTHONPATH": str(Path(__file__).parents[1])})
    assert out.returncode == 2
    assert "--pin-stdin" in out.stderr and "Traceback" not in out.stderr
    assert len(out.stderr.strip().splitlines()) == 1


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(Path(__file__).parents[1])}


def test_export_into_a_pipe_closed_early_exits_quietly(counter: Path) -> None:
    asyncio.run(seed(counter))

    async def more() -> None:  # well past a pipe's buffer (64 KiB) of JSON lines
        cfg = cfgmod.load(counter)
        async with await Ledger.open(cfg.db, cfg.node_id, cfg.load_key()) as led:
            svc = CounterService(led, "op.li")
            for _ in range(250):
                await svc.charge("8600000001", [item(10)], "检验科")
    asyncio.run(more())
    cmd = [sys.executable, "-m", "edge_node.cli", "--config", str(counter), "export"]
    # `export | head -1`: the reader takes one line and goes away
    p = subprocess.Popen(cmd, cwd=counter.parent, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, env=_env())
    assert p.stdout is not None and p.stderr is not None
    assert json.loads(p.stdout.readline())["seq"] == 1
    p.stdout.close()
    err = p.stderr.read().decode()
    assert p.wait(timeout=60) != 0 and err == ""
    # a pipe whose reader is gone before the first write
    r, w = os.pipe()
    os.close(r)
    try:
        out = subprocess.run(cmd, cwd=counter.parent, stdout=w, stderr=subprocess.PIPE,
                             text=True, timeout=60, env=_env())
    finally:
        os.close(w)
    assert out.stderr == "" and out.returncode != 0


@pytest.mark.parametrize("command", [
    ["info"], ["verify"], ["rebuild"], ["export"], ["balance", "8600000001"],
    ["history", "8600000001"], ["sync"], ["run"], ["staff", "list"],
    ["staff", "disable", "x"], ["staff", "add", "x", "X", "--pin-stdin"]])
@pytest.mark.parametrize("config", ["missing", "directory", "not toml", "binary",
                                    "bad timezone", "bad db path", "damaged ledger"])
def test_no_traceback_for_a_missing_or_damaged_config(
        counter: Path, command: list[str], config: str,
        capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "stdin", open(os.devnull))  # noqa: SIM115
    path = counter.parent / "bad.toml"
    good = counter.read_text()
    if config == "directory":
        path.mkdir()
    elif config == "not toml":
        path.write_text("node_id = [\n")
    elif config == "binary":
        path.write_bytes(b"\xff\xfe\x00")
    elif config == "bad timezone":
        path.write_text(good.replace('"Asia/Shanghai"', '"Mars/Olympus"'))
    elif config == "bad db path":
        path.write_text(good.replace('db = "', 'db = 7 # "'))
    elif config == "damaged ledger":
        (counter.parent / "junk.sqlite3").write_bytes(b"not a database at all" * 200)
        text = "\n".join('db = "junk.sqlite3"' if x.startswith("db = ") else x
                         for x in good.splitlines())
        path.write_text(text)
    status = cli.main(["--config", str(path), *command])
    err = capsys.readouterr().err
    assert status != 0
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err, err
