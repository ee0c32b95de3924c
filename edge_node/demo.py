"""A counter to try in a minute: temp ledger, sample patients, price list, simulated reader.

``python -m edge_node.demo`` (``make demo``): log in as ``demo`` / PIN ``1234``, press
Ctrl+T to tap the next demo card on the simulated reader, then use the function keys;
Ctrl+B puts a blank card on the reader (F2 issues it to a new patient).  Demo cards are
signed chip cards for the seeded patients, and keep what the counter writes to them
(wallet stamps) from tap to tap, like real plastic.
Everything lives in a temporary directory that is removed on exit (``--keep DIR`` to
keep it, e.g. for a sync daemon to run beside it).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
from pathlib import Path
from typing import Any, ClassVar

from textual.binding import Binding, BindingType

from edge_node import staff
from edge_node.config import EdgeConfig, write_key
from edge_node.ledger import Ledger
from edge_node.service import CounterService
from edge_node.tui.app import CounterApp
from edge_node.tui.cardsource import TypedCardSource
from protocol.crypto import SigningKey

NODE = "demo-cashier"
DEMO_PATIENTS = [
    # name, national id, phone, card, first deposit (fen)
    ("张三", "110101199003070011", "13800138000", "8600000001", 50_000),
    ("李梅", "11010519491231002X", "13912345678", "8600000002", 2_000),
    ("王芳", "", "13700001111", "8600000003", 100_000),
]


async def seed(config: EdgeConfig, key: SigningKey) -> dict[str, str]:
    """Staff ``demo``/1234 (cashier) and ``boss``/9999 (supervisor), three patients.

    Returns card number → patient id (the demo cards are issued with the real ids).
    """
    ledger = await Ledger.open(config.db, config.node_id, key, rule_config=config.rules)
    try:
        cheap = staff.cheap_hasher()  # a throwaway demo: no need for a slow hash
        await staff.add_staff(ledger, "demo", "演示收费员", "1234", hasher=cheap)
        await staff.add_staff(ledger, "boss", "演示主管", "9999", role="supervisor",
                              hasher=cheap)
        svc = CounterService(ledger, "demo")
        patients: dict[str, str] = {}
        for name, nid, phone, card, amount in DEMO_PATIENTS:
            extra = {} if nid else {"sex": "F", "birth_date": "1985-06-15"}
            r = await svc.register_patient(name=name, national_id=nid, phone=phone,
                                           card_no=card, first_deposit=amount, method="cash",
                                           **extra)
            patients[card] = r.patient.patient_id
        await svc.charge("8600000001", [{"code": "REG01", "name": "普通门诊挂号费", "qty": 1,
                                         "unit_price": 500}], "门诊收费")
    finally:
        await ledger.close()
    return patients


class DemoCards:
    """The demo's plastic: signed chips for the seeded patients, and blank ones.

    What the counter writes to a card on the reader (issue, wallet stamps) stays on it
    when the next card is tapped, so a card's stamp is there at its next tap.
    """

    def __init__(self, key: SigningKey, patients: dict[str, str]) -> None:
        from edge_node.card.layout import EF_CARD, frame, issue_card
        from edge_node.card.reader import SimulatedReader

        self.reader = SimulatedReader("Demo reader")
        self.images: dict[bytes, dict[int, bytes]] = {}
        self._uid: bytes | None = None
        self._blanks = 0
        for card_no, pid in patients.items():
            uid = self.uid_of(card_no)
            card = issue_card(key, NODE, card_no=card_no, patient_no=pid, issued_ms=0, uid=uid)
            self.images[uid] = {EF_CARD: frame(card.to_bytes())}

    @staticmethod
    def uid_of(card_no: str) -> bytes:
        return bytes.fromhex(card_no[-8:].rjust(8, "0"))

    def _keep_current(self) -> None:
        from edge_node.card.layout import EF_CARD, EF_STAMP
        from edge_node.card.reader import NoCard

        if self._uid is None:
            return
        try:
            self.images[self._uid] = {fid: self.reader.content(fid)
                                      for fid in (EF_CARD, EF_STAMP)}
        except NoCard:
            pass

    def _present(self, uid: bytes) -> None:
        self._keep_current()
        self._uid = uid
        self.reader.present(uid, self.images.get(uid, {}))

    def tap(self, card_no: str) -> None:
        """Put that demo card on the reader (an event follows)."""
        self._present(self.uid_of(card_no))

    def blank(self) -> str:
        """Put a new blank card on the reader (to issue at registration or replacement);
        returns the number printed on it."""
        self._blanks += 1
        self._present(bytes([0x04, 0xB1, 0xA4, 0x4B, self._blanks & 0xFF, self._blanks >> 8]))
        return f"861{self._blanks:07d}"


def make_reader(key: SigningKey, patients: dict[str, str] | None = None) -> tuple[Any, Any]:
    """The card package's simulated chip reader if present, else a typed-number source.

    Returns ``(reader, cards)`` where ``cards.tap(card_no)`` puts that demo card on the
    reader (``cards.blank()`` a blank one).
    """
    try:
        cards = DemoCards(key, patients or {})
    except ImportError:
        typed = TypedCardSource()
        return typed, typed
    return cards.reader, cards


class DemoCounterApp(CounterApp):
    """The counter app plus Ctrl+T: tap the next demo card; Ctrl+B: a blank card (in the
    new-patient and replace-card forms it also fills in the card's number)."""

    BINDINGS: ClassVar[list[BindingType]] = [
        *CounterApp.BINDINGS,
        Binding("ctrl+t", "tap_demo_card", "Tap demo card", priority=True),
        # not priority: a form with a card number field binds Ctrl+B itself (and fills it)
        Binding("ctrl+b", "blank_demo_card", "Blank card"),
    ]
    KEY_LABELS: ClassVar[dict[str, str]] = {**CounterApp.KEY_LABELS,
                                            "tap_demo_card": "key.tap_demo",
                                            "blank_demo_card": "key.blank_card"}

    def __init__(self, config: EdgeConfig, cards: Any, **kw: Any) -> None:
        kw.setdefault("blanks", getattr(cards, "blank", None))
        super().__init__(config, **kw)
        self.cards = cards
        self._next = 0

    def action_tap_demo_card(self) -> None:
        card = DEMO_PATIENTS[self._next % len(DEMO_PATIENTS)][3]
        self._next += 1
        self.cards.tap(card)

    def action_blank_demo_card(self) -> None:
        if self.blanks is not None:
            card = self.blanks()
            if self.home is not None and self.screen is self.home:
                self.home.say(self.tr("home.blank_on_reader", card=card))


def build(directory: Path, language: str = "zh") -> tuple[EdgeConfig, DemoCounterApp]:
    """A seeded demo counter in ``directory`` and its app (not yet running)."""
    key = SigningKey.generate()
    config = EdgeConfig(node_id=NODE, db=directory / "ledger.sqlite3",
                        key_file=directory / "node.key", language=language,
                        printer=str(directory / "receipts.escpos"))
    write_key(config.key_file, key)
    patients = asyncio.run(seed(config, key))
    reader, cards = make_reader(key, patients)
    return config, DemoCounterApp(config, cards, reader=reader)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m edge_node.demo",
                                description=__doc__.splitlines()[0])
    p.add_argument("--language", choices=("zh", "en"), default="zh")
    p.add_argument("--keep", metavar="DIR", help="put the demo counter in DIR and keep it")
    args = p.parse_args(argv)
    if args.keep:
        directory = Path(args.keep)
        directory.mkdir(parents=True, exist_ok=True)
        _config, app = build(directory, args.language)
        app.run()
        print(f"demo counter kept in {directory}")
        return 0
    with tempfile.TemporaryDirectory(prefix="onecard-demo-") as tmp:
        _config, app = build(Path(tmp), args.language)
        print("login: demo / 1234   Ctrl+T: tap a demo card   Ctrl+B: blank card   "
              "F1: every key   Ctrl+Q: quit", file=sys.stderr)
        app.run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
