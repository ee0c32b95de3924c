"""The key bar: every key of the screen it is on, on as many lines as the width needs.

Textual's ``Footer`` is one line that cuts off what does not fit (at 80 columns the
home screen lost F10–F12, Esc and the Ctrl keys).  This bar wraps between keys instead,
so at a tty console's 80×25 every key stays on screen; it follows the screen's bindings
(focus changes, ``check_action``, a language switch) like the footer does.
"""

from __future__ import annotations

from typing import ClassVar, NamedTuple

from rich.cells import cell_len
from rich.text import Text
from textual.geometry import Size
from textual.screen import Screen
from textual.widget import Widget

from edge_node.tui.screens.base import key_name

GAP = "  "  # between two keys


class KeyItem(NamedTuple):
    keys: tuple[str, ...]  # Textual key names bound to the action (``f2``, ``ctrl+q``)
    label: str
    enabled: bool

    @property
    def shown(self) -> str:
        return "/".join(key_name(k) for k in self.keys)

    @property
    def width(self) -> int:
        return cell_len(self.shown) + 1 + cell_len(self.label)


def screen_keys(screen: Screen[object]) -> list[KeyItem]:
    """The keys shown for ``screen`` now: bindings with a label, one item per action."""
    items: dict[tuple[int, str], KeyItem] = {}
    for key, active in screen.active_bindings.items():
        binding = active.binding
        if not binding.show or not binding.description:
            continue
        slot = (id(active.node), binding.action)
        had = items.get(slot)
        if had is None:
            items[slot] = KeyItem((key,), binding.description, active.enabled)
        else:
            items[slot] = had._replace(keys=(*had.keys, key))
    return list(items.values())


def pack(items: list[KeyItem], width: int) -> list[list[KeyItem]]:
    """Items on lines of at most ``width`` cells, never splitting an item."""
    lines: list[list[KeyItem]] = []
    used = 0
    for item in items:
        need = item.width if not lines or not lines[-1] else len(GAP) + item.width
        if lines and lines[-1] and used + need <= width:
            lines[-1].append(item)
            used += need
        else:
            lines.append([item])
            used = item.width
    return lines


class KeyBar(Widget):
    DEFAULT_CSS = """
    KeyBar { dock: bottom; height: auto; padding: 0 1;
             background: $footer-background; color: $footer-description-foreground; }
    KeyBar > .keybar--key { color: $footer-key-foreground; text-style: bold; }
    KeyBar > .keybar--disabled { text-style: dim; }
    """
    COMPONENT_CLASSES: ClassVar[set[str]] = {"keybar--key", "keybar--disabled"}

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.items: list[KeyItem] = []

    def on_mount(self) -> None:
        self.screen.bindings_updated_signal.subscribe(self, self._bindings_changed)
        self.collect()

    def _bindings_changed(self, screen: Screen[object]) -> None:
        if self.is_attached and screen is self.screen:
            self.collect()

    def collect(self) -> None:
        items = screen_keys(self.screen)
        if items != self.items:
            self.items = items
            self.refresh(layout=True)

    def lines(self, width: int | None = None) -> list[list[KeyItem]]:
        return pack(self.items, self.content_size.width if width is None else width)

    def get_content_height(self, container: Size, viewport: Size, width: int) -> int:
        return max(1, len(pack(self.items, width)))

    def render(self) -> Text:
        key_style = self.get_component_rich_style("keybar--key")
        dim = self.get_component_rich_style("keybar--disabled")
        text = Text(no_wrap=True, overflow="crop", end="")
        for n, line in enumerate(self.lines()):
            if n:
                text.append("\n")
            for i, item in enumerate(line):
                if i:
                    text.append(GAP)
                start = len(text)
                text.append(item.shown, style=key_style)
                text.append(" " + item.label)
                if not item.enabled:
                    text.stylize(dim, start, len(text))
        return text

    @property
    def text(self) -> str:
        """What the bar shows, as plain text (for tests and the key-help screen)."""
        return "\n".join(GAP.join(f"{i.shown} {i.label}" for i in line)
                         for line in self.lines())
