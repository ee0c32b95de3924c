"""The units in ``deploy/systemd/``: ``systemd-analyze verify`` accepts every one, every
service carries the hardening list, every timer starts a service that exists, and the
code runs in the sandbox the units ask for (NoNewPrivileges, MemoryDenyWriteExecute,
SystemCallFilter, RestrictAddressFamilies: applied by hand in a child, since systemd
cannot start units here) — the counter app on a pseudo-terminal too.

``systemd-analyze verify`` (Debian package ``systemd``, in scripts/install-system-deps.sh)
checks that each ``ExecStart=`` binary exists, so the units are copied to a temp dir with
``/opt/onecard/.venv/bin/`` pointed at this venv's scripts — that prefix of ``ExecStart=``
and nothing else.  It exits 0 on an unknown key or a bad value ("…, ignoring"), so a unit
passes only when it also prints nothing; the broken-unit tests prove the check fails.
"""

from __future__ import annotations

import fcntl
import os
import re
import select
import shutil
import struct
import subprocess
import sys
import termios
import textwrap
import time
from pathlib import Path

import pytest

UNITS = Path(__file__).resolve().parent.parent / "deploy" / "systemd"
INSTALLED = "/opt/onecard/.venv/bin/"
VENV_BIN = Path(sys.executable).parent
ANALYZE = shutil.which("systemd-analyze")
needs_analyze = pytest.mark.skipif(
    ANALYZE is None, reason="systemd-analyze missing: scripts/install-system-deps.sh")

#: every service's hardening: key -> the value it must have (None: any value, present)
HARDENING: dict[str, str | None] = {
    "User": "onecard",
    "NoNewPrivileges": "yes",
    "ProtectSystem": "strict",
    "PrivateTmp": "yes",
    "ProtectHome": "yes",
    "CapabilityBoundingSet": "",
    "SystemCallFilter": "@system-service",
    "LockPersonality": "yes",
    "MemoryDenyWriteExecute": "yes",
    "ProtectKernelTunables": "yes",
    "ProtectKernelModules": "yes",
    "ProtectKernelLogs": "yes",
    "ProtectControlGroups": "yes",
    "RestrictSUIDSGID": "yes",
    "UMask": "0077",
    "RestrictAddressFamilies": None,
}
FAMILIES = {"AF_UNIX", "AF_INET", "AF_INET6"}
#: what each unit runs (the backup and audit commands belong to other parts of onecard)
COMMANDS = {
    "onecard-central.service": "onecard-central serve",
    "onecard-sync.service": "onecard-edge sync",
    "onecard-counter@.service": "onecard-edge run",
    "onecard-central-backup.service": "onecard-central backup",
    "onecard-counter-backup.service": "onecard-edge backup",
    "onecard-central-audit.service": "onecard-central audit daily",
    "onecard-central-snapshot.service": "onecard-central snapshot",
}
#: (the snapshot reads central's store, which may be PostgreSQL over TCP)
NETWORKED = {"onecard-central.service", "onecard-sync.service",
             "onecard-central-snapshot.service"}


def parse(text: str) -> dict[str, list[tuple[str, str]]]:
    """A unit file's sections as ``(key, value)`` lists, in order (keys may repeat)."""
    sections: dict[str, list[tuple[str, str]]] = {}
    current: list[tuple[str, str]] | None = None
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line[0] in "#;":
            continue
        if line.startswith("[") and line.endswith("]"):
            current = sections.setdefault(line[1:-1], [])
            continue
        assert current is not None, f"a key outside any section: {line!r}"
        key, sep, value = line.partition("=")
        assert sep, f"not a key=value line: {line!r}"
        current.append((key.strip(), value.strip()))
    return sections


def values(unit: dict[str, list[tuple[str, str]]], section: str, key: str) -> list[str]:
    return [v for k, v in unit.get(section, []) if k == key]


def hardening_problems(name: str, text: str) -> list[str]:
    """What a service unit lacks of the hardening list (empty: none)."""
    unit = parse(text)
    out = []
    for key, want in HARDENING.items():
        got = values(unit, "Service", key)
        if not got:
            out.append(f"{name}: no {key}=")
        elif want is not None and got[-1] != want:
            out.append(f"{name}: {key}={got[-1]}, not {want!r}")
    if not (values(unit, "Service", "StateDirectory") or
            values(unit, "Service", "ReadWritePaths")):
        out.append(f"{name}: neither StateDirectory= nor ReadWritePaths=")
    families = set(" ".join(values(unit, "Service", "RestrictAddressFamilies")).split())
    if families - FAMILIES or "AF_UNIX" not in families:
        out.append(f"{name}: RestrictAddressFamilies={sorted(families)} (AF_UNIX, and at most "
                   f"{sorted(FAMILIES)})")
    return out


def installed_for_test(src: Path, dest: Path) -> list[Path]:
    """Copy every unit to ``dest`` with ExecStart= pointing at this venv; the paths to
    verify (a template as its ``tty1`` instance)."""
    dest.mkdir(parents=True, exist_ok=True)
    out = []
    for unit in sorted(src.iterdir()):
        text = unit.read_text()
        moved = "\n".join(line.replace(INSTALLED, f"{VENV_BIN}/", 1)
                          if line.startswith("ExecStart=") else line
                          for line in text.split("\n"))
        changed = [(a, b) for a, b in zip(text.split("\n"), moved.split("\n"), strict=True)
                   if a != b]
        assert all(a.startswith(f"ExecStart={INSTALLED}") for a, _ in changed), changed
        (dest / unit.name).write_text(moved)
        out.append(dest / unit.name.replace("@.", "@tty1."))
    return out


def verify(paths: list[Path]) -> tuple[int, str]:
    """``systemd-analyze verify``'s exit status and everything it printed."""
    assert ANALYZE is not None
    r = subprocess.run([ANALYZE, "verify", "--man=no", *map(str, paths)],
                       capture_output=True, text=True, timeout=60, cwd=paths[0].parent)
    return r.returncode, (r.stdout + r.stderr).strip()


def test_the_units_are_the_expected_set() -> None:
    names = {p.name for p in UNITS.iterdir()}
    services = {n for n in names if n.endswith(".service")}
    assert services == set(COMMANDS), services ^ set(COMMANDS)
    assert names - services == {"onecard-central-backup.timer", "onecard-counter-backup.timer",
                                "onecard-central-audit.timer", "onecard-central-snapshot.timer"}


@needs_analyze
def test_systemd_analyze_verify_accepts_every_unit(tmp_path: Path) -> None:
    for tool in ("onecard-central", "onecard-edge"):
        assert (VENV_BIN / tool).exists(), f"{tool} is not installed in {VENV_BIN}"
    paths = installed_for_test(UNITS, tmp_path)
    assert len(paths) == len(list(UNITS.iterdir()))
    code, said = verify(paths)
    assert (code, said) == (0, ""), said


@needs_analyze
@pytest.mark.parametrize("breakage, complaint", [
    (("NoNewPrivileges=yes", "NoNewPrivilegs=yes"), "Unknown key"),
    (("ProtectSystem=strict", "ProtectSystem=strictt"), "protect system"),
    (("[Service]", "[Servce]"), "Unknown section"),
    ((f"ExecStart={INSTALLED}onecard-central", f"ExecStart={INSTALLED}onecard-centra"),
     "not executable"),
])
def test_a_broken_unit_fails_the_check(tmp_path: Path, breakage: tuple[str, str],
                                       complaint: str) -> None:
    src = tmp_path / "src"
    src.mkdir()
    good = (UNITS / "onecard-central.service").read_text()
    assert breakage[0] in good
    (src / "onecard-central.service").write_text(good.replace(breakage[0], breakage[1], 1))
    code, said = verify(installed_for_test(src, tmp_path / "units"))
    assert (code, said) != (0, "")
    assert complaint.lower() in said.lower(), said


@needs_analyze
def test_a_broken_template_fails_through_its_instance(tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    good = (UNITS / "onecard-counter@.service").read_text()
    (src / "onecard-counter@.service").write_text(good.replace("TTYPath=", "TTYPth=", 1))
    said = verify(installed_for_test(src, tmp_path / "units"))[1]
    assert "Unknown key 'TTYPth'" in said


def test_every_service_is_hardened() -> None:
    problems = [p for unit in sorted(UNITS.glob("*.service"))
                for p in hardening_problems(unit.name, unit.read_text())]
    assert problems == []


def test_the_hardening_check_names_what_is_missing() -> None:
    good = (UNITS / "onecard-sync.service").read_text()
    assert hardening_problems("x", good) == []
    assert hardening_problems("x", good.replace("MemoryDenyWriteExecute=yes\n", "")) == [
        "x: no MemoryDenyWriteExecute="]
    assert hardening_problems("x", good.replace("ProtectSystem=strict", "ProtectSystem=full")) \
        == ["x: ProtectSystem=full, not 'strict'"]
    assert hardening_problems("x", good.replace("AF_INET6", "AF_PACKET")) == [
        "x: RestrictAddressFamilies=['AF_INET', 'AF_PACKET', 'AF_UNIX'] (AF_UNIX, and at most "
        "['AF_INET', 'AF_INET6', 'AF_UNIX'])"]
    bare = good.replace("StateDirectory=onecard\n", "")
    assert hardening_problems("x", bare) == ["x: neither StateDirectory= nor ReadWritePaths="]


def test_each_service_runs_its_command_with_its_config() -> None:
    for name, command in COMMANDS.items():
        unit = parse((UNITS / name).read_text())
        assert values(unit, "Service", "ExecStart") == [f"{INSTALLED}{command}"], name
        config = ("ONECARD_CENTRAL_CONFIG=/etc/onecard/central.toml"
                  if command.startswith("onecard-central") else
                  "ONECARD_EDGE_CONFIG=/etc/onecard/edge.toml")
        assert config in values(unit, "Service", "Environment"), name
        families = set(values(unit, "Service", "RestrictAddressFamilies")[0].split())
        assert ("AF_INET" in families) == (name in NETWORKED), (name, families)
        if name.endswith(("-backup.service", "-audit.service", "-snapshot.service")):
            assert values(unit, "Service", "Type") == ["oneshot"], name
            assert "Install" not in unit, f"{name} is started by its timer, not enabled"
        else:
            assert values(unit, "Service", "Restart") == ["always"], name
            assert values(unit, "Install", "WantedBy") == ["multi-user.target"], name


def test_every_timer_starts_a_service_that_exists() -> None:
    timers = sorted(UNITS.glob("*.timer"))
    assert timers
    for timer in timers:
        unit = parse(timer.read_text())
        target = (values(unit, "Timer", "Unit") or [timer.stem + ".service"])[0]
        assert (UNITS / target).exists(), f"{timer.name} starts {target}, which is not there"
        assert values(unit, "Timer", "OnCalendar"), timer.name
        assert values(unit, "Timer", "Persistent") == ["true"], timer.name
        assert values(unit, "Install", "WantedBy") == ["timers.target"], timer.name


def test_the_counter_app_is_on_a_tty_after_pcscd() -> None:
    unit = parse((UNITS / "onecard-counter@.service").read_text())
    assert values(unit, "Service", "TTYPath") == ["/dev/%I"]
    assert values(unit, "Service", "StandardInput") == ["tty"]
    # Textual draws on stderr: it must stay on the console (the default: like stdout)
    assert values(unit, "Service", "StandardOutput") == ["tty"]
    assert values(unit, "Service", "StandardError") == []
    for key in ("Wants", "After"):
        assert "pcscd.socket" in " ".join(values(unit, "Unit", key)).split(), key
    assert values(unit, "Unit", "Conflicts") == ["getty@%i.service"]
    # the console, a serial scanner and a USB printer are devices: nothing may close /dev
    for key in ("PrivateDevices", "ProtectClock", "DeviceAllow", "DevicePolicy"):
        assert values(unit, "Service", key) == [], key


# -- the units' sandbox, applied by hand -------------------------------------------------
# systemd cannot start units here, so the launcher below puts a process in what a unit's
# settings ask for, then execs the real code: NoNewPrivileges, MemoryDenyWriteExecute
# (the kernel's W^X lock, prctl(PR_SET_MDWE): what systemd >= 254 uses on Linux >= 6.3;
# older ones a seccomp filter refusing the same mappings), and a seccomp filter built
# with libseccomp from the unit's SystemCallFilter= (its groups expanded by
# `systemd-analyze syscall-filter`; others fail with SystemCallErrorNumber=EPERM) and
# RestrictAddressFamilies= (other families: EAFNOSUPPORT, as systemd does).  Before
# exec it proves the lock is on: a W+X mapping, an unlisted syscall (chroot) and, when
# not listed, an AF_INET socket are refused.
PR_SET_MDWE, PR_MDWE_REFUSE_EXEC_GAIN = 65, 1
SANDBOX = textwrap.dedent("""
    import ctypes, errno, fcntl, mmap, os, socket, sys, termios
    syscalls, families, tty = sys.argv[1].split(","), sys.argv[2].split(), sys.argv[3]
    seccomp = ctypes.CDLL("libseccomp.so.2", use_errno=True)
    seccomp.seccomp_init.restype = ctypes.c_void_p
    seccomp.seccomp_init.argtypes = [ctypes.c_uint32]
    seccomp.seccomp_syscall_resolve_name.argtypes = [ctypes.c_char_p]
    seccomp.seccomp_rule_add_array.argtypes = [ctypes.c_void_p, ctypes.c_uint32, ctypes.c_int,
                                               ctypes.c_uint, ctypes.c_void_p]
    seccomp.seccomp_load.argtypes = [ctypes.c_void_p]

    class Cmp(ctypes.Structure):  # struct scmp_arg_cmp
        _fields_ = [("arg", ctypes.c_uint), ("op", ctypes.c_int), ("a", ctypes.c_uint64),
                    ("b", ctypes.c_uint64)]

    ALLOW, EQ = 0x7FFF0000, 4
    def fail(e):
        return 0x00050000 | e
    def rule(action, nr, *cmp):
        arg = Cmp(*cmp[0]) if cmp else None
        assert seccomp.seccomp_rule_add_array(ctx, action, nr, len(cmp),
                                              ctypes.byref(arg) if arg else None) == 0

    ctx = seccomp.seccomp_init(fail(errno.EPERM))
    sock = seccomp.seccomp_syscall_resolve_name(b"socket")
    for name in syscalls:
        nr = seccomp.seccomp_syscall_resolve_name(name.encode())
        if nr >= 0 and name != "socket":
            rule(ALLOW, nr)
    allowed = {getattr(socket, f) for f in families}
    for family in range(64):
        rule(ALLOW if family in allowed else fail(errno.EAFNOSUPPORT), sock, (0, EQ, family, 0))
    libc = ctypes.CDLL(None, use_errno=True)
    assert libc.prctl(38, 1, 0, 0, 0) == 0  # PR_SET_NO_NEW_PRIVS
    assert libc.prctl(65, 1, 0, 0, 0) == 0, ctypes.get_errno()  # PR_SET_MDWE
    assert seccomp.seccomp_load(ctx) == 0, ctypes.get_errno()

    try:
        mmap.mmap(-1, 4096, prot=mmap.PROT_READ | mmap.PROT_WRITE | mmap.PROT_EXEC)
        sys.exit("a W+X mapping was allowed")
    except PermissionError:
        pass
    try:
        os.chroot("/")
        sys.exit("chroot was allowed")
    except PermissionError:
        pass
    if "AF_INET" not in families:
        try:
            socket.socket(socket.AF_INET)
            sys.exit("an AF_INET socket was allowed")
        except OSError as exc:
            assert exc.errno == errno.EAFNOSUPPORT, exc
    if tty == "tty":
        fcntl.ioctl(0, termios.TIOCSCTTY, 0)  # the console is its controlling terminal
    os.execv(sys.argv[4], sys.argv[4:])
""")

CHILD = textwrap.dedent("""
    import asyncio, sys
    from pathlib import Path
    from websockets.asyncio.client import connect
    from websockets.asyncio.server import serve
    from central.store import CentralStore
    from edge_node import staff
    from tests.conftest import node_key
    from tests.tui_harness import (NODE, home, log_in, make_app, make_config, open_ledger,
                                   seed_patient, tap)

    async def main(tmp):
        config = make_config(tmp)
        ledger = await open_ledger(config)
        await staff.add_staff(ledger, "wang", "王丽", "1234", now_ms=1)  # real Argon2id
        await seed_patient(ledger)
        assert (await ledger.verify()).ok
        app = make_app(config, ledger)
        async with app.run_test(size=(80, 25)) as pilot:
            await log_in(pilot)
            await tap(pilot, "8600000001")
            shown = home(pilot).view.patient.name
        print("counter", shown, flush=True)
        store = await CentralStore.open(tmp / "central.sqlite3")
        await store.enrol(NODE, node_key(NODE).public_key, "cashier")
        own = await ledger.own_events_after(0)
        got = await store.ingest(NODE, own)
        await store.close()
        await ledger.close()

        async def echo(ws):
            async for m in ws:
                await ws.send(m)
        async with serve(echo, "127.0.0.1", 0) as server:
            port = server.sockets[0].getsockname()[1]
            async with connect(f"ws://127.0.0.1:{port}") as ws:
                await ws.send(b"onecard")
                assert await ws.recv() == b"onecard"
        print("stored", got.stored)

    asyncio.run(main(Path(sys.argv[1])))
""")


def _expand(group: str, seen: set[str]) -> set[str]:
    """The syscalls of a SystemCallFilter= group, as this systemd defines it."""
    assert ANALYZE is not None
    text = subprocess.run([ANALYZE, "syscall-filter", group], capture_output=True, text=True,
                          timeout=60, check=True).stdout
    out: set[str] = set()
    for line in text.splitlines()[1:]:
        word = line.strip()
        if word.startswith("@") and word not in seen:
            seen.add(word)
            out |= _expand(word, seen)
        elif word and word[0] not in "#@":
            out.add(word)
    return out


def sandboxed(unit_name: str, argv: list[str], tty: bool = False) -> list[str]:
    """``argv`` run in the sandbox ``unit_name``'s settings ask for."""
    unit = parse((UNITS / unit_name).read_text())
    for key in ("NoNewPrivileges", "MemoryDenyWriteExecute"):
        assert values(unit, "Service", key) == ["yes"], (unit_name, key)
    assert values(unit, "Service", "SystemCallErrorNumber") == ["EPERM"], unit_name
    syscalls: set[str] = set()
    for group in " ".join(values(unit, "Service", "SystemCallFilter")).split():
        syscalls |= _expand(group, {group}) if group.startswith("@") else {group}
    families = " ".join(values(unit, "Service", "RestrictAddressFamilies"))
    return [sys.executable, "-c", SANDBOX, ",".join(sorted(syscalls)), families,
            "tty" if tty else "-", *argv]


def _sandbox_works() -> str:
    """Why the sandbox cannot be applied here ("" when it can)."""
    if not sys.platform.startswith("linux"):
        return "Linux only"
    if ANALYZE is None:
        return "systemd-analyze missing: scripts/install-system-deps.sh"
    r = subprocess.run([sys.executable, "-c", "import ctypes,sys; "
                        "ctypes.CDLL('libseccomp.so.2'); "
                        f"sys.exit(ctypes.CDLL(None).prctl({PR_SET_MDWE}, "
                        f"{PR_MDWE_REFUSE_EXEC_GAIN}, 0, 0, 0) != 0)"], timeout=30)
    return "" if r.returncode == 0 else "no libseccomp, or no PR_SET_MDWE (Linux < 6.3)"


SANDBOX_MISSING = _sandbox_works()
needs_sandbox = pytest.mark.skipif(bool(SANDBOX_MISSING), reason=SANDBOX_MISSING)


@needs_sandbox
@pytest.mark.parametrize("unit_name", ["onecard-central.service", "onecard-sync.service"])
def test_the_code_runs_in_a_networked_units_sandbox(tmp_path: Path, unit_name: str) -> None:
    """PyNaCl (cffi) signs and verifies, argon2-cffi hashes a PIN, SQLite ledgers and
    central's store, a websockets round trip (and the counter app logged in under Pilot)."""
    env = {**os.environ, "PYTHONPATH": str(UNITS.parent.parent)}
    r = subprocess.run(sandboxed(unit_name, [sys.executable, "-c", CHILD, str(tmp_path)]),
                       capture_output=True, text=True, timeout=300, env=env,
                       cwd=UNITS.parent.parent)
    assert r.returncode == 0, r.stderr[-3000:]
    # the registration's three events (patient, card, first deposit) and the trail of the
    # login and the record opened by the tap stored at central, and the tapped card's
    # patient on the counter's screen
    assert r.stdout.split() == ["counter", "张三", "stored", "5"], r.stdout


@needs_sandbox
def test_the_counter_app_runs_in_its_sandbox_which_refuses_the_network(tmp_path: Path) -> None:
    """The same work in the counter app's sandbox (AF_UNIX only): the app logs in and shows
    the patient; the websockets server finds no socket it may open."""
    env = {**os.environ, "PYTHONPATH": str(UNITS.parent.parent)}
    r = subprocess.run(sandboxed("onecard-counter@.service",
                                 [sys.executable, "-c", CHILD, str(tmp_path)]),
                       capture_output=True, text=True, timeout=300, env=env,
                       cwd=UNITS.parent.parent)
    assert r.stdout.split() == ["counter", "张三"], (r.stdout, r.stderr[-2000:])
    assert r.returncode != 0


def enabled_in(doc: Path) -> set[str]:
    """The unit files a document's ``systemctl enable`` lines name."""
    out = set()
    for line in doc.read_text().splitlines():
        if "systemctl enable" not in line:
            continue
        for word in (w.strip("`|,;") for w in line.split("systemctl enable", 1)[1].split()):
            if word.startswith("onecard-"):
                name = word if word.endswith((".service", ".timer")) else f"{word}.service"
                out.add(name.replace("@tty1.", "@."))
    return out


def test_the_readme_and_the_deployment_guide_enable_every_unit_there_is() -> None:
    root = UNITS.parent.parent
    started_by_timers = {t.stem + ".service" for t in UNITS.glob("*.timer")}
    wanted = {p.name for p in UNITS.iterdir()} - started_by_timers
    for doc in (root / "README.md", root / "docs" / "deployment.md"):
        named = enabled_in(doc)
        assert named <= {p.name for p in UNITS.iterdir()}, (doc.name, named)
        assert wanted <= named, (doc.name, wanted - named)


# -- the counter app on a terminal, as onecard-counter@.service runs it ----------------
# The unit hands the app a console as stdin, stdout and stderr (its controlling tty),
# TERM=linux, 80x25.  Here a pseudo-terminal stands in for /dev/tty1, and the app runs
# in its unit's sandbox (AF_UNIX only).
ANSI = re.compile(r"\x1b(\[[0-9;?]*[ -/]*[@-~]|[()][0-9A-Za-z]|[=>78DEHMNOc])")


class Console:
    """The master side of a pseudo-terminal: what the app draws, as text."""

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self.seen = ""

    def type(self, data: str) -> None:
        self.seen = ""
        os.write(self.fd, data.encode())

    def until(self, text: str, timeout: float = 30) -> None:
        """Read what the app draws until ``text`` shows, within ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        while text not in ANSI.sub("", self.seen):
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([self.fd], [], [], left)[0]:
                raise AssertionError(f"{text!r} not on screen: {ANSI.sub('', self.seen)[-600:]!r}")
            try:
                self.seen += os.read(self.fd, 65536).decode("utf-8", "replace")
            except OSError as exc:  # EIO: the app closed the terminal
                raise AssertionError(f"the app left before showing {text!r}") from exc


@needs_sandbox
def test_the_counter_app_works_on_a_console_in_its_units_sandbox(tmp_path: Path) -> None:
    root = UNITS.parent.parent
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(root), "LANG": "C.UTF-8",
           "ONECARD_EDGE_CONFIG": str(tmp_path / "edge.toml")}
    edge = str(VENV_BIN / "onecard-edge")
    for argv, stdin in (([edge, "init", "cashier-01", "--language", "en", "--data-dir",
                          str(tmp_path)], ""),
                        ([edge, "staff", "add", "wang", "王丽", "--pin-stdin"], "1234\n")):
        r = subprocess.run(argv, input=stdin, capture_output=True, text=True, timeout=60,
                           env=env, cwd=tmp_path)
        assert r.returncode == 0, r.stderr
    master, slave = os.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 25, 80, 0, 0))
    app = subprocess.Popen(sandboxed("onecard-counter@.service", [edge, "run"], tty=True),
                           stdin=slave,
                           stdout=slave, stderr=slave, env={**env, "TERM": "linux"},
                           cwd=tmp_path, start_new_session=True)
    os.close(slave)
    console = Console(master)
    try:
        console.until("Operator login")
        console.type("wang")  # keys from the console reach the staff id field
        console.until("wang")
        # (logging in is test_the_code_runs_in_a_networked_units_sandbox's, under Pilot:
        # Enter moves the focus through a message, so keys typed on a terminal race it)
        console.type("\x11")  # Ctrl+Q asks first
        console.until("Quit the counter app?")
        console.type("y")
        assert app.wait(timeout=30) == 0
    finally:
        if app.poll() is None:
            app.kill()
            app.wait(timeout=30)
        os.close(master)
