"""The catalogue at central: `onecard-central catalogue import|show`.

Every bad line of the hospital's export is named with its file, line and column (in
central's language) and nothing is published if one is bad; the shipped sample imports
cleanly; Chinese headers and GB18030 files are read; a real import into a real central
store reaches a real counter by sync, and a second import moves it to version 2.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from central import catalogue
from central.cli import main
from central.config import CentralConfig
from protocol import catalogue as cat
from protocol.domain import REGISTRY
from protocol.event import CENTRAL, Event, decode_event
from tests.support.sync_cluster import Central, Counter, run_cli, wait_for


# --------------------------------------------------------------------------- helpers
@pytest.fixture
def site(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> Path:
    """A fresh central (English messages, as the other central command tests read)."""
    cfg = tmp_path / "central" / "central.toml"
    assert main(["--config", str(cfg), "init", "--dir", str(cfg.parent)]) == 0
    capsys.readouterr()
    text = cfg.read_text(encoding="utf-8")
    cfg.write_text(text.replace('language = "zh"', 'language = "en"', 1), encoding="utf-8")
    return cfg


def _zh(cfg: Path) -> None:
    text = cfg.read_text(encoding="utf-8")
    cfg.write_text(text.replace('language = "en"', 'language = "zh"', 1), encoding="utf-8")


def _events(cfg: Path) -> list[Event]:
    db = CentralConfig.load(cfg).db
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as c:
        rows = c.execute("SELECT data FROM events WHERE node = 'central' ORDER BY seq")
        return [decode_event(bytes(r[0])) for r in rows]


def _write(folder: Path, files: dict[str, str], encoding: str = "utf-8") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        (folder / name).write_bytes(text.encode(encoding))
    return folder


def _import(cfg: Path, capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    status = main(["--config", str(cfg), "catalogue", "import", *args, "--operator", "it.li"])
    out = capsys.readouterr()
    return status, out.out, out.err


DEPTS = """code,name,type
IM,内科,clinic
LAB,检验科,lab
PHA-OP,门诊西药房,pharmacy
"""
ITEMS = """code,type,name,unit,price,insurance,dept,dose_unit,max_single,max_daily,allergen
REG-GEN,registration,普通挂号,次,5.00,甲,,,,,
CONSULT,consultation,诊查费,次,10,甲,,,,,
LAB-CBC,lab,血常规,次,25.00,甲,LAB,,,,
D-AMX,drug,阿莫西林胶囊,盒,18.50,甲,PHA-OP,mg,1000,4000,青霉素类
D-IBU,drug,布洛芬缓释胶囊,盒,12.6,甲,PHA-OP,mg,600,1200,
"""
DOCTORS = """doctor_id,name,dept,title,fee_code
dr.zhao,赵敏,IM,主任医师,REG-GEN
"""
SESSIONS = """doctor_id,weekday,period,capacity
dr.zhao,1,am,30
"""
TEMPLATES = """code,name,type,dept,item,qty,dose,per_day,days
TPL-URI,上呼吸道感染,prescription,IM,D-IBU,1,300,2,3
TPL-URI,上呼吸道感染,prescription,IM,D-AMX,1,500,3,5
TPL-FEVER,发热检查,requisition,IM,LAB-CBC,1,,,
"""
GOOD = {"depts.csv": DEPTS, "items.csv": ITEMS, "doctors.csv": DOCTORS,
        "sessions.csv": SESSIONS, "templates.csv": TEMPLATES}

#: One bad line for each thing the import refuses (and the line it is on).
BAD = {
    "depts.csv": DEPTS + "RAD,放射科,xray\n",  # line 5: unknown department type
    "items.csv": ITEMS + "\n".join((
        "LAB-CRP,lab,C反应蛋白,次,abc,乙,LAB,,,,",  # 7: not a price
        "LAB-GLU,lab,空腹血糖,次,8.005,甲,LAB,,,,",  # 8: three decimals
        "LAB-UA,lab,尿常规,次,,甲,LAB,,,,",  # 9: price missing
        "RAD-CT,scan,头颅CT,次,260.00,丙,LAB,,,,",  # 10: unknown type
        "D-AZI,drug,阿奇霉素片,盒,9.80,丁,PHA-OP,mg,500,500,",  # 11: unknown insurance class
        "D-AMX,drug,阿莫西林胶囊,盒,18.50,甲,PHA-OP,mg,1000,4000,",  # 12: repeats line 5
        "D-VITC,drug,维生素C片,瓶,3.50,丙,PHA-OP,mg,1000,300,",  # 13: max_daily < max_single
        "LAB-HBV,lab,乙肝五项,次,60.00,甲,XRAY,,,,",  # 14: dept not a department
        "D-LVX,drug,左氧氟沙星片,盒,8.90,甲,LAB,mg,750,750,",  # 15: a drug not in a pharmacy
        "D-COL,drug,秋水仙碱片,盒,5.60,甲,PHA-OP,mg,0.5,1.5,",  # 16: not whole numbers
        "D-LONG,drug," + "长" * 65 + ",盒,1.00,甲,PHA-OP,mg,,,",  # 17: name too long
        "D-NEG,drug,负价药,盒,-1.00,甲,PHA-OP,mg,,,",  # 18: negative price
    )) + "\n",
    "doctors.csv": DOCTORS + "dr.qian,钱程,SURG,住院医师,REG-GEN\n"  # 3: unknown dept
                             "dr.sun,孙丽,IM,主治医师,LAB-CBC\n",  # 4: fee not registration
    "sessions.csv": SESSIONS + "dr.wu,2,pm,20\n"  # 3: unknown doctor
                               "dr.zhao,周一,上午,30\n",  # 4: repeats line 2 (in Chinese)
    "templates.csv": TEMPLATES + "TPL-DM,糖尿病随访,requisition,IM,LAB-NOPE,1,,,\n"  # 5
                                 "TPL-RX,处方,prescription,IM,LAB-CBC,1,,,\n"  # 6: not a drug
                                 "TPL-DOSE,剂量,prescription,IM,D-IBU,1,800,1,1\n"  # 7
                                 "TPL-FEVER,发烧,requisition,IM,LAB-CBC,1,,,\n"  # 8: mixed
                                 "TPL-X,空,requisition,IM,,1,,,\n",  # 9: no item
}
EXPECTED_EN = [
    "depts.csv line 5, type: xray is not one of clinic, lab, exam, pharmacy, admin"
    " (Chinese words: docs/catalogue.md)",
    "items.csv line 7, price: abc is not a price: write yuan, e.g. 18.50",
    "items.csv line 8, price: 8.005 has more than 2 decimals: prices are in fen",
    "items.csv line 9, price: required, but empty",
    "items.csv line 10, type: scan is not one of registration, consultation, service, exam,"
    " lab, drug (Chinese words: docs/catalogue.md)",
    "items.csv line 11, insurance: 丁 is not one of 甲, 乙, 丙 (Chinese words:"
    " docs/catalogue.md)",
    "items.csv line 12, code: D-AMX repeats line 5",
    "items.csv line 13, max_daily: the daily maximum is below the single maximum",
    "items.csv line 14, dept: XRAY is not a department (not in depts.csv)",
    "items.csv line 15, dept: LAB is not a pharmacy: a drug is dispensed by a pharmacy",
    "items.csv line 16, max_single: 0.5 is not a whole number (for a fractional dose use a"
    " smaller dose unit, e.g. mg)",
    "items.csv line 16, max_daily: 1.5 is not a whole number (for a fractional dose use a"
    " smaller dose unit, e.g. mg)",
    "items.csv line 17, name: too long: 65 characters, at most 64",
    "items.csv line 18, price: -1.00 is negative: a price cannot be below zero",
    "doctors.csv line 3, dept: SURG is not a department (not in depts.csv)",
    "doctors.csv line 4, fee_code: LAB-CBC is not a registration fee item",
    "sessions.csv line 3, doctor_id: dr.wu is not a doctor (not in doctors.csv)",
    "sessions.csv line 4, weekday: dr.zhao 1 am repeats line 2",
    "templates.csv line 5, item: LAB-NOPE is not an item (not in items.csv)",
    "templates.csv line 6, item: LAB-CBC is not a drug: a prescription template lists drugs",
    "templates.csv line 7, dose: D-IBU: 800 mg a time is above its maximum 600 mg",
    "templates.csv line 8, name: differs from line 4 of the same template",
    "templates.csv line 9, item: required, but empty",
    "23 error(s) in 22 line(s): nothing published",
]


# ------------------------------------------------------------------ bad lines refused
def test_every_bad_line_is_named_with_file_line_and_column_and_nothing_published(
        site: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    folder = _write(tmp_path / "bad", BAD)
    status, out, err = _import(site, capsys, str(folder))
    assert status == 1
    assert err.splitlines() == EXPECTED_EN
    assert "published" not in out
    assert _events(site) == []
    # a dry run says the same, and a good folder beside it would publish
    status, _, err = _import(site, capsys, str(folder), "--dry-run")
    assert status == 1 and err.splitlines() == EXPECTED_EN


def test_each_bad_line_alone_stops_the_whole_import(
        site: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """One bad line is enough: whichever it is, not one event is signed."""
    for name, text in BAD.items():
        one_bad = {**GOOD, name: text}
        status, _, err = _import(site, capsys, str(_write(tmp_path / name, one_bad)))
        assert status == 1, name
        assert err.splitlines()[-1].endswith("nothing published"), err
        assert all(line.startswith(name) for line in err.splitlines()[:-1]), err
    assert _events(site) == []


def test_bad_lines_in_chinese(site: Path, tmp_path: Path,
                              capsys: pytest.CaptureFixture[str]) -> None:
    _zh(site)
    status, _, err = _import(site, capsys, str(_write(tmp_path / "bad", BAD)))
    assert status == 1
    lines = err.splitlines()
    assert "items.csv 第 8 行，price：8.005 超过两位小数：价格精确到分" in lines
    assert "items.csv 第 12 行，code：D-AMX 与第 5 行重复" in lines
    assert "items.csv 第 14 行，dept：XRAY 不是科室（depts.csv 中没有）" in lines
    assert "sessions.csv 第 3 行，doctor_id：dr.wu 不是医生（doctors.csv 中没有）" in lines
    assert "templates.csv 第 5 行，item：LAB-NOPE 不是价目项目（items.csv 中没有）" in lines
    assert "items.csv 第 13 行，max_daily：每日最大剂量小于单次最大剂量" in lines
    assert lines[-1] == "23 处错误，涉及 22 行：未发布任何内容"
    assert _events(site) == []


def test_a_file_unusable_as_a_whole_says_why(site: Path, tmp_path: Path,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    no_items = _write(tmp_path / "none", {"depts.csv": DEPTS})
    assert _import(site, capsys, str(no_items))[0] == 1
    status, _, err = _import(site, capsys, str(tmp_path / "nowhere"))
    assert status == 2 and "no such file" in err
    short = _write(tmp_path / "short", {"items.csv": "code,name,price\nA,甲,1\n"})
    status, _, err = _import(site, capsys, str(short / "items.csv"))
    assert status == 1 and "the header lacks column(s) type, unit" in err
    garbage = tmp_path / "garbage.csv"
    garbage.write_bytes(ITEMS.encode() + b"\xff\xff\xff\n")
    status, _, err = _import(site, capsys, str(garbage))
    assert status == 1 and "neither UTF-8 nor GB18030 (line 7)" in err
    assert _events(site) == []


@pytest.mark.parametrize(("text", "fen"), [("0", 0), ("5", 500), ("18.5", 1850),
                                           ("18.50", 1850), ("0.01", 1), ("¥1,234.56", 123456),
                                           ("100000000.00", 10_000_000_000)])
def test_prices_in_yuan_become_fen_exactly(text: str, fen: int) -> None:
    assert catalogue.price_fen(text) == fen


@pytest.mark.parametrize("text", ["1.", "1.2.3", "1e3", "12.345", "-0.01", "100000000.01",
                                  "18,5O"])
def test_a_price_that_is_not_exact_yuan_is_refused(text: str) -> None:
    assert isinstance(catalogue.price_fen(text), tuple)


# ------------------------------------------------------------------ what is published
def test_the_sample_imports_cleanly_with_a_realistic_catalogue() -> None:
    parsed = catalogue.read_files(catalogue.source_files(catalogue.SAMPLE))
    assert parsed.errors == [] and parsed.ignored == []
    from protocol.core import State

    p, errors = catalogue.plan(parsed, State(), charge_at=None, note="")
    assert errors == []
    e = p.entries
    assert len(e["items"]) >= 300
    types = {t: sum(1 for i in e["items"] if i["type"] == t) for t in cat.ITEM_TYPES}
    assert types["drug"] >= 150 and types["lab"] >= 60 and types["exam"] >= 40
    assert types["registration"] >= 4 and types["consultation"] >= 1
    codes = {i["code"]: i for i in e["items"]}
    assert {c: codes[c]["price"] for c in ("REG-GEN", "REG-VICE", "REG-EXP")} == {
        "REG-GEN": 500, "REG-VICE": 1000, "REG-EXP": 1500}
    assert "CONSULT" in codes and "REG-ER" in codes
    depts = {d["code"]: d["type"] for d in e["depts"]}
    assert {"IM", "SURG", "PED", "LAB", "RAD", "PHA-OP", "PHA-ER", "US"} <= set(depts)
    assert len(depts) >= 12 and len(e["doctors"]) >= 25 and len(e["templates"]) >= 10
    assert {d["doctor_id"] for d in e["doctors"]} >= {"dr.zhao", "dr.qian", "dr.sun"}
    allergens = {i.get("allergen") for i in e["items"]}
    assert {"青霉素类", "头孢菌素类", "磺胺类", "喹诺酮类", "大环内酯类"} <= allergens
    assert {i.get("insurance") for i in e["items"]} == {"甲", "乙", "丙"}
    assert codes["D-AMX"]["pinyin"] == "amxljn"  # computed: the column is empty
    # every event is one central's own check takes, as a counter's fold will
    for kind, body in p.events:
        assert REGISTRY.validate(kind, body, CENTRAL) == [], kind
    assert p.pages >= 2  # a few hundred entries do not fit one event


def test_chinese_headers_and_words_in_a_gb18030_file(
        site: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    folder = _write(tmp_path / "gbk", {
        "depts.csv": "编码,名称,类别\nIM,内科,临床\nPHA-OP,门诊西药房,药房\n",
        "items.csv": "编码,类别,名称,拼音码,单位,单价,医保类别,执行科室,剂型,规格,剂量单位,"
                     "最大单次剂量,最大日剂量,库存单位,过敏类别,备注\n"
                     "REG-GEN,挂号,普通挂号,,次,5.00,甲类,,,,,,,,,\n"
                     "D-AMX,药品,阿莫西林胶囊,,盒,18.50,甲,PHA-OP,胶囊,0.25g×24粒,mg,1000,4000,"
                     "盒,青霉素类,集采\n"
                     "D-VITC,药品,维生素C片,WSSC,瓶,3.5,自费,PHA-OP,片,0.1g×100片,mg,,,瓶,,\n",
        "doctors.csv": "工号,姓名,科室,职称,挂号费项目\ndr.zhao,赵敏,IM,主任医师,REG-GEN\n",
        "sessions.csv": "医生,星期,时段,限号\ndr.zhao,周三,下午,25\n",
        "templates.csv": "编码,名称,类别,科室,项目,数量,单次剂量,每日次数,天数\n"
                         "TPL-A,抗感染,处方,IM,D-AMX,1,500,3,5\n",
    }, encoding="gb18030")
    status, out, err = _import(site, capsys, str(folder), "--charge-at", "execution",
                               "--note", "首次导入")
    assert status == 0, err
    assert "ignored column(s): items.csv: 备注" in out
    assert "items       3 (registration 1, drug 2)" in out
    events = _events(site)
    assert [ev.kind for ev in events] == ["catalogue.published", "catalogue.page"]
    assert events[0].body == {"version": 1, "pages": 1, "charge_at": "execution",
                              "note": "首次导入"}
    page = events[1].body
    items = {i["code"]: i for i in page["items"]}
    assert items["D-AMX"] == {
        "code": "D-AMX", "type": "drug", "name": "阿莫西林胶囊", "pinyin": "amxljn",
        "unit": "盒", "price": 1850, "insurance": "甲", "dept": "PHA-OP", "form": "胶囊",
        "strength": "0.25g×24粒", "dose_unit": "mg", "max_single": 1000, "max_daily": 4000,
        "stock_unit": "盒", "allergen": "青霉素类"}
    assert items["REG-GEN"]["insurance"] == "甲" and items["REG-GEN"]["price"] == 500
    assert items["D-VITC"]["price"] == 350 and items["D-VITC"]["pinyin"] == "WSSC"
    assert "insurance" not in items["D-VITC"]  # 自费: on no list
    assert page["depts"][0] == {"code": "IM", "name": "内科", "pinyin": "nk", "type": "clinic"}
    assert page["sessions"] == [{"doctor_id": "dr.zhao", "weekday": 3, "period": "pm",
                                 "capacity": 25}]
    assert page["templates"][0]["type"] == "prescription"
    # a UTF-8 file with a BOM (what a spreadsheet saves) reads the same
    bom = _write(tmp_path / "bom", {**GOOD, "items.csv": "\ufeff" + ITEMS})
    status, out, err = _import(site, capsys, str(bom), "--dry-run")
    assert status == 0, err
    assert "version     2" in out and "items       5" in out


def test_dry_run_publishes_nothing_and_versions_follow_the_store(
        site: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    folder = _write(tmp_path / "good", GOOD)
    status, out, _ = _import(site, capsys, str(folder), "--dry-run")
    assert status == 0
    assert "version     1" in out and "dry run: every line checks out" in out
    assert _events(site) == []
    assert main(["--config", str(site), "catalogue", "show"]) == 0
    assert "no catalogue yet" in capsys.readouterr().out

    status, out, _ = _import(site, capsys, str(folder), "--note", "v1")
    assert status == 0
    assert "version     1" in out and "events      2 signed by central" in out
    assert "catalogue version 1 published" in out
    # the second: just a price list; the rest carried over from version 1
    items2 = ITEMS.replace("D-AMX,drug,阿莫西林胶囊,盒,18.50", "D-AMX,drug,阿莫西林胶囊,盒,16.80")
    single = _write(tmp_path / "prices", {"new-prices.csv": items2}) / "new-prices.csv"
    status, out, _ = _import(site, capsys, str(single), "--charge-at", "execution")
    assert status == 0
    assert "version     2" in out
    assert "carried over from version 1: departments, doctors, sessions, templates" in out
    events = _events(site)
    assert {ev.operator for ev in events} == {"it.li"}
    state = REGISTRY.fold(events)
    assert cat.head(state).version == cat.vkey(2) and cat.head(state).charge_at == "execution"
    assert cat.priced(state, 2, "D-AMX").price == 1680  # type: ignore[union-attr]
    assert cat.priced(state, 1, "D-AMX").price == 1850  # type: ignore[union-attr]
    assert state.get(cat.Doctor, (cat.vkey(2), "dr.zhao")) is not None
    tpl = state.get(cat.Template, (cat.vkey(2), "TPL-URI"))
    assert tpl is not None and tpl.parsed() == [("D-IBU", 1, 300, 2, 3), ("D-AMX", 1, 500, 3, 5)]

    # a price list dropping an item a carried-over template names: refused, said so
    dropped = _write(tmp_path / "dropped", {"items.csv": ITEMS.replace(
        "D-IBU,drug,布洛芬缓释胶囊,盒,12.6,甲,PHA-OP,mg,600,1200,\n", "")})
    status, _, err = _import(site, capsys, str(dropped))
    assert status == 1
    assert err.splitlines()[0] == ("templates TPL-URI carried over from version 2, item: D-IBU"
                                   " is not an item (not in items.csv)")
    assert len(_events(site)) == len(events)

    assert main(["--config", str(site), "catalogue", "show"]) == 0
    shown = capsys.readouterr().out.splitlines()
    assert shown[0] == "version     2"
    assert shown[2] == "charged     when executed"
    assert shown[3] == "items       5 (registration 1, consultation 1, lab 1, drug 2)"
    assert shown[4:8] == ["departments 3", "doctors     1", "sessions    1", "templates   2"]


def test_a_first_price_list_alone_cannot_name_departments(
        site: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Nothing to carry over yet: an item's department must come with the file."""
    single = _write(tmp_path / "p", {"items.csv": ITEMS}) / "items.csv"
    status, _, err = _import(site, capsys, str(single))
    assert status == 1
    assert "items.csv line 4, dept: LAB is not a department (not in depts.csv)" in err
    assert _events(site) == []


# --------------------------------------------------------------- a counter syncs it
def _head(counter: Counter) -> str:
    with sqlite3.connect(f"file:{counter.db}?mode=ro", uri=True, timeout=10) as c:
        row = c.execute("SELECT version FROM catalogue_head").fetchone()
        return str(row[0]) if row else ""


def _item(counter: Counter, version: int, code: str) -> tuple[str, int] | None:
    with sqlite3.connect(f"file:{counter.db}?mode=ro", uri=True, timeout=10) as c:
        row = c.execute("SELECT name, price FROM catalogue_items WHERE version = ? AND code = ?",
                        (cat.vkey(version), code)).fetchone()
        return (str(row[0]), int(row[1])) if row else None


@pytest.mark.slow
def test_a_counter_syncs_the_imported_catalogue_and_moves_to_the_next(tmp_path: Path) -> None:
    central = Central.init(tmp_path / "central")
    r = run_cli("--config", str(central.config), "catalogue", "import", "--sample",
                "--operator", "it.li", timeout=120)
    assert r.returncode == 0, r.stderr
    counter = Counter.create(tmp_path, "cashier-01", central)
    central.start()
    try:
        counter.start_sync()
        wait_for(lambda: _head(counter) == cat.vkey(1), 60, "the counter to hold version 1")
        assert _item(counter, 1, "D-AMX") == ("阿莫西林胶囊", 850)
        with sqlite3.connect(f"file:{counter.db}?mode=ro", uri=True) as c:
            n = c.execute("SELECT COUNT(*) FROM catalogue_items WHERE version = ?",
                          (cat.vkey(1),)).fetchone()[0]
        assert n >= 300

        # a new price list, published while central serves and the counter syncs
        items = (catalogue.SAMPLE / "items.csv").read_text(encoding="utf-8")
        changed = items.replace("D-AMX,drug,阿莫西林胶囊,,盒,8.50",
                                "D-AMX,drug,阿莫西林胶囊,,盒,9.20")
        assert changed != items
        path = tmp_path / "prices.csv"
        path.write_text(changed, encoding="utf-8")
        r = run_cli("--config", str(central.config), "catalogue", "import", str(path),
                    "--operator", "it.li", timeout=120)
        assert r.returncode == 0, r.stderr
        assert "version     2" in r.stdout or "价目表版本 2" in r.stdout
        wait_for(lambda: _head(counter) == cat.vkey(2), 60, "the counter to move to version 2")
        assert _item(counter, 2, "D-AMX") == ("阿莫西林胶囊", 920)
        assert _item(counter, 1, "D-AMX") == ("阿莫西林胶囊", 850)  # version 1 kept
        with sqlite3.connect(f"file:{counter.db}?mode=ro", uri=True) as c:
            docs = c.execute("SELECT COUNT(*) FROM catalogue_doctors WHERE version = ?",
                             (cat.vkey(2),)).fetchone()[0]
        assert docs == 25  # carried over from version 1
        conflicts = run_cli("--config", str(central.config), "conflicts", "list", "--all")
        assert conflicts.stdout.strip().endswith("0 conflict(s)"), conflicts.stdout
    finally:
        counter.stop()
        central.stop()


def test_the_documented_examples_check_out(tmp_path: Path) -> None:
    """Both examples of docs/catalogue.md (English and Chinese headers) read cleanly and
    publish the same catalogue."""
    import re

    doc = (Path(__file__).resolve().parents[1] / "docs" / "catalogue.md").read_text("utf-8")
    blocks = [b for b in re.findall(r"```\n(.*?)```", doc, re.S) if "# items.csv" in b]
    assert len(blocks) == 2
    made = []
    for i, block in enumerate(blocks):
        files = {m.group(1): m.group(2).strip() + "\n"
                 for m in re.finditer(r"# (\w+\.csv)\n(.*?)(?=\n# |\Z)", block, re.S)}
        assert set(files) == {f"{n}.csv" for n in catalogue.LISTS}
        parsed = catalogue.read_files(catalogue.source_files(_write(tmp_path / str(i), files)))
        assert parsed.errors == [] and parsed.ignored == []
        from protocol.core import State

        plan, errors = catalogue.plan(parsed, State(), charge_at=None, note="")
        assert errors == []
        made.append(plan.events)
    assert made[0] == made[1]
