"""The real PC/SC reader stack for tests and benchmarks: pcscd + vpcd, 127.0.0.1 only.

Theory of operation
-------------------
Debian's ``/etc/reader.conf.d/vpcd`` makes vpcd listen on *all* interfaces
(``DEVICENAME /dev/null:port``), so anyone on the network could "insert" a card.
We never use it: pcscd runs with our own reader.conf directory (``pcscd -c DIR``) in a
private network namespace *and* mount namespace (``unshare --net --mount``).  In that
network namespace the only interface is its own loopback, so vpcd's port is reachable
from nowhere but that namespace's 127.0.0.1; the virtual card connects from a thread
switched into it (:func:`tests.support.vcard.connect`).  Each config entry gives two
readers, ``"<name> 00 00"`` on ``port`` and ``"<name> 00 01"`` on ``port + 1``; ports
can be vpcd's defaults, as each pcscd has its own namespace.

Why not vpcd's "reversed" mode (``DEVICENAME 127.0.0.1:port``, vpcd connecting out to
a card that listens on 127.0.0.1)?  vpcd 0.8 (Debian's vsmartcard 3.3) aborts the whole
pcscd (glibc "bit out of range 0 - FD_SETSIZE on fd_set") as soon as it has to
reconnect, i.e. at the first card removal; and an empty ATR hangs it.  Measured here.

pcscd's socket path is compiled in (``/run/pcscd/pcscd.comm``) and it refuses to start
if another pcscd owns it, so in the private mount namespace our own directory is
bind-mounted on ``/run/pcscd``; clients find the socket through ``PCSCLITE_CSOCK_NAME``
(read once per process by libpcsclite: one stack per process).  This needs root, as
pcscd itself does.

Waiting is on events: the socket's appearance is polled at 20 ms steps within a
deadline, readers are awaited with ``SCardGetStatusChange`` on pcscd's PnP
notification, cards with ``SCardGetStatusChange`` on the reader.  Every wait is bounded.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import shutil
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from tests.support.vcard import CardImage, VirtualCard

HOST = "127.0.0.1"
VPCD_DRIVER = Path("/usr/lib/pcsc/drivers/serial/libifdvpcd.so")
PNP = "\\\\?PnP?\\Notification"


class StackError(RuntimeError):
    """The test reader stack could not be set up (message says what to do)."""


# ----------------------------------------------------------------------------- stack


@dataclass(frozen=True)
class ReaderEntry:
    """One reader.conf entry: two readers, ``<name> 00 00`` and ``<name> 00 01``."""

    friendly: str
    port: int

    @property
    def readers(self) -> tuple[str, str]:
        return (f"{self.friendly} 00 00", f"{self.friendly} 00 01")

    def conf(self) -> str:
        return (
            f'FRIENDLYNAME "{self.friendly}"\n'
            f"DEVICENAME   /dev/null:{self.port}\n"
            f"LIBPATH      {VPCD_DRIVER}\n"
            f"CHANNELID    {self.port}\n"
        )


class PcscStack:
    """pcscd with vpcd readers on a private loopback. Use as a context manager."""

    def __init__(self, workdir: Path, friendly_names: tuple[str, ...] = ("OneCard Test",)):
        if len(friendly_names) != 1:
            # vpcd keeps its slots in one driver-global array: a second config entry
            # overwrites the first one's sockets and pcscd aborts. One entry = 2 readers.
            raise ValueError("vpcd supports one config entry (two readers) per pcscd")
        self.workdir = Path(workdir)
        self.run_dir = self.workdir / "run"
        self.conf_dir = self.workdir / "reader.conf.d"
        self.log_path = self.workdir / "pcscd.log"
        self.socket_path = self.run_dir / "pcscd.comm"
        # Ports are private to the namespace: vpcd's default, two per entry.
        self.entries = tuple(
            ReaderEntry(name, 35963 + 2 * i) for i, name in enumerate(friendly_names)
        )
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def readers(self) -> list[str]:
        return [r for e in self.entries for r in e.readers]

    def port_of(self, reader: str) -> int:
        for entry in self.entries:
            if reader in entry.readers:
                return entry.port + entry.readers.index(reader)
        raise KeyError(reader)

    @property
    def netns(self) -> str | None:
        """The network namespace file of the running pcscd (cards connect inside it)."""
        if self.proc is None or self.proc.poll() is not None:
            return None
        return f"/proc/{self.proc.pid}/ns/net"

    def card(
        self, reader: str, state: Path, image: CardImage | None = None, **kw: float
    ) -> VirtualCard:
        """A virtual card for ``reader`` (not inserted yet); follows pcscd restarts."""
        return VirtualCard(
            (HOST, self.port_of(reader)), state, image, netns=lambda: self.netns, **kw
        )

    def card_process_args(self, reader: str, state: Path, write_delay_ms: int = 0) -> list[str]:
        """``python -m tests.support.vcard`` arguments for a card in its own process."""
        netns = self.netns
        if netns is None:
            raise StackError("pcscd is not running")
        return [
            "-m", "tests.support.vcard", "--port", str(self.port_of(reader)), "--netns", netns,
            "--state", str(state), "--write-delay-ms", str(write_delay_ms),
        ]  # fmt: skip

    # -------------------------------------------------------------------- lifecycle

    def __enter__(self) -> PcscStack:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def start(self, timeout: float = 15.0) -> None:
        self._preflight()
        existing = os.environ.get("PCSCLITE_CSOCK_NAME")
        if existing is not None and existing != str(self.socket_path):
            raise StackError(
                "PCSCLITE_CSOCK_NAME is already set to another socket; libpcsclite reads it "
                "once per process, so use one PcscStack per process"
            )
        os.environ["PCSCLITE_CSOCK_NAME"] = str(self.socket_path)
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.conf_dir.mkdir(parents=True, exist_ok=True)
        for entry in self.entries:
            self.write_entry(entry)
        self.start_pcscd(timeout)

    def write_entry(self, entry: ReaderEntry) -> None:
        (self.conf_dir / _conf_name(entry)).write_text(entry.conf())

    def _preflight(self) -> None:
        if os.geteuid() != 0:
            raise StackError(
                "the PC/SC tests run pcscd, which needs root (its socket dir /run/pcscd is "
                "compiled in). Run them as root, e.g. `sudo make test`, or in CI's root container."
            )
        missing = [b for b in ("pcscd", "unshare", "ip") if shutil.which(b) is None]
        if missing or not VPCD_DRIVER.exists():
            raise StackError(
                f"missing {missing or [str(VPCD_DRIVER)]}: run scripts/install-system-deps.sh "
                "(Debian packages pcscd, vsmartcard-vpcd)"
            )

    def start_pcscd(self, timeout: float = 15.0) -> None:
        if self.proc is not None and self.proc.poll() is None:
            return
        Path("/run/pcscd").mkdir(parents=True, exist_ok=True)  # the mount point only
        with contextlib.suppress(FileNotFoundError):
            self.socket_path.unlink()
        script = (
            'ip link set lo up && mount --bind "$1" /run/pcscd && '
            'exec pcscd --foreground ${PCSCD_DEBUG:-} -c "$2"'
        )
        argv = ["unshare", "--net", "--mount", "--propagation", "private", "--"]
        argv += ["sh", "-c", script, "sh", str(self.run_dir), str(self.conf_dir)]
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                argv, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                start_new_session=True, preexec_fn=_die_with_parent,
            )  # fmt: skip
        deadline = time.monotonic() + timeout
        while not self.socket_path.exists():
            if self.proc.poll() is not None:
                raise StackError(f"pcscd exited with {self.proc.returncode}:\n{self.log_tail()}")
            if time.monotonic() > deadline:
                raise StackError(
                    f"pcscd did not open its socket in {timeout} s:\n{self.log_tail()}"
                )
            time.sleep(0.02)
        self.wait_for_readers(self.readers, timeout=max(1.0, deadline - time.monotonic()))

    def stop_pcscd(self, timeout: float = 10.0) -> None:
        proc = self.proc
        if proc is None:
            return
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=timeout)
        self.proc = None

    def swap_readers(self, friendly_names: tuple[str, ...], timeout: float = 15.0) -> None:
        """Restart pcscd with other readers (the old ones are gone, as if unplugged).

        vpcd cannot lose a reader while pcscd runs (its per-slot state is global to the
        driver: SIGUSR1's reader rescan aborts pcscd), so "unplugging" is a restart
        with a configuration that no longer has the reader.
        """
        self.stop_pcscd()
        for f in self.conf_dir.iterdir():
            f.unlink()
        self.entries = tuple(
            ReaderEntry(name, 35963 + 2 * i) for i, name in enumerate(friendly_names)
        )
        for entry in self.entries:
            self.write_entry(entry)
        self.start_pcscd(timeout)

    def close(self) -> None:
        self.stop_pcscd()

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except FileNotFoundError:
            return "(no pcscd log)"

    # ---------------------------------------------------------------------- waiting

    def wait_for_readers(self, names: list[str], timeout: float = 10.0) -> None:
        """Wait (on pcscd's PnP events) until all ``names`` are listed."""
        from smartcard import scard

        deadline = time.monotonic() + timeout
        hr, ctx = scard.SCardEstablishContext(scard.SCARD_SCOPE_USER)
        while hr != scard.SCARD_S_SUCCESS:
            if time.monotonic() > deadline:
                raise StackError(f"cannot reach pcscd: {hr:#x}\n{self.log_tail()}")
            time.sleep(0.02)
            hr, ctx = scard.SCardEstablishContext(scard.SCARD_SCOPE_USER)
        try:
            while True:
                hr, readers = scard.SCardListReaders(ctx, [])
                readers = list(readers) if hr == scard.SCARD_S_SUCCESS else []
                if all(n in readers for n in names):
                    return
                left = deadline - time.monotonic()
                if left <= 0:
                    raise StackError(
                        f"readers {names} not all up within {timeout} s (have {readers})\n"
                        f"{self.log_tail()}"
                    )
                scard.SCardGetStatusChange(
                    ctx,
                    int(min(left, 1.0) * 1000),
                    [(PNP, scard.SCARD_STATE_UNAWARE | (len(readers) << 16))],
                )
        finally:
            scard.SCardReleaseContext(ctx)

    def wait_card_state(self, reader: str, present: bool, timeout: float = 5.0) -> None:
        """Wait (on the reader's PC/SC events) until a card is / is not in ``reader``."""
        from smartcard import scard

        hr, ctx = scard.SCardEstablishContext(scard.SCARD_SCOPE_USER)
        if hr != scard.SCARD_S_SUCCESS:
            raise StackError(f"cannot reach pcscd: {hr:#x}")
        deadline = time.monotonic() + timeout
        current = scard.SCARD_STATE_UNAWARE
        try:
            while True:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise StackError(
                        f"{reader}: card {'not inserted' if present else 'not removed'} "
                        f"within {timeout} s"
                    )
                hr, states = scard.SCardGetStatusChange(ctx, int(left * 1000), [(reader, current)])
                if hr == scard.SCARD_E_TIMEOUT:
                    continue
                if hr != scard.SCARD_S_SUCCESS:
                    raise StackError(f"{reader}: status error {hr:#x}")
                state = states[0][1]
                if bool(state & scard.SCARD_STATE_PRESENT) == present:
                    return
                current = state & ~scard.SCARD_STATE_CHANGED
        finally:
            scard.SCardReleaseContext(ctx)


def _die_with_parent() -> None:
    """In the child before exec: SIGTERM pcscd if the test process dies (even SIGKILL).

    unshare and sh exec in place, so the setting reaches pcscd itself.
    """
    PR_SET_PDEATHSIG = 1
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


def _conf_name(entry: ReaderEntry) -> str:
    return "vpcd-" + "".join(c if c.isalnum() else "_" for c in entry.friendly)
