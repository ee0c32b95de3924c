"""Labels: the lab window's specimen barcode label and the pharmacy's medication label.

The lab window (DOMAIN 3.8) prints a Code 128 label for each specimen tube: the id in
the bars is what the sampling nurse and the analysers scan.  The pharmacy (3.9) prints
one label per dispensed drug line: who, what, how much, how to take it.

* :func:`specimen_id` / :func:`parse_specimen_id`: a specimen number no other counter
  can give, offline, short enough for a tube (at most 16 characters of Code 128 set B).
* :func:`code128_modules`, :func:`code128_image`, :func:`code128_png`,
  :func:`code128_svg`: the symbol from ``python-barcode`` (the symbology is the
  library's), painted in whole printer dots so the preview and the paper are the same
  bars.
* :func:`specimen_label`, :func:`dispense_label`: a :class:`Label`, text lines in the
  counter's language plus the barcode data; :func:`label_escpos` the printer bytes;
  :func:`print_label` sends them through :func:`edge_node.receipt.print_bytes` and never
  raises: a missing printer is a translated warning, the specimen or the dispensing is
  already recorded.

All functions here are pure (no clock, no I/O) except :func:`print_label`.
"""

from __future__ import annotations

import datetime as dt
import errno as errno_
import io
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple
from zoneinfo import ZoneInfo

from barcode import Code128
from barcode.charsets import code128 as _charsets
from barcode.writer import BaseWriter, SVGWriter
from PIL import Image, ImageDraw

from edge_node.i18n import Translator
from edge_node.receipt import (
    BOLD_OFF,
    BOLD_ON,
    CENTER,
    CHINESE_ON,
    FEED_AND_CUT,
    GS,
    INIT,
    LEFT,
    PrintResult,
    _wrap,
    print_bytes,
)
from protocol.money import yuan
from protocol.visit import TAG_RE

__all__ = ["DOTS_PER_MM", "Label", "PrintResult", "SpecimenId", "code128_image", "code128_modules",
           "code128_png", "code128_svg", "dispense_label", "fit_module", "label_escpos",
           "label_text", "parse_specimen_id", "print_label", "raster", "specimen_id",
           "specimen_label", "usage_text"]

#: thermal heads of the common 58/80 mm ESC/POS printers: 203 dpi, 8 dots a millimetre
DOTS_PER_MM = 8
#: the blank Code 128 needs either side of the bars, in modules (ISO/IEC 15417: 10)
QUIET_MODULES = 10
#: the least quiet zone a label's picture may keep to print 2-dot modules (see fit_module)
MIN_QUIET_MODULES = 5
#: the bars' height on paper, in dots (10 mm)
BAR_HEIGHT_DOTS = 80
#: printer columns per dot of paper width (Font A: 12 dots a column, CJK two columns)
DOTS_PER_COLUMN = 12
MAX_SPECIMEN_SEQ = 9999

_DAY_RE = re.compile(r"^(20\d\d)-(\d\d)-(\d\d)$")
_SPECIMEN_RE = re.compile(r"^(?:([A-Z0-9]{1,5})-|([A-Z0-9]{6}))(\d{6})(\d{4})$")
_CODE_B = re.compile(r"^[\x20-\x7e]+$")  # the printable ASCII of Code 128 set B
MAX_BARCODE_CHARS = 48


# -- specimen ids ---------------------------------------------------------------------------
class SpecimenId(NamedTuple):
    tag: str  # the counter's queue tag (``L01``)
    day: str  # YYYY-MM-DD
    n: int  # the counter's sequence that day, 1 … 9999


def specimen_id(tag: str, day: str, n: int) -> str:
    """The specimen number of the ``n``-th specimen of counter ``tag`` on ``day``:
    ``specimen_id("L01", "2026-12-01", 7)`` → ``L01-2612010007``.

    ``{tag}-{yymmdd}{nnnn}``; a 6-character tag drops the dash (``LAB001`` →
    ``LAB0012612010007``) so every id fits 16 characters.  The ten digits at the end are
    always date and sequence, so the tag is everything before them (and the dash): two
    counters with different tags never give the same id, offline or not, and one counter
    only repeats itself if it reuses ``n`` the same day.  Only ``A–Z 0–9 -``: Code 128
    set B prints it, and the digit run goes into set C (two digits a symbol), which
    keeps the bars narrow enough for 2-dot modules on 58 mm paper (a second dash, as in
    ``L01-261201-0007``, would split the digit run and cost two more symbols: too wide
    for 2-dot modules and full quiet zones on a 384-dot head).

    Raises ValueError for a tag that is not a queue tag (1–6 of A–Z 0–9), a day that is
    not a real date in 2000–2099, or ``n`` outside 1–9999 (the caller's own mistakes).
    """
    if not isinstance(tag, str) or not TAG_RE.match(tag):
        raise ValueError(f"specimen id: tag {tag!r} is not 1 to 6 of A-Z 0-9")
    m = _DAY_RE.match(day) if isinstance(day, str) else None
    try:
        dt.date.fromisoformat(day) if m else None
    except ValueError:
        m = None
    if m is None:
        raise ValueError(f"specimen id: day {day!r} is not a date YYYY-MM-DD in 2000-2099")
    if isinstance(n, bool) or not isinstance(n, int) or not 1 <= n <= MAX_SPECIMEN_SEQ:
        raise ValueError(f"specimen id: sequence {n!r} is not 1 to {MAX_SPECIMEN_SEQ}")
    stamp = f"{m.group(1)[2:]}{m.group(2)}{m.group(3)}{n:04d}"
    return f"{tag}{stamp}" if len(tag) == 6 else f"{tag}-{stamp}"


def parse_specimen_id(text: str) -> SpecimenId | None:
    """The parts of a specimen id (scanned, or typed: spaces around and lower case are
    forgiven); None for anything :func:`specimen_id` cannot have given."""
    if not isinstance(text, str):
        return None
    m = _SPECIMEN_RE.match(text.strip().upper())
    if m is None:
        return None
    tag = m.group(1) or m.group(2)
    ymd, seq = m.group(3), int(m.group(4))
    day = f"20{ymd[:2]}-{ymd[2:4]}-{ymd[4:]}"
    try:
        dt.date.fromisoformat(day)
    except ValueError:
        return None
    if seq < 1:
        return None
    return SpecimenId(tag, day, seq)


# -- the symbol -----------------------------------------------------------------------------
class _Code128(Code128):  # type: ignore[misc]  # (python-barcode has no type hints)
    """``python-barcode``'s Code 128 with one fix: data beginning ``99`` lost those two
    digits (python-barcode issue #251; fixed upstream by PR #263, not in 0.16.1).  The
    library starts every symbol in set C and folds ``START C, CODE B`` into ``START B``,
    but it also folded the set-C data value 99 ("99"), which is the same number as
    ``CODE C``.  Only a real switch to A or B is folded here."""

    def _try_to_optimize(self, encoded: list[int]) -> list[int]:
        start_c, to_a, to_b = _charsets.START_CODES["C"], _charsets.C["TO_A"], _charsets.C["TO_B"]
        if len(encoded) > 1 and encoded[0] == start_c and encoded[1] in (to_a, to_b):
            encoded[:2] = [_charsets.TO[encoded[1]]]
        return encoded


def _check(data: str) -> None:
    if not isinstance(data, str) or not _CODE_B.match(data) or len(data) > MAX_BARCODE_CHARS:
        raise ValueError(f"Code 128 label data must be 1 to {MAX_BARCODE_CHARS} printable "
                         f"ASCII characters, not {data!r}")


def code128_modules(data: str) -> list[bool]:
    """The symbol's modules left to right (True: a bar), start to stop pattern, from
    ``python-barcode`` (its set A/B/C choice and checksum).  ValueError for data that
    is not 1–48 printable ASCII characters."""
    _check(data)
    # A fresh Code128 each time: build() leaves the instance in its last character set.
    return [c == "1" for c in _Code128(data).build()[0]]


def fit_module(data: str, width_dots: int, most: int = 4) -> int:
    """The widest module, in whole dots (at most ``most``), at which ``data`` fits
    ``width_dots`` with its 10-module quiet zones; 0 when even one dot is too wide.

    Two dots beat one even if the quiet zones inside the picture must shrink to
    :data:`MIN_QUIET_MODULES` (a 6-character tag ending in one digit, 178 modules, on a
    384-dot head): a one-dot (0.125 mm) bar smears on thermal paper, while the paper's
    own white margin beyond the head adds to a short quiet zone."""
    modules = len(code128_modules(data))
    module = min(most, width_dots // (modules + 2 * QUIET_MODULES))
    if module < 2 <= most and 2 * (modules + 2 * MIN_QUIET_MODULES) <= width_dots:
        module = 2
    return max(0, module)


class _DotWriter(BaseWriter):  # type: ignore[misc]  # (python-barcode has no type hints)
    """The library's module walk, painted in whole dots on a 1-bit PIL image.

    (``barcode.writer.ImageWriter`` converts millimetres to pixels with rounding that
    makes each bar a pixel thinner at printer resolution; here every length is a whole
    number of dots, so each module is exactly ``module_width`` dots.)"""

    def __init__(self) -> None:
        super().__init__(self._init, self._paint, None, self._finish)
        self._image = Image.new("1", (1, 1), 1)
        self._draw = ImageDraw.Draw(self._image)

    def _init(self, code: list[str]) -> None:
        width, height = self.calculate_size(len(code[0]), 1)
        self._image = Image.new("1", (round(width), round(height)), 1)
        self._draw = ImageDraw.Draw(self._image)

    def _paint(self, xpos: float, ypos: float, width: float, color: str) -> None:
        if color == self.foreground:
            x, y, w = round(xpos), round(ypos), round(width)
            self._draw.rectangle((x, y, x + w - 1, y + round(self.module_height) - 1), fill=0)

    def _finish(self) -> Image.Image:
        return self._image


def code128_image(data: str, *, module_dots: int = 2, height_dots: int = BAR_HEIGHT_DOTS,
                  quiet_dots: int | None = None) -> Image.Image:
    """The symbol as a 1-bit image (0 black), one pixel a printer dot: each module
    ``module_dots`` wide, bars ``height_dots`` high, ``quiet_dots`` of white each side
    (default the 10-module quiet zone).  The same pixels the printer gets."""
    _check(data)
    if module_dots < 1 or height_dots < 1:
        raise ValueError("module_dots and height_dots must be at least 1")
    quiet = QUIET_MODULES * module_dots if quiet_dots is None else max(0, quiet_dots)
    options = {"module_width": module_dots, "module_height": height_dots,
               "quiet_zone": quiet, "margin_top": 0, "margin_bottom": 0,
               "write_text": False, "font_size": 0}
    image: Image.Image = _Code128(data, writer=_DotWriter()).render(options)
    return image


def code128_png(data: str, *, module_dots: int = 2, height_dots: int = BAR_HEIGHT_DOTS) -> bytes:
    """The PNG of :func:`code128_image` (203 dpi in its header, so it prints at the
    label's size): a preview or a file for another program."""
    out = io.BytesIO()
    code128_image(data, module_dots=module_dots, height_dots=height_dots).save(
        out, format="PNG", dpi=(203, 203))
    return out.getvalue()


def code128_svg(data: str, *, module_dots: int = 2, height_dots: int = BAR_HEIGHT_DOTS,
                text: bool = True) -> str:
    """The symbol as SVG (``python-barcode``'s SVG writer) at the printed size: modules
    ``module_dots`` printer dots wide (0.25 mm for 2), the data written under the bars
    when ``text``.  A UTF-8 XML document as a str."""
    _check(data)
    mm = 1 / DOTS_PER_MM
    options = {"module_width": module_dots * mm, "module_height": height_dots * mm,
               "quiet_zone": QUIET_MODULES * module_dots * mm, "write_text": text,
               "font_size": 8, "text_distance": 3}
    svg: Any = _Code128(data, writer=SVGWriter()).render(options)
    return svg.decode("utf-8") if isinstance(svg, bytes) else str(svg)


# -- labels ---------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Label:
    """What a label says: a bold title, the barcode (its data printed under it), lines."""

    kind: str  # "specimen" | "dispense"
    title: str
    lines: tuple[str, ...]
    barcode: str = ""  # Code 128 data ("" none)


def _when(ms: int, timezone: str) -> str:
    try:
        zone = ZoneInfo(timezone)
    except (ValueError, KeyError, OSError):  # an unknown zone name: the counter's own time
        zone = ZoneInfo("Asia/Shanghai")
    try:
        return dt.datetime.fromtimestamp(ms / 1000, zone).strftime("%Y-%m-%d %H:%M")
    except (ValueError, OverflowError, OSError):
        return ""


def _who(tr: Translator, name: str, sex: str, age: int | None) -> str:
    parts = [name]
    if tr.has(f"labels.sex.{sex}"):
        parts.append(tr(f"labels.sex.{sex}"))
    if age is not None and age >= 0:
        parts.append(tr("labels.age", n=age))
    return "  ".join(p for p in parts if p)


def specimen_label(specimen_no: str, *, name: str, patient_id: str, order_id: str,
                   items: Sequence[str], collected_ms: int, sex: str = "",
                   age: int | None = None, specimen: str = "",
                   timezone: str = "Asia/Shanghai", language: str = "zh") -> Label:
    """The tube label of one specimen: the barcode is ``specimen_no`` (a
    :func:`specimen_id`); the lines say whose tube (full name: normal on a tube),
    sex (``M``/``F``), age in whole years, patient and order ids, the tests drawn into
    it (``items``, their names), the specimen/tube (``静脉血 紫管``) if known, and when
    it was collected (``collected_ms``, shown in ``timezone``)."""
    tr = Translator(language)
    lines = [_who(tr, name, sex, age),
             f"{tr('labels.patient_id')}: {patient_id}",
             f"{tr('labels.order')}: {order_id}"]
    if items:
        lines.append(f"{tr('labels.items')}: {tr('labels.list_sep').join(items)}")
    if specimen:
        lines.append(f"{tr('labels.specimen')}: {specimen}")
    lines.append(f"{tr('labels.collected')}: {_when(collected_ms, timezone)}")
    return Label("specimen", tr("labels.specimen.title"), tuple(lines), specimen_no)


def _unit(tr: Translator, unit: str, n: int) -> str:
    """A catalogue unit (片, 盒 …) in the label's language, plural in English for n ≠ 1;
    mg, ml and units without a translation as they are."""
    key = f"labels.unit.{unit}" + ("" if n == 1 else ".n")
    return tr(key) if tr.has(key) else unit


def usage_text(dose: int, dose_unit: str, per_day: int, days: int, language: str = "zh") -> str:
    """How to take it: ``每次 1 片，每日 3 次，共 7 天`` / ``1 tablet, 3 times a day,
    7 days``; ``遵医嘱`` / ``as directed`` when the order has no dose (0s)."""
    tr = Translator(language)
    if not (dose > 0 and per_day > 0 and days > 0):
        return tr("labels.as_directed")
    amount = f"{dose} {_unit(tr, dose_unit, dose)}".strip()
    freq = tr("labels.freq.once") if per_day == 1 else tr("labels.freq", n=per_day)
    span = tr("labels.days.one") if days == 1 else tr("labels.days", n=days)
    return tr("labels.usage", dose=amount, freq=freq, span=span)


def dispense_label(dispense_id: str, *, name: str, patient_id: str, drug: str, qty: int,
                   unit: str, unit_price: int, dose: int, dose_unit: str, per_day: int,
                   days: int, order_id: str, pharmacy: str, dispensed_ms: int,
                   strength: str = "", sex: str = "", age: int | None = None,
                   timezone: str = "Asia/Shanghai", language: str = "zh") -> Label:
    """The pharmacy's label for one dispensed drug line (one of an order's
    ``[code, name, qty, unit_price, dose, per_day, days]``, with the catalogue item's
    ``unit``/``strength``/``dose_unit``): patient, drug, quantity, how to take it, price
    (fen: unit price × quantity), order and dispense ids, pharmacy and time.  The
    barcode is ``dispense_id`` when Code 128 prints it in 2-dot modules on 58 mm paper
    (about 16 characters; else the id is only printed as text)."""
    tr = Translator(language)
    drug_line = f"{drug} {strength}".strip()
    lines = [_who(tr, name, sex, age),
             f"{tr('labels.patient_id')}: {patient_id}",
             f"{tr('labels.drug')}: {drug_line}",
             f"{tr('labels.qty')}: {qty} {_unit(tr, unit, qty)}".rstrip(),
             f"{tr('labels.usage_label')}: {usage_text(dose, dose_unit, per_day, days, language)}",
             f"{tr('labels.price')}: {yuan(unit_price)} × {qty} = {yuan(unit_price * qty)}",
             f"{tr('labels.order')}: {order_id}",
             f"{tr('labels.dispense_id')}: {dispense_id}",
             f"{tr('labels.pharmacy')}: {pharmacy}",
             f"{tr('labels.dispensed')}: {_when(dispensed_ms, timezone)}"]
    fits = isinstance(dispense_id, str) and bool(_CODE_B.match(dispense_id)) and len(
        dispense_id) <= MAX_BARCODE_CHARS and fit_module(dispense_id, 384) >= 2
    code = dispense_id if fits else ""
    return Label("dispense", tr("labels.dispense.title"), tuple(lines), code)


def label_text(label: Label, width: int = 32) -> str:
    """The label as plain text, ``width`` columns (the screen's copy of the paper)."""
    rows = [label.title]
    if label.barcode:
        rows.append(f"[{label.barcode}]")
    for line in label.lines:
        rows.extend(_wrap(line, width))
    return "\n".join(rows) + "\n"


def label_escpos(label: Label, width_dots: int = 384) -> bytes:
    """ESC/POS bytes for ``label`` on a ``width_dots`` wide head (384: 58 mm paper,
    576: 80 mm).  The layout, byte by byte::

        1B 40                       ESC @      initialise
        1C 26                       FS &       Chinese character mode (text is GB18030)
        1B 61 01  1B 45 01          ESC a 1, ESC E 1   centred, bold
          <title, GB18030> 0A
        1B 45 00                    ESC E 0    bold off
        -- if label.barcode --
        1D 76 30 00 xL xH yL yH d…  GS v 0     raster image, normal size: x = bytes a
                                    row (width_dots / 8), y = rows; each byte eight dots,
                                    most significant bit leftmost, 1 = black.  The
                                    picture is :func:`code128_image` (module
                                    :func:`fit_module` dots, at most 3) centred in the
                                    full width: the same bars as the preview.
          <barcode data, ASCII> 0A  its human-readable line, centred
        --
        1B 61 00                    ESC a 0    left
          <line, GB18030> 0A …      each line wrapped to width_dots / 12 columns
        1B 64 04  1D 56 01          ESC d 4, GS V 1   feed 4 lines, partial cut

    ValueError when ``width_dots`` is not a positive multiple of 8 or the barcode cannot
    be printed that narrow (bad data, or too long for the paper).
    """
    if width_dots <= 0 or width_dots % 8:
        raise ValueError(f"width_dots must be a positive multiple of 8, not {width_dots}")
    out = bytearray(INIT + CHINESE_ON + CENTER + BOLD_ON)
    out += label.title.encode("gb18030", errors="replace") + b"\n" + BOLD_OFF
    if label.barcode:
        out += raster(label.barcode, width_dots)
        out += label.barcode.encode("ascii") + b"\n"
    out += LEFT
    columns = max(8, width_dots // DOTS_PER_COLUMN)
    for line in label.lines:
        for row in _wrap(line, columns):
            out += row.encode("gb18030", errors="replace") + b"\n"
    out += FEED_AND_CUT
    return bytes(out)


def raster(data: str, width_dots: int, height_dots: int = BAR_HEIGHT_DOTS) -> bytes:
    """``GS v 0`` for the symbol of ``data`` centred in ``width_dots`` (see
    :func:`label_escpos`)."""
    module = fit_module(data, width_dots, most=3)
    if module < 1:
        raise ValueError(f"{data!r} does not fit {width_dots} dots as Code 128")
    bars = len(code128_modules(data)) * module
    left = (width_dots - bars) // 2
    image = code128_image(data, module_dots=module, height_dots=height_dots, quiet_dots=left)
    canvas = Image.new("1", (width_dots, height_dots), 1)
    canvas.paste(image, (0, 0))
    packed = bytes(b ^ 0xFF for b in canvas.tobytes())  # PIL: 1 = white; printer: 1 = black
    x, y = width_dots // 8, height_dots
    return GS + b"v0\x00" + bytes((x & 0xFF, x >> 8, y & 0xFF, y >> 8)) + packed


_REASONS = {errno_.ENOENT: "missing", errno_.ENODEV: "missing", errno_.ENXIO: "missing",
            errno_.EACCES: "denied", errno_.EPERM: "denied", errno_.EROFS: "denied",
            errno_.EBUSY: "busy", errno_.EISDIR: "directory", errno_.ENOSPC: "full",
            errno_.EIO: "io"}


def print_label(label: Label, device: str, *, width_dots: int = 384,
                language: str = "zh") -> PrintResult:
    """Print ``label`` on ``device`` (a printer device or a file, appended to, as the
    receipt printer).  Never raises: no printer configured, a printer that is missing,
    busy or not writable, or a barcode the paper cannot hold each come back as
    ``PrintResult(False, warning)`` with the warning in ``language`` for the screen.
    Blocking (a device may stall): call it from a worker thread."""
    tr = Translator(language)
    if not device:
        return PrintResult(False, tr("labels.no_printer"))
    try:
        data = label_escpos(label, width_dots)
    except (ValueError, TypeError) as exc:
        return PrintResult(False, tr("labels.cannot_print", barcode=label.barcode, width=width_dots,
                                     reason=str(exc)))
    result = print_bytes(data, device)
    if result.printed:
        return result
    reason = tr(f"labels.err.{_REASONS.get(result.errno, 'other')}",
                detail=result.warning.removeprefix(f"{device}: "))
    return PrintResult(False, tr("labels.print_failed", device=device, reason=reason),
                       result.errno)

