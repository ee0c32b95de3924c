"""The console's screens; what several of them share."""

from __future__ import annotations

from textual.screen import Screen
from textual.widgets import Static


class MessageScreen(Screen[None]):
    """A screen with a ``#message`` line at its foot."""

    def say(self, text: str, cls: str = "") -> None:
        """Show ``text`` there (``cls``: a style class, e.g. ``problem``)."""
        msg = self.query_one("#message", Static)
        msg.set_classes(f"message {cls}".strip())
        msg.update(text)
