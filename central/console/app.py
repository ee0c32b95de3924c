"""``onecard-central console``: the app only wires the store, the key and the screens."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import ClassVar

from textual.app import App
from textual.binding import Binding, BindingType

from central.config import load_key
from central.console.data import ConsoleData
from central.console.i18n import Translator
from central.console.screens.queue import QueueScreen
from central.store import CentralStore
from protocol.privacy import KeyFileError, PatientKeys


class ConsoleApp(App[None]):
    TITLE = "onecard central"
    SUB_TITLE = "conflicts"
    CSS_PATH = "console.tcss"
    BINDINGS: ClassVar[list[BindingType]] = [Binding("ctrl+q", "quit", "Quit", show=False)]

    def __init__(self, db: Path | str, key_file: Path | None, operator: str, *,
                 clock: Callable[[], int] | None = None, max_skew_ms: int = 300_000,
                 language: str = "zh", patient_keys_file: Path | None = None) -> None:
        """``key_file`` None or missing: a look-only console (resolving is refused).
        ``patient_keys_file``: the hospital's patient keys, to find patients by ID number.
        ``language``: ``zh`` or ``en`` (central's ``[central] language``)."""
        super().__init__()
        self.language = language
        tr = Translator(language)
        self.title = tr("app.title")
        self.sub_title = tr("app.subtitle")
        self.max_skew_ms = max_skew_ms
        self.db = db
        self.key_file = key_file
        self.patient_keys_file = patient_keys_file
        self.operator = operator
        self.clock = clock
        self.store: CentralStore | None = None

    async def on_mount(self) -> None:
        self.store = await CentralStore.open(self.db, max_skew_ms=self.max_skew_ms)
        key = load_key(self.key_file) if self.key_file and self.key_file.exists() else None
        patient_keys = None
        if self.patient_keys_file is not None:
            try:
                patient_keys = PatientKeys.read(self.patient_keys_file)
            except KeyFileError as exc:
                self.notify(str(exc), severity="warning")
        data = ConsoleData(self.store, key, clock=self.clock, language=self.language,
                           patient_keys=patient_keys)
        await data.refresh()
        await self.push_screen(QueueScreen(data, self.operator))

    async def on_unmount(self) -> None:
        if self.store is not None:
            await self.store.close()
            self.store = None
