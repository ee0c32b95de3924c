"""A virtual ISO 7816-4 chip card that plugs into vpcd, for tests and benchmarks.

Theory of operation
-------------------
vpcd (vsmartcard's PC/SC driver) listens for a card on a TCP port; the test pcscd
(:mod:`tests.support.pcsc_stack`) runs in its own network namespace, so that port exists
only on that namespace's loopback.  The card *connects* to vpcd (from a thread switched
into the namespace, see :func:`connect`) and answers it: every message is a 2-byte
big-endian length and a payload; a 1-byte payload is a control code (0 power off,
1 power on, 2 reset, 4 get ATR: only ATR is answered), anything longer is a command
APDU answered with a response APDU.  Closing the connection is pulling the card out.

The card's content lives in a JSON file written after every UPDATE BINARY (atomically
per APDU, like a card's EEPROM page), so stopping and starting the emulator (even
``kill -9`` between two writes) is pulling the card out and putting the same card back.

Supported commands (enough for ``edge_node.card.layout`` and for refusals):
``FF CA 00 00 00`` GET DATA UID; ``00 A4 04 xx`` SELECT by AID; ``00 A4 00|02 xx``
SELECT EF by file id (P2 00/04 return an FCP, 0C nothing); ``00 B0`` READ BINARY and
``00 D6`` UPDATE BINARY with or without Le.  The socket has TCP_NODELAY and
TCP_QUICKACK set: without them each APDU waits ~40 ms for a delayed ACK.

Run as ``python -m tests.support.vcard --port P --netns NS --state FILE`` to have it in its
own process (tests kill it mid-write); it prints ``READY`` once in the reader and
``WRITE <fid> <offset> <len>`` after each persisted UPDATE BINARY.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import json
import os
import select
import socket
import struct
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

HOST = "127.0.0.1"  # the only address the card ever uses

# T=1 card, 10 historical bytes "ONECARD-EM"; TCK is the XOR of T0..last byte.
_ATR_BODY = bytes([0x8A, 0x80, 0x01]) + b"ONECARD-EM"


def _make_atr() -> bytes:
    tck = 0
    for b in _ATR_BODY:
        tck ^= b
    return bytes([0x3B]) + _ATR_BODY + bytes([tck])


ATR = _make_atr()

SW_OK = b"\x90\x00"
SW_EOF = b"\x62\x82"  # end of file reached before Le bytes
SW_WRONG_LENGTH = b"\x67\x00"
SW_NO_EF = b"\x69\x86"  # command not allowed: no current EF
SW_NOT_FOUND = b"\x6a\x82"
SW_WRONG_P1P2 = b"\x6b\x00"
SW_BAD_P1P2 = b"\x6a\x86"
SW_INS = b"\x6d\x00"
SW_CLA = b"\x6e\x00"


@dataclass
class CardImage:
    """What is on the chip: a UID, and per application (AID) its EFs (file id → bytes)."""

    uid: bytes
    apps: dict[bytes, dict[int, bytearray]] = field(default_factory=dict)

    @classmethod
    def blank_onecard(cls, uid: bytes, aid: bytes, files: dict[int, int]) -> CardImage:
        """A personalised-but-empty card: the application with zero-filled EFs of given sizes."""
        return cls(uid, {aid: {fid: bytearray(size) for fid, size in files.items()}})

    def to_json(self) -> str:
        return json.dumps(
            {
                "uid": self.uid.hex(),
                "apps": {
                    aid.hex(): {f"{fid:04x}": bytes(data).hex() for fid, data in efs.items()}
                    for aid, efs in self.apps.items()
                },
            },
            sort_keys=True,
        )

    @classmethod
    def from_json(cls, text: str) -> CardImage:
        raw = json.loads(text)
        return cls(
            bytes.fromhex(raw["uid"]),
            {
                bytes.fromhex(aid): {
                    int(fid, 16): bytearray.fromhex(data) for fid, data in efs.items()
                }
                for aid, efs in raw["apps"].items()
            },
        )

    def save(self, path: Path) -> None:
        tmp = path.with_suffix(path.suffix + ".tmp")
        with open(tmp, "w") as f:
            f.write(self.to_json())
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)

    @classmethod
    def load(cls, path: Path) -> CardImage:
        return cls.from_json(path.read_text())


class CardApplet:
    """The card's command interpreter: APDU bytes in, response bytes out (no I/O)."""

    def __init__(self, image: CardImage, persist: Path | None = None) -> None:
        self.image = image
        self.persist = persist
        self.app: bytes | None = None
        self.ef: int | None = None
        self.writes = 0
        self.on_write: list[Callable[[int, int, int], None]] = []

    def reset(self) -> None:
        self.app = None
        self.ef = None

    def process(self, apdu: bytes) -> bytes:
        if len(apdu) < 4:
            return SW_WRONG_LENGTH
        cla, ins, p1, p2 = apdu[0], apdu[1], apdu[2], apdu[3]
        lc, data, le = _parse_body(apdu[4:])
        if lc < 0:
            return SW_WRONG_LENGTH
        if cla == 0xFF:
            if ins == 0xCA and p1 == 0x00 and p2 == 0x00:
                uid = self.image.uid
                if le is not None and 0 < le < len(uid):
                    return b"\x6c" + bytes([len(uid)])
                return uid + SW_OK
            return SW_INS
        if cla & 0xF0 != 0x00:
            return SW_CLA
        if ins == 0xA4:
            return self._select(p1, p2, data)
        if ins == 0xB0:
            return self._read(p1, p2, le)
        if ins == 0xD6:
            return self._update(p1, p2, data)
        return SW_INS

    def _select(self, p1: int, p2: int, data: bytes) -> bytes:
        if p2 not in (0x00, 0x04, 0x0C):
            return SW_BAD_P1P2
        if p1 == 0x04:
            if data not in self.image.apps:
                return SW_NOT_FOUND
            self.app, self.ef = data, None
            if p2 == 0x0C:
                return SW_OK
            fci = _tlv(0x84, data)
            return _tlv(0x6F if p2 == 0x00 else 0x62, fci) + SW_OK
        if p1 in (0x00, 0x02):
            if len(data) != 2 or self.app is None:
                return SW_NOT_FOUND
            fid = int.from_bytes(data, "big")
            efs = self.image.apps[self.app]
            if fid not in efs:
                return SW_NOT_FOUND
            self.ef = fid
            if p2 == 0x0C:
                return SW_OK
            fcp = (
                _tlv(0x80, len(efs[fid]).to_bytes(2, "big"))
                + _tlv(0x82, b"\x01")
                + _tlv(0x83, data)
            )
            return _tlv(0x62, fcp) + SW_OK
        return SW_BAD_P1P2

    def _current(self) -> bytearray | None:
        if self.app is None or self.ef is None:
            return None
        return self.image.apps[self.app][self.ef]

    def _read(self, p1: int, p2: int, le: int | None) -> bytes:
        if p1 & 0x80:
            return SW_BAD_P1P2  # short EF id addressing: not supported
        ef = self._current()
        if ef is None:
            return SW_NO_EF
        offset = (p1 << 8) | p2
        if offset > len(ef):
            return SW_WRONG_P1P2
        want = 256 if le is None or le == 0 else le
        chunk = bytes(ef[offset : offset + want])
        return chunk + (SW_OK if len(chunk) == want else SW_EOF)

    def _update(self, p1: int, p2: int, data: bytes) -> bytes:
        if p1 & 0x80:
            return SW_BAD_P1P2
        ef = self._current()
        if ef is None:
            return SW_NO_EF
        offset = (p1 << 8) | p2
        if offset + len(data) > len(ef):
            return SW_WRONG_P1P2
        ef[offset : offset + len(data)] = data
        if self.persist is not None:
            self.image.save(self.persist)
        self.writes += 1
        for cb in self.on_write:
            cb(self.ef, offset, len(data))
        return SW_OK


def _tlv(tag: int, value: bytes) -> bytes:
    return bytes([tag, len(value)]) + value


def _parse_body(body: bytes) -> tuple[int, bytes, int | None]:
    """Split an APDU body into (Lc, data, Le); Lc -1 when malformed. Short APDUs only."""
    if not body:
        return 0, b"", None
    if len(body) == 1:
        return 0, b"", body[0]
    lc = body[0]
    if lc == 0 or len(body) < 1 + lc:
        return -1, b"", None
    data = body[1 : 1 + lc]
    rest = body[1 + lc :]
    if not rest:
        return lc, data, None
    if len(rest) == 1:
        return lc, data, rest[0]
    return -1, b"", None


class VirtualCard:
    """A card in a vpcd reader slot, served from a thread (or run in its own process).

    ``insert()`` connects to vpcd at ``address`` (inside the test pcscd's network
    namespace when ``netns`` gives one) and answers it from a thread; ``remove()``
    closes the connection, like pulling the card out.  The image is loaded from
    ``state`` when that file exists, else ``image`` is used and saved there.
    """

    def __init__(
        self,
        address: tuple[str, int],
        state: Path,
        image: CardImage | None = None,
        *,
        netns: str | Callable[[], str | None] | None = None,
        write_delay: float = 0.0,
    ) -> None:
        self.address = address
        self.netns = netns
        self.state = Path(state)
        if self.state.exists():
            image = CardImage.load(self.state)
        elif image is None:
            raise ValueError(f"no card image at {state} and none given")
        else:
            image.save(self.state)
        self.applet = CardApplet(image, self.state)
        self.write_delay = write_delay
        self._conn: socket.socket | None = None
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self.apdus = 0

    @property
    def image(self) -> CardImage:
        return self.applet.image

    @property
    def inserted(self) -> bool:
        """In the reader: False once removed, or when vpcd went away (pcscd stopped)."""
        return self._thread is not None and self._thread.is_alive()

    def insert(self, timeout: float = 5.0) -> None:
        if self.inserted:
            return
        netns = self.netns() if callable(self.netns) else self.netns
        self._conn = connect(self.address, netns=netns, timeout=timeout)
        self.applet.reset()
        self._stop.clear()
        self._thread = threading.Thread(
            target=self._serve, name=f"vcard:{self.address[1]}", daemon=True
        )
        self._thread.start()

    def remove(self) -> None:
        thread = self._thread
        if thread is None:
            return
        self._stop.set()
        thread.join(timeout=5)
        if thread.is_alive():
            raise RuntimeError(f"virtual card at {self.address} did not stop within 5 s")
        self._thread = None

    def replace_image(self, image: CardImage) -> None:
        """Put different content on the card (only while it is out of the reader)."""
        if self.inserted:
            raise RuntimeError("take the card out before changing what is on it")
        image.save(self.state)
        self.applet = CardApplet(image, self.state)

    def _serve(self) -> None:
        conn = self._conn
        assert conn is not None
        try:
            while not self._stop.is_set():
                readable, _, _ = select.select([conn], [], [], 0.05)
                if readable and not self._handle(conn):
                    return
        finally:
            with contextlib.suppress(OSError):
                conn.close()
            self._conn = None

    def _handle(self, conn: socket.socket) -> bool:
        """Answer one vpcd message; False when the connection is gone."""
        try:
            header = _recv_exact(conn, 2)
            if header is None:
                return False
            (size,) = struct.unpack(">H", header)
            payload = _recv_exact(conn, size) if size else b""
            if payload is None:
                return False
            if len(payload) == 1:
                code = payload[0]
                if code == 4:
                    _send(conn, ATR)
                    _quickack(conn)
                elif code in (0, 1, 2):
                    self.applet.reset()
                return True
            self.apdus += 1
            response = self.applet.process(payload)
            if payload[1:2] == b"\xd6" and self.write_delay:
                time.sleep(self.write_delay)
            _send(conn, response)
            _quickack(conn)
            return True
        except OSError:
            return False


CLONE_NEWNET = 0x40000000


def connect(
    address: tuple[str, int], *, netns: str | None = None, timeout: float = 5.0
) -> socket.socket:
    """A TCP connection to ``address``, made inside the network namespace ``netns``.

    A thread switched into another network namespace creates sockets there; the
    socket then works from any thread.  vpcd only accepts connections on the test
    pcscd's private loopback, so this is how a card reaches it.
    """
    result: list[socket.socket | BaseException] = []

    def make() -> None:
        try:
            if netns is not None:
                libc = ctypes.CDLL(None, use_errno=True)
                fd = os.open(netns, os.O_RDONLY)
                try:
                    if libc.setns(fd, CLONE_NEWNET) != 0:
                        err = ctypes.get_errno()
                        raise OSError(err, f"setns({netns}): {os.strerror(err)}")
                finally:
                    os.close(fd)
            deadline = time.monotonic() + timeout
            while True:
                try:
                    sock = socket.create_connection(address, timeout=timeout)
                    break
                except ConnectionRefusedError:
                    # vpcd opens its port a moment after pcscd starts: bounded retry.
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(0.01)
            sock.settimeout(None)
            _tune(sock)
            result.append(sock)
        except BaseException as exc:
            result.append(exc)

    if netns is None:
        make()
    else:
        worker = threading.Thread(target=make, name="vcard-netns", daemon=True)
        worker.start()
        worker.join(timeout + 1)
    if not result:
        raise TimeoutError(f"could not connect to {address} within {timeout} s")
    if isinstance(result[0], BaseException):
        raise result[0]
    return result[0]


def _tune(conn: socket.socket) -> None:
    conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    _quickack(conn)


def _quickack(conn: socket.socket) -> None:
    # Linux clears TCP_QUICKACK after use, so it is re-armed after every exchange.
    quickack = getattr(socket, "TCP_QUICKACK", None)
    if quickack is not None:
        with contextlib.suppress(OSError):
            conn.setsockopt(socket.IPPROTO_TCP, quickack, 1)


def _send(conn: socket.socket, payload: bytes) -> None:
    conn.sendall(struct.pack(">H", len(payload)) + payload)


def _recv_exact(conn: socket.socket, n: int) -> bytes | None:
    buf = bytearray()
    while len(buf) < n:
        chunk = conn.recv(n - len(buf))
        if not chunk:
            return None
        buf += chunk
    return bytes(buf)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="virtual chip card for vpcd")
    parser.add_argument("--port", type=int, required=True, help="vpcd's port (on 127.0.0.1)")
    parser.add_argument("--netns", help="network namespace file of the test pcscd")
    parser.add_argument("--state", type=Path, required=True, help="card image JSON file")
    parser.add_argument("--write-delay-ms", type=int, default=0)
    args = parser.parse_args(argv)
    card = VirtualCard(
        (HOST, args.port), args.state, netns=args.netns, write_delay=args.write_delay_ms / 1000
    )

    def report(fid: int, offset: int, length: int) -> None:
        print(f"WRITE {fid:04x} {offset} {length}", flush=True)

    card.applet.on_write.append(report)
    card.insert()
    print("READY", flush=True)
    try:
        while card._thread is not None and card._thread.is_alive():
            card._thread.join(timeout=0.5)
    except KeyboardInterrupt:
        pass
    finally:
        card.remove()
    return 0


if __name__ == "__main__":
    sys.exit(main())
