"""Pick one of a few options from a list (↑/↓ and Enter; Esc picks none)."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import OptionList, Static
from textual.widgets.option_list import Option

from edge_node.tui.context import Counter
from edge_node.tui.screens.base import bind_keys


class PickScreen(ModalScreen[str | None]):
    """Dismisses with the picked option's key (None: Esc)."""

    DEFAULT_CSS = """
    PickScreen { align: center middle; }
    PickScreen > Vertical { width: 56; max-width: 100%; height: auto; max-height: 100%;
                            border: thick $primary; background: $surface; padding: 0 1; }
    PickScreen #pick-title { text-style: bold; background: $primary; color: $text;
                             padding: 0 1; }
    PickScreen OptionList { height: auto; max-height: 16; }
    """
    AUTO_FOCUS = "#options"

    def __init__(self, counter: Counter, title: str, options: list[tuple[str, str]]) -> None:
        super().__init__()
        self.counter = counter
        self.title_text = title
        self.options = options
        bind_keys(self, counter, [("escape", "cancel", "key.cancel", True)])

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Static(self.title_text, id="pick-title")
            yield OptionList(*(Option(label, id=key) for key, label in self.options),
                             id="options")

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        self.dismiss(event.option.id)

    def action_cancel(self) -> None:
        self.dismiss(None)
