"""A keyboard choice among a few options: ←/→ or the option's number picks one."""

from __future__ import annotations

from typing import ClassVar

from textual.binding import Binding, BindingType
from textual.reactive import reactive
from textual.widget import Widget


class Choice(Widget, can_focus=True):
    """Shows ``[1 现金] 2 银行卡 3 移动支付``; ``value`` is the chosen option's key."""

    DEFAULT_CSS = """
    Choice { height: 1; width: 1fr; }
    Choice:focus { background: $boost; }
    """
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("left", "move(-1)", show=False),
        Binding("right", "move(1)", show=False),
        *[Binding(str(i), f"pick({i - 1})", show=False) for i in range(1, 10)],
    ]

    value: reactive[str] = reactive("")

    def __init__(self, options: list[tuple[str, str]], value: str = "", *,
                 id: str | None = None) -> None:
        super().__init__(id=id)
        self.options = options
        self.set_reactive(Choice.value, value or options[0][0])

    def render(self) -> str:
        parts = []
        for i, (key, label) in enumerate(self.options, start=1):
            if key == self.value:
                parts.append(f"[reverse] {i} {label} [/reverse]")
            else:
                parts.append(f" {i} {label} ")
        return "  ".join(parts)

    def _index(self) -> int:
        keys = [k for k, _ in self.options]
        return keys.index(self.value) if self.value in keys else 0

    def action_move(self, step: int) -> None:
        self.value = self.options[(self._index() + step) % len(self.options)][0]

    def action_pick(self, index: int) -> None:
        if 0 <= index < len(self.options):
            self.value = self.options[index][0]
