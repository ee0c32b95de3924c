"""Charge: items from the price list (search by code, name or pinyin), quantities, total.

Type a code, part of a name, or its pinyin or initials (``xcg``: 血常规); Enter adds the
best match (× the quantity); ↓ into the list picks another.  In the cart, + and - change
the quantity, Delete removes a line.

A charge on a card number typed by hand, and offline one past the offline limits, needs
a supervisor (issue 11): the supervisor's id and PIN fields appear when the counter
refuses it for that (``approval.manual_entry``, ``approval.offline_limit``: see
:class:`~edge_node.tui.screens.approval.ApprovedForm`), and the charge goes through with
them (the signed event names the supervisor).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from textual import on
from textual.containers import Horizontal
from textual.widget import Widget
from textual.widgets import DataTable, Input, OptionList, Static
from textual.widgets.option_list import Option

from edge_node.pricelist import PriceItem
from edge_node.service import CounterService, Receipt
from edge_node.tui.context import Counter
from edge_node.tui.screens.approval import ApprovedForm
from edge_node.tui.screens.base import bind_keys
from edge_node.tui.screens.form import Plan
from protocol.errors import Problem
from protocol.money import yuan

MAX_QTY = 10_000


@dataclass(slots=True)
class CartLine:
    item: PriceItem
    qty: int

    @property
    def amount(self) -> int:
        return self.item.unit_price * self.qty


class ChargeScreen(ApprovedForm):
    title_key = "title.charge"
    DEFAULT_CSS = """
    ChargeScreen #search-row { height: auto; }
    ChargeScreen #search { width: 1fr; }
    ChargeScreen #qty { width: 10; margin-left: 1; }
    ChargeScreen #results { height: 7; }
    ChargeScreen #cart { height: auto; max-height: 10; }
    ChargeScreen #total { text-style: bold; margin: 1 0 0 0; }
    """

    def __init__(self, counter: Counter, *args: object, **kw: object) -> None:
        super().__init__(counter, *args, **kw)  # type: ignore[arg-type]
        self.cart: list[CartLine] = []
        bind_keys(self, counter, [("delete", "remove_line", "key.remove_item", False),
                                  ("plus", "qty(1)", "key.more", False),
                                  ("minus", "qty(-1)", "key.less", False)])

    def fields(self) -> Iterable[Widget]:
        tr = self.counter.tr
        with Horizontal(id="search-row"):
            yield Input(id="search", placeholder=tr("search.item_placeholder"), max_length=32)
            yield Input("1", id="qty", restrict=r"[0-9]*", max_length=5,
                        placeholder=tr("form.qty"))
        yield OptionList(id="results")
        cart: DataTable[str] = DataTable(id="cart", cursor_type="row")
        yield cart
        yield Static(id="total")
        yield from self.labelled("form.department", Input(self._department(), id="department",
                                                          max_length=64))
        yield from self.approval_fields(hidden=True)

    def _department(self) -> str:
        return "门诊收费" if self.counter.tr.language == "zh" else "Outpatient cashier"

    def on_mount(self) -> None:
        tr = self.counter.tr
        cart = self.query_one("#cart", DataTable)
        cart.add_columns(tr("form.search"), tr("form.qty"), "¥")
        self._show_results("")
        self._render_cart()
        self.query_one("#search", Input).focus()

    # -- searching ---------------------------------------------------------------------
    @on(Input.Changed, "#search")
    def _search_changed(self, event: Input.Changed) -> None:
        self._show_results(event.value)

    def _show_results(self, query: str) -> None:
        results = self.query_one("#results", OptionList)
        results.clear_options()
        lang = self.counter.tr.language
        for item in self.counter.prices.search(query, limit=30):
            results.add_option(Option(f"{item.code:<6} {item.name(lang)}  {yuan(item.unit_price)}",
                                      id=item.code))
        if results.option_count:
            results.highlighted = 0

    def on_enter(self, field: Input) -> None:
        if field.id in ("search", "qty"):
            self._add_best()
        else:
            super().on_enter(field)

    def _qty(self) -> int | None:
        text = self.query_one("#qty", Input).value.strip() or "1"
        qty = int(text) if text.isdigit() else 0
        if not 1 <= qty <= MAX_QTY:
            self.show_error(self.counter.tr("form.bad_qty"))
            self.query_one("#qty", Input).focus()
            return None
        return qty

    def _add_best(self) -> None:
        query = self.value("search")
        results = self.counter.prices.search(query, limit=1)
        if not query or not results:
            self.show_error(self.counter.tr("form.not_found", q=query) if query else "")
            return
        self._add(results[0])

    @on(OptionList.OptionSelected, "#results")
    def _picked(self, event: OptionList.OptionSelected) -> None:
        item = self.counter.prices.get(event.option.id or "")
        if item is not None:
            self._add(item)

    def _add(self, item: PriceItem) -> None:
        qty = self._qty()
        if qty is None:
            return
        for line in self.cart:
            if line.item.code == item.code:
                line.qty = min(MAX_QTY, line.qty + qty)
                break
        else:
            self.cart.append(CartLine(item, qty))
        self.show_error("")
        self.query_one("#search", Input).value = ""
        self.query_one("#qty", Input).value = "1"
        self._render_cart()
        self.query_one("#search", Input).focus()

    # -- the cart ------------------------------------------------------------------------
    @property
    def total(self) -> int:
        return sum(line.amount for line in self.cart)

    def _render_cart(self) -> None:
        tr = self.counter.tr
        cart = self.query_one("#cart", DataTable)
        cart.clear()
        lang = tr.language
        for line in self.cart:
            cart.add_row(f"{line.item.code} {line.item.name(lang)}", f"×{line.qty}",
                         yuan(line.amount), key=line.item.code)
        self.query_one("#total", Static).update(
            tr("form.total", total=yuan(self.total)) if self.cart else tr("form.cart_empty"))

    def _cursor_line(self) -> CartLine | None:
        cart = self.query_one("#cart", DataTable)
        if not self.cart or not cart.has_focus:
            return None
        row = min(cart.cursor_row, len(self.cart) - 1)
        return self.cart[row]

    def action_remove_line(self) -> None:
        line = self._cursor_line()
        if line is not None:
            self.cart.remove(line)
            self._render_cart()

    def action_qty(self, step: int) -> None:
        line = self._cursor_line()
        if line is not None:
            line.qty = max(1, min(MAX_QTY, line.qty + step))
            row = self.query_one("#cart", DataTable).cursor_row
            self._render_cart()
            self.query_one("#cart", DataTable).move_cursor(row=row)

    # -- submit --------------------------------------------------------------------------
    def prepare(self) -> Plan | list[Problem]:
        assert self.view is not None
        tr = self.counter.tr
        if not self.cart:
            return [Problem("form.cart", tr("form.cart_empty"), "search")]
        problems: list[Problem] = []
        department = self.required("department", "form.department", problems)
        approver, pin = self.approval_typed(problems)
        if problems:
            return problems
        lines = [line.item.line(line.qty, tr.language) for line in self.cart]
        card, entry = self.card_no, self.card_entry

        async def call(service: CounterService) -> Receipt:
            wallet, stamp = self.money_context()
            return await service.charge(card, lines, department, card_entry=entry,
                                        wallet=wallet, stamp=stamp,
                                        approval=await self.approval(service, approver, pin))
        return Plan(tr("confirm.charge", name=self.view.patient.name, amount=yuan(self.total),
                       n=len(lines)), call)
