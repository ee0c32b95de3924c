"""Receipts: the text a patient takes away, and the ESC/POS bytes a receipt printer takes.

The transaction is already committed when a receipt is printed, so printing can only
*warn*: :func:`print_text` never raises, it returns a :class:`PrintResult` whose
``warning`` the counter shows ("printer out of paper: the deposit IS recorded").
Chinese text goes to the printer in GB18030 after ``FS &`` (Chinese character mode),
which is what the common 58/80 mm ESC/POS printers sold in China expect.
"""

from __future__ import annotations

import datetime as dt
import os
from dataclasses import dataclass
from pathlib import Path
from zoneinfo import ZoneInfo

from edge_node.i18n import Translator
from edge_node.reports import cells, ljust, rjust

__all__ = ["PrintResult", "cells", "escpos", "payment_lines", "print_bytes", "print_text",
           "render_text"]
from edge_node.service import LineText, Receipt
from protocol.account import Deposited, Refunded
from protocol.domain import REGISTRY
from protocol.money import yuan

ESC = b"\x1b"
GS = b"\x1d"
FS = b"\x1c"
INIT = ESC + b"@"
CHINESE_ON = FS + b"&"
BOLD_ON, BOLD_OFF = ESC + b"E\x01", ESC + b"E\x00"
CENTER, LEFT = ESC + b"a\x01", ESC + b"a\x00"
FEED_AND_CUT = ESC + b"d\x04" + GS + b"V\x01"  # feed 4 lines, partial cut


def _wrap(text: str, width: int) -> list[str]:
    out, cur = [], ""
    for ch in text:
        if cells(cur + ch) > width:
            out.append(cur)
            cur = ""
        cur += ch
    return [*out, cur] if cur or not out else out


def render_text(receipt: Receipt, *, node: str, operator: str, language: str = "zh",
                card_no: str = "", timezone: str = "Asia/Shanghai", width: int = 32) -> str:
    """A receipt as plain text, ``width`` columns (32 fits 58 mm paper)."""
    tr = Translator(language)
    kind = receipt.events[0].kind if receipt.events else ""
    title = tr(f"kind.{kind}") if tr.has(f"kind.{kind}") else receipt.title  # (own kinds)
    if kind == "patient.registered":
        title = tr("title.new")
    elif kind == "account.refunded" and receipt.events[0].body.get("void") == 1:
        title = tr("title.void")
    if receipt.reprinted_ms:
        title = f"{title} {tr('receipt.reprint')}"
    at = receipt.at_ms or (receipt.events[-1].hlc.wall if receipt.events else 0)
    zone = ZoneInfo(timezone)

    def stamp(ms: int) -> str:
        return dt.datetime.fromtimestamp(ms / 1000, zone).strftime("%Y-%m-%d %H:%M:%S")

    when = stamp(at)
    lines = [tr("receipt.hospital").center(width - (cells(tr("receipt.hospital"))
                                                    - len(tr("receipt.hospital")))),
             title, "-" * width]
    if receipt.number:
        lines.append(f"{tr('receipt.number')}: {receipt.number}")
    p = receipt.patient
    lines.append(f"{tr('receipt.patient')}: {p.name} ({p.patient_id})")
    if card_no:
        lines.append(f"{tr('receipt.card')}: {card_no}")
    lines.append("-" * width)
    for label, amount in receipt.lines:
        if isinstance(label, LineText) and tr.has(f"line.{label.key}"):
            text = tr(f"line.{label.key}", **label.values)
        else:
            text = tr(f"line.{label}") if tr.has(f"line.{label}") else label
        money = yuan(amount)
        room = width - cells(money) - 1
        parts = _wrap(text, room)
        for part in parts[:-1]:
            lines.append(part)
        lines.append(ljust(parts[-1], room) + " " + money)
    lines.append("-" * width)
    for label, value in payment_lines(receipt, tr):
        lines.append(ljust(label, width - 16) + rjust(value, 16) if cells(label) + cells(value)
                     < width else f"{label}: {value}")
    lines.append(ljust(tr("receipt.balance"), width - 16) + rjust(yuan(receipt.balance), 16))
    lines.append(f"{tr('receipt.time')}: {when}")
    if receipt.reprinted_ms:  # the original's counter and operator; who reprinted it, when
        lines.append(f"{tr('receipt.counter')}: {receipt.node or node}  "
                     f"{tr('receipt.operator')}: {receipt.operator}")
        lines.append(f"{tr('receipt.reprinted')}: {stamp(receipt.reprinted_ms)} {operator}")
    else:
        lines.append(f"{tr('receipt.counter')}: {node}  {tr('receipt.operator')}: {operator}")
    lines.append(tr("receipt.keep"))
    return "\n".join(lines) + "\n"


def payment_lines(receipt: Receipt, tr: Translator) -> list[tuple[str, str]]:
    """How the money moved, from the receipt's own events (a reprint shows the same):
    a deposit's payment method, cash tendered and change, the payment's reference; a
    refund's charge and where it went."""
    out: list[tuple[str, str]] = []
    for ev in receipt.events:
        fact = REGISTRY.fact(ev)
        b = fact.body if fact is not None else None
        if isinstance(b, Deposited):
            out.append((tr("receipt.method"), tr(f"method.{b.method}")))
            if b.tendered:
                out.append((tr("receipt.tendered"), yuan(b.tendered)))
                out.append((tr("receipt.change"), yuan(b.change)))
            if b.reference:
                out.append((tr("receipt.reference"), b.reference))
        elif isinstance(b, Refunded):
            out.append((tr("receipt.of_charge"), b.charge_id))
            out.append((tr("receipt.refund_to"), tr("to.void" if b.void else f"to.{b.to}")))
    return out


def escpos(text: str, title_lines: int = 2) -> bytes:
    """ESC/POS bytes for ``text``: initialise, Chinese mode, bold title, feed and cut."""
    out = bytearray(INIT + CHINESE_ON)
    rows = text.rstrip("\n").split("\n")
    for i, row in enumerate(rows):
        data = row.encode("gb18030", errors="replace") + b"\n"
        if i < title_lines:
            out += CENTER + BOLD_ON + data + BOLD_OFF + LEFT
        else:
            out += data
    out += FEED_AND_CUT
    return bytes(out)


@dataclass(frozen=True, slots=True)
class PrintResult:
    printed: bool
    warning: str = ""
    errno: int = 0  # the OS error when not printed (0: none), for a translated message


def print_text(text: str, device: str) -> PrintResult:
    """Send ``text`` as ESC/POS to ``device`` (a printer device or a file, appended to).

    Never raises: a missing or failing printer is a warning for the screen.  Blocking
    (a device may stall): call it from a worker thread.
    """
    if not device:
        return PrintResult(False, "")
    return print_bytes(escpos(text), device)


def print_bytes(data: bytes, device: str) -> PrintResult:
    """Append ready ESC/POS ``data`` to ``device`` (a printer device or a file): the one
    writer behind receipts and labels (:mod:`edge_node.labels`).

    Never raises for an OS error: ``PrintResult(False, "<device>: <reason>", errno)``.
    A path under ``/dev`` is never created (a missing printer stays missing).  Blocking:
    call it from a worker thread.
    """
    if not device:
        return PrintResult(False, "")
    path = Path(device)
    try:
        # A device that is not there must stay "not there", never become a file in /dev.
        create = 0 if path.is_relative_to("/dev") else os.O_CREAT
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | create, 0o640)
        try:
            view = memoryview(data)
            while view:
                n = os.write(fd, view)
                view = view[n:]
        finally:
            os.close(fd)
    except OSError as exc:
        return PrintResult(False, f"{device}: {exc.strerror or exc}", exc.errno or 0)
    return PrintResult(True)
