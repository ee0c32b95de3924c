"""Labels (issue 14): specimen ids, Code 128 bars a real decoder reads back (PNG, SVG and
the printer's GS v 0 raster), GB18030 text, printing that never raises, zh and en."""

from __future__ import annotations

import datetime as dt
import io
import re
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
import zxingcpp
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from edge_node import labels as L
from edge_node.i18n import STRINGS, Translator
from edge_node.receipt import CHINESE_ON, FEED_AND_CUT, INIT
from edge_node.reports import cells

COLLECTED = 1_796_095_800_000  # 2026-12-01 11:30 in Asia/Shanghai
IDS = [
    "L01-2612010007",  # a lab counter's usual id
    "ABCDE-2612319999",  # 16 characters, the longest with a dash, the last sequence
    "LAB0012612010001",  # a 6-character tag: no dash, 16 characters
    "1234562612010042",  # digits only (all set C)
    "A1B2C32612010007",  # a 6-character tag ending in one digit: the widest symbol
    "1-2001010001",  # shortest tag, first day of the century
    "99-2612010007",  # a leading 99: python-barcode 0.16.1 drops it (its issue #251)
]


def decode(image: Image.Image) -> str | None:
    got = zxingcpp.read_barcode(image, formats=zxingcpp.BarcodeFormat.Code128, try_invert=False)
    return got.text if got is not None else None


def rasters(data: bytes) -> list[tuple[Image.Image, int, int]]:
    """Every ``GS v 0`` picture in ESC/POS ``data``: (image, start, end) with the bitmap
    rebuilt as PIL pixels (printer 1 = black → PIL 0)."""
    out, i = [], 0
    while (i := data.find(b"\x1dv0", i)) >= 0:
        assert data[i + 3] == 0  # m: normal size
        x, y = data[i + 4] | data[i + 5] << 8, data[i + 6] | data[i + 7] << 8
        bitmap = data[i + 8:i + 8 + x * y]
        assert len(bitmap) == x * y
        image = Image.frombytes("1", (x * 8, y), bytes(b ^ 0xFF for b in bitmap))
        out.append((image, i, i + 8 + x * y))
        i += 8 + x * y
    return out


def text_rows(data: bytes) -> list[str]:
    """The label's printed rows: the bytes outside the rasters, control codes dropped."""
    pics = rasters(data)
    plain, at = b"", 0
    for _, start, end in pics:
        plain += data[at:start]
        at = end
    plain += data[at:]
    for code in (INIT, CHINESE_ON, FEED_AND_CUT, b"\x1ba\x01", b"\x1ba\x00", b"\x1bE\x01",
                 b"\x1bE\x00"):
        plain = plain.replace(code, b"")
    return plain.decode("gb18030").split("\n")


def bar_runs(row: list[bool]) -> list[int]:
    """Widths of the runs of one pixel row (alternating, starting with a bar)."""
    first = row.index(True)
    last = len(row) - row[::-1].index(True)
    runs, prev, n = [], row[first], 0
    for v in row[first:last]:
        if v == prev:
            n += 1
        else:
            runs.append(n)
            prev, n = v, 1
    return [*runs, n]


def dark_row(image: Image.Image, y: int) -> list[bool]:
    return [image.getpixel((x, y)) == 0 for x in range(image.width)]


# -- specimen ids ---------------------------------------------------------------------------
def test_specimen_id_format_and_parse() -> None:
    assert L.specimen_id("L01", "2026-12-01", 7) == "L01-2612010007"
    assert L.specimen_id("LAB001", "2026-12-01", 7) == "LAB0012612010007"
    assert L.specimen_id("ABCDE", "2026-12-31", 9999) == "ABCDE-2612319999"
    for sid in IDS:
        parts = L.parse_specimen_id(sid)
        assert parts is not None and L.specimen_id(*parts) == sid
    assert L.parse_specimen_id(" l01-2612010007\n") == ("L01", "2026-12-01", 7)
    for bad in ("", "L01", "L01-2613010007", "L01-2602300001", "L01-2612010000",
                "ABCDEF-2612010007", "L01-261201-0007", "l01_2612010007", "L01-26120100071"):
        assert L.parse_specimen_id(bad) is None, bad
    for tag, day, n in (("l01", "2026-12-01", 1), ("ABCDEFG", "2026-12-01", 1),
                        ("", "2026-12-01", 1),
                        ("L-1", "2026-12-01", 1), ("L01", "2026-13-01", 1),
                        ("L01", "1999-12-31", 1), ("L01", "2100-01-01", 1),
                        ("L01", "20261201", 1), ("L01", "2026-02-30", 1),
                        ("L01", "2026-12-01", 0), ("L01", "2026-12-01", 10_000),
                        ("L01", "2026-12-01", True)):
        with pytest.raises(ValueError):
            L.specimen_id(tag, day, n)  # type: ignore[arg-type]


tags = st.from_regex(r"\A[A-Z0-9]{1,6}\Z")
days = st.dates(min_value=dt.date(2000, 1, 1), max_value=dt.date(2099, 12, 31)).map(str)
seqs = st.integers(1, 9999)


@settings(max_examples=400, deadline=None)
@given(tags, tags, days, seqs, seqs)
def test_two_counters_never_collide(a: str, b: str, day: str, n: int, m: int) -> None:
    """Two counters with different tags never give the same id on a day, whatever their
    sequences; each id is short, Code 128 set B, and parses back to what made it."""
    x, y = L.specimen_id(a, day, n), L.specimen_id(b, day, m)
    for sid, tag, k in ((x, a, n), (y, b, m)):
        assert len(sid) <= 16 and re.fullmatch(r"[A-Z0-9-]+", sid)
        assert L.parse_specimen_id(sid) == (tag, day, k)
    if a != b:
        assert x != y
    else:
        assert (x == y) == (n == m)


@settings(max_examples=60, deadline=None)
@given(tags, days, seqs)
def test_every_specimen_id_prints_two_dot_modules_on_58mm(tag: str, day: str, n: int) -> None:
    sid = L.specimen_id(tag, day, n)
    assert len(L.code128_modules(sid)) <= 178  # the widest: see fit_module
    assert L.fit_module(sid, 384) >= 2 and L.fit_module(sid, 576) >= 2
    (image, _, _), = rasters(L.raster(sid, 384))
    assert decode(image) == sid


def test_every_tag_shape_fits_58mm() -> None:
    """The symbol's width depends on where a tag has letters and digits: every shape of
    tag (letters A, digits 0 and 9, 1 to 6 long) gives at most 178 modules, two dots each
    on 384 dots, and decodes."""
    import itertools

    widest = 0
    for size in range(1, 7):
        for shape in itertools.product("A09", repeat=size):
            sid = L.specimen_id("".join(shape), "2026-12-01", 7)
            widest = max(widest, len(L.code128_modules(sid)))
            assert L.fit_module(sid, 384) >= 2, sid
            (image, _, _), = rasters(L.raster(sid, 384))
            assert decode(image) == sid
    assert widest == 178


# -- the symbol -----------------------------------------------------------------------------
@pytest.mark.parametrize("sid", IDS)
def test_png_decodes_to_the_id(sid: str) -> None:
    png = L.code128_png(sid)
    assert png.startswith(b"\x89PNG\r\n\x1a\n")
    image = Image.open(io.BytesIO(png))
    assert image.info["dpi"] == pytest.approx((203, 203), abs=0.5)
    assert decode(image) == sid
    modules = L.code128_modules(sid)
    # Start B/C, a checksum, then the stop pattern: the library's symbol, not ours.
    assert "".join("1" if m else "0" for m in modules).endswith("1100011101011")
    # Each module is exactly two dots: the pixel runs are the module runs doubled.
    assert bar_runs(dark_row(image, image.height // 2)) == [2 * r for r in bar_runs(modules)]
    assert image.width == 2 * (len(modules) + 2 * L.QUIET_MODULES)


@pytest.mark.parametrize("data", ["99", "9912345678", "999999", "99-A", "0099", "X99"])
def test_a_leading_99_is_kept(data: str) -> None:
    """python-barcode 0.16.1 folds a leading set-C "99" away as if it were CODE C;
    ours keeps it (and still starts in set B for letters)."""
    assert decode(Image.open(io.BytesIO(L.code128_png(data)))) == data
    (image, _, _), = rasters(L.raster(data, 384))
    assert decode(image) == data


def test_bad_barcode_data_is_refused() -> None:
    for bad in ("", "张三", "tab\there", "A" * 49):
        with pytest.raises(ValueError):
            L.code128_modules(bad)
        with pytest.raises(ValueError):
            L.code128_png(bad)
    assert L.fit_module("A" * 48, 384) == 0  # too long for 58 mm, even at one dot


def test_svg_is_xml_with_the_bars() -> None:
    sid = IDS[0]
    svg = L.code128_svg(sid)
    root = ET.fromstring(svg.encode("utf-8"))
    assert root.tag == "{http://www.w3.org/2000/svg}svg"
    bars = [r for r in root.iter("{http://www.w3.org/2000/svg}rect")
            if "black" in r.get("style", "")]
    assert len(bars) == len(bar_runs(L.code128_modules(sid))[::2])
    texts = [t.text for t in root.iter("{http://www.w3.org/2000/svg}text")]
    assert texts == [sid]
    assert root.get("width") == f"{(len(L.code128_modules(sid)) + 20) * 0.25:.3f}mm"
    assert sid not in "".join(t or "" for t in ET.fromstring(
        L.code128_svg(sid, text=False).encode()).itertext())


# -- labels ---------------------------------------------------------------------------------
def a_specimen(language: str = "zh", sid: str = IDS[0]) -> L.Label:
    return L.specimen_label(sid, name="欧阳娜娜", sex="F", age=45, patient_id="P00001234",
                            order_id="O-D01-0042", items=["血常规(五分类)", "C反应蛋白"],
                            specimen="静脉血 紫管", collected_ms=COLLECTED, language=language)


@pytest.mark.parametrize("width", [384, 576])
@pytest.mark.parametrize("sid", IDS)
def test_specimen_escpos_bars_decode_and_text_is_gb18030(sid: str, width: int) -> None:
    label = a_specimen(sid=sid)
    data = L.label_escpos(label, width)
    assert data.startswith(INIT + CHINESE_ON) and data.endswith(FEED_AND_CUT)
    (image, start, _), = rasters(data)
    assert image.size == (width, L.BAR_HEIGHT_DOTS)
    assert decode(image) == sid
    # The printed bars are the preview's: same runs, the module the paper allows.
    module = L.fit_module(sid, width, most=3)
    preview = L.code128_image(sid, module_dots=module)
    assert bar_runs(dark_row(image, 40)) == bar_runs(dark_row(preview, 40))
    for word in ("欧阳娜娜", "血常规(五分类)", "C反应蛋白", "静脉血 紫管", "检验标本"):
        assert word.encode("gb18030") in data
    assert "欧阳娜娜".encode() not in data
    rows = text_rows(data)
    assert rows[0] == "检验标本" and rows[1] == sid
    assert "欧阳娜娜  女  45岁" in rows and "采集时间: 2026-12-01 11:30" in rows
    assert all(cells(row) <= width // 12 for row in rows)
    assert data.index(b"\x1dv0") == start > data.index("检验标本".encode("gb18030"))


def test_long_lines_wrap_to_the_paper() -> None:
    many = [f"检验项目第{i}项" for i in range(12)]
    label = L.specimen_label(IDS[0], name="张三", patient_id="P1", order_id="O1", items=many,
                             collected_ms=COLLECTED)
    rows = text_rows(L.label_escpos(label, 384))
    assert all(cells(r) <= 32 for r in rows)
    assert "".join(rows).count("检验项目第") == 12
    assert L.label_text(label, 32).count("\n") > len(label.lines) + 1


def test_dispense_label_zh_and_en() -> None:
    common = {"name": "李四", "patient_id": "P9", "drug": "布洛芬缓释胶囊",
              "strength": "0.3g×24粒", "qty": 2, "unit": "盒", "unit_price": 1850, "dose": 1,
              "dose_unit": "粒", "per_day": 2, "days": 3, "order_id": "O-D01-0007",
              "pharmacy": "门诊西药房", "dispensed_ms": COLLECTED, "sex": "M", "age": 30}
    zh = L.dispense_label("X-P01-0003", **common)  # type: ignore[arg-type]
    assert zh.title == "用药标签" and zh.barcode == "X-P01-0003"
    assert zh.lines == ("李四  男  30岁", "病人号: P9", "药品: 布洛芬缓释胶囊 0.3g×24粒",
                        "数量: 2 盒", "用法: 每次 1 粒，每日 2 次，共 3 天",
                        "金额: ¥18.50 × 2 = ¥37.00", "申请单号: O-D01-0007",
                        "发药单号: X-P01-0003", "药房: 门诊西药房", "发药时间: 2026-12-01 11:30")
    en = L.dispense_label("X-P01-0003", language="en", **common)  # type: ignore[arg-type]
    assert en.title == "Medication label"
    assert "Take: 1 capsule, 2 times a day, 3 days" in en.lines
    assert "Quantity: 2 boxes" in en.lines and "李四  M  30 y" in en.lines
    data = L.label_escpos(zh, 576)
    (image, _, _), = rasters(data)
    assert decode(image) == "X-P01-0003"
    assert "布洛芬缓释胶囊".encode("gb18030") in data and "门诊西药房".encode("gb18030") in data
    # A dispense id Code 128 cannot carry prints without bars, never fails.
    for odd_id in ("发药-1", "X-pharmacy-west-01-000042"):  # not Code 128; too wide
        odd = L.dispense_label(odd_id, **common)  # type: ignore[arg-type]
        assert odd.barcode == "" and rasters(L.label_escpos(odd)) == []
        assert f"发药单号: {odd_id}" in odd.lines


def test_usage_in_both_languages() -> None:
    assert L.usage_text(1, "片", 3, 7) == "每次 1 片，每日 3 次，共 7 天"
    assert L.usage_text(1, "片", 3, 7, "en") == "1 tablet, 3 times a day, 7 days"
    assert L.usage_text(2, "片", 1, 1, "en") == "2 tablets, once a day, 1 day"
    assert L.usage_text(300, "mg", 2, 5) == "每次 300 mg，每日 2 次，共 5 天"
    assert L.usage_text(300, "mg", 2, 5, "en") == "300 mg, 2 times a day, 5 days"
    assert L.usage_text(0, "", 0, 0) == "遵医嘱"
    assert L.usage_text(1, "", 0, 3, "en") == "as directed"


@pytest.mark.parametrize("language", ["zh", "en"])
def test_every_label_string_translated(language: str) -> None:
    keys = [k for k in STRINGS if k.startswith("labels.")]
    assert len(keys) > 40
    for key in keys:
        zh, en = STRINGS[key]
        assert zh.strip() and en.strip(), key
        assert re.findall(r"{\w+}", zh) == re.findall(r"{\w+}", en) or key == "labels.usage"
    label = a_specimen(language)
    text = L.label_text(label)
    assert "[labels." not in text and "[labels." not in L.label_text(
        L.dispense_label("X1", name="n", patient_id="p", drug="d", qty=1, unit="盒",
                         unit_price=1, dose=1, dose_unit="片", per_day=1, days=1,
                         order_id="o", pharmacy="ph", dispensed_ms=0, language=language))
    if language == "en":
        assert label.title == "Lab specimen" and "Collected: 2026-12-01 11:30" in label.lines
        assert "欧阳娜娜  F  45 y" in label.lines
    else:
        assert label.title == "检验标本" and "标本: 静脉血 紫管" in label.lines


def test_every_key_the_module_asks_for_exists() -> None:
    source = Path(L.__file__).read_text(encoding="utf-8")
    used = set(re.findall(r"""tr\(\s*["'](labels\.[a-z_.]+)["']""", source))
    used |= {f"labels.err.{r}" for r in {*L._REASONS.values(), "other"}}
    used |= {"labels.sex.M", "labels.sex.F", "labels.specimen.title", "labels.dispense.title"}
    assert len(used) > 25
    assert not sorted(k for k in used if k not in STRINGS)


# -- printing -------------------------------------------------------------------------------
def test_print_label_to_a_file_appends_the_escpos(tmp_path: Path) -> None:
    label, out = a_specimen(), tmp_path / "labels.escpos"
    assert L.print_label(label, str(out)) == L.PrintResult(True)
    assert L.print_label(label, str(out), width_dots=576).printed
    assert out.read_bytes() == L.label_escpos(label) + L.label_escpos(label, 576)
    assert [decode(image) for image, _, _ in rasters(out.read_bytes())] == [IDS[0], IDS[0]]


def test_a_bad_printer_is_a_message_not_an_exception(tmp_path: Path) -> None:
    label = a_specimen()
    missing = L.print_label(label, "/dev/onecard-no-such-label-printer")
    assert not missing.printed and "找不到打印机" in missing.warning
    assert "/dev/onecard-no-such-label-printer" in missing.warning
    assert not Path("/dev/onecard-no-such-label-printer").exists()
    nodir = L.print_label(label, str(tmp_path / "gone" / "printer"), language="en")
    assert not nodir.printed and "printer not found" in nodir.warning
    isdir = L.print_label(label, str(tmp_path), language="en")
    assert not isdir.printed and "a directory, not a printer" in isdir.warning
    (tmp_path / "file").write_bytes(b"")
    notdir = L.print_label(label, str(tmp_path / "file" / "printer"), language="en")
    assert not notdir.printed and notdir.warning.startswith("Label not printed")
    assert "write failed: Not a directory" in notdir.warning
    unset = L.print_label(label, "")
    assert not unset.printed and unset.warning == Translator("zh")("labels.no_printer")
    # Bars the paper cannot hold, or a width that is no printer's: a message as well.
    wide = L.Label("specimen", "t", ("x",), "A" * 40)
    result = L.print_label(wide, str(tmp_path / "p"), language="en")
    assert not result.printed and "cannot be printed 384 dots wide" in result.warning
    assert not L.print_label(label, str(tmp_path / "p"), width_dots=100).printed
    assert not (tmp_path / "p").exists()
    with pytest.raises(ValueError):
        L.label_escpos(wide)
