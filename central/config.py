"""Central's configuration: one TOML file, every key documented with its default.

    [central]
    db = "central.sqlite3"        # SQLite file; relative paths are relative to this file
    database = ""                 # or a URL instead of db: "postgresql://user@host:5432/name"
                                  #   (PostgreSQL), "sqlite:///relative/path" or
                                  #   "sqlite:////absolute/path" (SQLite); not both
    key_file = "central.key"      # central's Ed25519 seed, 64 hex digits, mode 0600
    pepper_file = "staff.pepper"  # the hospital's staff PIN pepper, 64 hex digits, mode
                                  #   0600: made by init, copied to every counter
    host = "127.0.0.1"            # address `serve` listens on
    port = 8765                   # 0 picks a free port (printed on start)
    handshake_timeout_s = 10      # hello → welcome must finish within this
    ping_interval_s = 20          # websocket keepalive; a dead link is dropped after ~2x
    verify_workers = -1           # processes checking signatures; -1 = one per core,
                                  # 0 = none (check in a thread of the server process)
    max_skew_ms = 300000          # a counter's clock this far ahead of central's when it
                                  # signs an event raises a clock-skew conflict (5 min)
    language = "zh"               # zh | en: the IT console's language (like the counters')
    tls_cert = ""                 # PEM certificate (chain): set both to serve wss:// (and
    tls_key = ""                  #   https://…/healthz); neither: plain ws:// (demo, loopback)
    metrics_allow = ["127.0.0.1", "::1"]  # addresses/networks that may read /metrics
    metrics_token = ""            # or a token: `Authorization: Bearer <token>` from anywhere
    patient_keys_file = "patient-data.key"  # the hospital's patient data key and lookup
                                  # key (128 hex digits, 0600), made by init: back it up —
                                  # without it no sealed ID number, phone or address opens

``host`` is the address ``serve`` listens on: ``127.0.0.1`` (the default) only this
machine; ``0.0.0.0`` every interface, for counters on other machines (then set
``tls_cert``/``tls_key`` too, unless the network is one you control or a TLS proxy sits in
front).  ``serve --host/--port`` override both for one run.  ``tls_cert``/``tls_key``:
paths relative to this file, both or neither; ``serve`` checks that they are readable and
that the key is the certificate's before it listens.

    [dormant]
    months = 24                   # `dormant report`: a positive balance with no activity
                                  # for this many months is dormant (1–600)

    [privacy]
    reveal = ["cashier"]          # counter roles given the data key: they see patients'
                                  # ID numbers, phones and addresses (protocol.privacy)
    lookup = ["cashier", "triage", "doctor", "lab", "pharmacy"]  # given the lookup key:
                                  # they find patients by ID number or phone, sealed
    names = ["cashier", "triage", "doctor", "lab", "pharmacy", "kiosk"]  # given the names
                                  # key: they read patients' names and find them by name

    [limits]
    floor = 20000                 # offline, one charge above this (fen) needs a supervisor
    cap = 50000                   # offline, one counter may charge one account this much
                                  # (fen) since its last successful sync; past it, a
                                  # supervisor.  0 = no such limit.  Without [limits]
                                  # central publishes none; with it, `serve` publishes
                                  # them (a central-signed limits.set) when they differ
                                  # from the ones in force; `limits set` publishes now

Defaults put everything in ``$XDG_DATA_HOME/onecard/central`` (development); the
systemd units point ``--config`` at ``/etc/onecard/central.toml`` with data in
``/var/lib/onecard``.
"""

from __future__ import annotations

import ipaddress
import os
import tomllib
import urllib.parse
from dataclasses import dataclass
from pathlib import Path

from protocol.crypto import SigningKey
from protocol.event import CENTRAL
from protocol.messages import ROLES
from protocol.privacy import LOOKUP_ROLES, NAME_ROLES, REVEAL_ROLES

LANGUAGES = ("zh", "en")


class CentralConfigError(Exception):
    """The config or key file is missing or wrong; the message says which and how to fix."""


def default_dir() -> Path:
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "onecard" / "central"


#: where a deployment keeps the config (docs/deployment.md, the systemd unit)
SYSTEM_CONFIG = Path("/etc/onecard/central.toml")


def default_config_path() -> Path:
    """``$ONECARD_CENTRAL_CONFIG``; else the system config when there is one (so commands
    after ``--config /etc/onecard/central.toml init`` need no ``--config``); else the
    data dir's."""
    env = os.environ.get("ONECARD_CENTRAL_CONFIG")
    if env:
        return Path(env)
    if SYSTEM_CONFIG.exists():
        return SYSTEM_CONFIG
    return default_dir() / "central.toml"


@dataclass(frozen=True, slots=True)
class CentralConfig:
    path: Path
    db: Path
    key_file: Path
    host: str = "127.0.0.1"
    port: int = 8765
    handshake_timeout_s: int = 10
    ping_interval_s: int = 20
    verify_workers: int = -1
    max_skew_ms: int = 300_000
    language: str = "zh"
    tls_cert: Path | None = None
    tls_key: Path | None = None
    metrics_allow: tuple[str, ...] = ("127.0.0.1", "::1")
    metrics_token: str = ""
    pepper_file: Path = Path("staff.pepper")  # (made absolute by load)
    #: ``patient_keys_file`` as configured (made absolute by load; None: beside the key)
    patient_keys: Path | None = None
    #: ``database = "postgresql://…"``: central's PostgreSQL database ("" = SQLite at ``db``)
    database: str = ""
    #: ``snapshot_dir``: where ``onecard-central snapshot`` keeps its mirror and snapshots
    #: (None: ``snapshots`` beside the config)
    snapshot_dir: Path | None = None
    #: [privacy]: the counter roles given the data key / the lookup key / the names key
    reveal_roles: tuple[str, ...] = REVEAL_ROLES
    lookup_roles: tuple[str, ...] = LOOKUP_ROLES
    name_roles: tuple[str, ...] = NAME_ROLES

    @property
    def patient_keys_file(self) -> Path:
        """The hospital's patient keys (:mod:`protocol.privacy`)."""
        return self.patient_keys or self.key_file.parent / "patient-data.key"

    @property
    def snapshots(self) -> Path:
        """The directory of the counters' snapshots (:mod:`central.snapshot`)."""
        return self.snapshot_dir or self.path.parent / "snapshots"

    @property
    def store_at(self) -> str | Path:
        """What :meth:`CentralStore.open` opens: the PostgreSQL URL, else the SQLite file."""
        return self.database or self.db

    @property
    def postgres(self) -> bool:
        return bool(self.database)

    @property
    def where(self) -> str:
        """The database for messages and logs (a URL without its password)."""
        from central.db import redact

        return redact(self.database) if self.database else str(self.db)

    @property
    def scheme(self) -> str:
        """``wss`` when central serves TLS itself, else ``ws``."""
        return "wss" if self.tls_cert is not None else "ws"
    dormant_months: int = 24  # [dormant] months
    #: [limits] (floor, cap) in fen; None: the section is absent (serve publishes none)
    offline_limits: tuple[int, int] | None = None

    @classmethod
    def load(cls, path: str | Path) -> CentralConfig:
        p = Path(path)
        try:
            raw = tomllib.loads(p.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise CentralConfigError(
                f"{p}: no such config file (run `onecard-central init` first)"
            ) from None
        except tomllib.TOMLDecodeError as exc:
            raise CentralConfigError(f"{p}: not valid TOML: {exc}") from None
        except (OSError, UnicodeDecodeError) as exc:
            raise CentralConfigError(f"{p}: cannot read the config: {exc}") from None
        sec = raw.get("central", {})
        if not isinstance(sec, dict):
            raise CentralConfigError(f"{p}: [central] must be a table")
        known = {
            "db",
            "database",
            "key_file",
            "host",
            "port",
            "handshake_timeout_s",
            "ping_interval_s",
            "verify_workers",
            "max_skew_ms",
            "language",
            "tls_cert",
            "tls_key",
            "metrics_allow",
            "metrics_token",
            "pepper_file",
            "patient_keys_file",
            "snapshot_dir",
        }
        unknown = sorted(set(sec) - known)
        if unknown:
            raise CentralConfigError(f"{p}: unknown key(s) in [central]: {', '.join(unknown)}")

        def rel(v: object, name: str) -> Path:
            if not isinstance(v, str) or not v:
                raise CentralConfigError(f"{p}: [central] {name} must be a path string")
            q = Path(v).expanduser()
            return q if q.is_absolute() else p.parent / q

        def integer(name: str, default: int, lo: int, hi: int) -> int:
            v = sec.get(name, default)
            if type(v) is not int or not lo <= v <= hi:
                raise CentralConfigError(f"{p}: [central] {name} must be an integer {lo}–{hi}")
            return v

        language = sec.get("language", "zh")
        if language not in LANGUAGES:
            raise CentralConfigError(f'{p}: [central] language must be "zh" or "en" '
                                     f"(not {language!r})")
        dormant = raw.get("dormant", {})
        if not isinstance(dormant, dict):
            raise CentralConfigError(f"{p}: [dormant] must be a table")
        if sorted(set(dormant) - {"months"}):
            raise CentralConfigError(f"{p}: unknown key(s) in [dormant]: "
                                     f"{', '.join(sorted(set(dormant) - {'months'}))}")
        months = dormant.get("months", 24)
        if type(months) is not int or not 1 <= months <= 600:
            raise CentralConfigError(f"{p}: [dormant] months must be an integer 1–600")
        limits = raw.get("limits")
        offline: tuple[int, int] | None = None
        if limits is not None:
            if not isinstance(limits, dict):
                raise CentralConfigError(f"{p}: [limits] must be a table")
            if sorted(set(limits) - {"floor", "cap"}):
                raise CentralConfigError(f"{p}: unknown key(s) in [limits]: "
                                         f"{', '.join(sorted(set(limits) - {'floor', 'cap'}))}")
            for name in ("floor", "cap"):
                v = limits.get(name, 0)
                if type(v) is not int or not 0 <= v <= MAX_LIMIT:
                    raise CentralConfigError(f"{p}: [limits] {name} must be an integer "
                                             f"0–{MAX_LIMIT} (fen; 0: no limit)")
            offline = (limits.get("floor", 0), limits.get("cap", 0))
        reveal, lookup, names = _privacy(p, raw.get("privacy", {}))
        host = sec.get("host", "127.0.0.1")
        if not isinstance(host, str):
            raise CentralConfigError(f"{p}: [central] host must be a string")
        tls_cert = sec.get("tls_cert", "")
        tls_key = sec.get("tls_key", "")
        for name, v in (("tls_cert", tls_cert), ("tls_key", tls_key)):
            if not isinstance(v, str):
                raise CentralConfigError(f"{p}: [central] {name} must be a path string "
                                         '("" for none)')
        if bool(tls_cert) != bool(tls_key):
            have, lack = ("tls_cert", "tls_key") if tls_cert else ("tls_key", "tls_cert")
            raise CentralConfigError(f"{p}: [central] {have} is set but {lack} is not: set "
                                     "both (serve wss://) or neither (plain ws://)")
        allow = sec.get("metrics_allow", ["127.0.0.1", "::1"])
        if not isinstance(allow, list) or not all(isinstance(a, str) for a in allow):
            raise CentralConfigError(f'{p}: [central] metrics_allow must be a list of addresses '
                                     'or networks, e.g. ["127.0.0.1", "10.1.0.0/16"]')
        for a in allow:
            try:
                ipaddress.ip_network(a, strict=False)
            except ValueError:
                raise CentralConfigError(f"{p}: [central] metrics_allow: {a!r} is not an "
                                         "address or network") from None
        db, database = _database(p, sec)
        token = sec.get("metrics_token", "")
        if not isinstance(token, str) or (token and len(token) < 16):
            raise CentralConfigError(f"{p}: [central] metrics_token must be at least 16 "
                                     'characters ("" for none)')
        return cls(
            path=p,
            db=rel(db, "db"),
            database=database,
            key_file=rel(sec.get("key_file", "central.key"), "key_file"),
            host=host,
            port=integer("port", 8765, 0, 65535),
            handshake_timeout_s=integer("handshake_timeout_s", 10, 1, 3600),
            ping_interval_s=integer("ping_interval_s", 20, 1, 3600),
            verify_workers=integer("verify_workers", -1, -1, 64),
            max_skew_ms=integer("max_skew_ms", 300_000, 1_000, 7 * 86_400_000),
            language=language,
            tls_cert=rel(tls_cert, "tls_cert") if tls_cert else None,
            tls_key=rel(tls_key, "tls_key") if tls_key else None,
            dormant_months=months,
            offline_limits=offline,
            metrics_allow=tuple(allow),
            metrics_token=token,
            pepper_file=rel(sec.get("pepper_file", "staff.pepper"), "pepper_file"),
            patient_keys=rel(sec.get("patient_keys_file", "patient-data.key"),
                             "patient_keys_file"),
            snapshot_dir=rel(sec["snapshot_dir"], "snapshot_dir") if "snapshot_dir" in sec
            else None,
            reveal_roles=reveal,
            lookup_roles=lookup,
            name_roles=names,
        )


def _database(p: Path, sec: dict[str, object]) -> tuple[object, str]:
    """``[central] db`` / ``database``: (the SQLite file as configured, the PostgreSQL URL
    or "")."""
    url = sec.get("database", "")
    if not isinstance(url, str):
        raise CentralConfigError(f'{p}: [central] database must be a URL string, e.g. '
                                 '"postgresql://onecard@127.0.0.1:5432/onecard"')
    if not url:
        return sec.get("db", "central.sqlite3"), ""
    if "db" in sec:
        raise CentralConfigError(f"{p}: [central] has both db and database: keep one (db "
                                 "names a SQLite file, database a URL)")
    if url.startswith(("postgresql://", "postgres://")):
        parts = urllib.parse.urlsplit(url)
        if not parts.hostname and "host=" not in parts.query:
            raise CentralConfigError(f"{p}: [central] database {url!r} names no host: "
                                     '"postgresql://USER@HOST:5432/DATABASE"')
        if not parts.path.strip("/"):
            raise CentralConfigError(f"{p}: [central] database {url!r} names no database: "
                                     '"postgresql://USER@HOST:5432/DATABASE"')
        return "central.sqlite3", url
    if url.startswith("sqlite://"):
        from central.db import sqlite_path

        try:
            path = sqlite_path(url)
        except ValueError as exc:
            raise CentralConfigError(f"{p}: [central] database: {exc}") from None
        if path == ":memory:":
            raise CentralConfigError(f"{p}: [central] database {url!r} names no file")
        return path, ""
    raise CentralConfigError(f'{p}: [central] database must start with "postgresql://" '
                             f'or "sqlite:///" (not {url.split(":", 1)[0]!r}); a plain path '
                             "goes in db")


def _privacy(p: Path, sec: object
             ) -> tuple[tuple[str, ...], tuple[str, ...], tuple[str, ...]]:
    """``[privacy]``: the counter roles given the data key, the lookup key, the names key."""
    if not isinstance(sec, dict):
        raise CentralConfigError(f"{p}: [privacy] must be a table")
    unknown = sorted(set(sec) - {"reveal", "lookup", "names"})
    if unknown:
        raise CentralConfigError(f"{p}: unknown key(s) in [privacy]: {', '.join(unknown)}")
    counters = sorted(ROLES - {CENTRAL})
    out = []
    for name, default in (("reveal", REVEAL_ROLES), ("lookup", LOOKUP_ROLES),
                          ("names", NAME_ROLES)):
        v = sec.get(name, list(default))
        if not isinstance(v, list) or not all(r in counters for r in v):
            raise CentralConfigError(f"{p}: [privacy] {name} must be a list of counter roles "
                                     f"({', '.join(counters)})")
        out.append(tuple(dict.fromkeys(v)))
    if not set(out[0]) <= set(out[1]):
        raise CentralConfigError(f"{p}: [privacy] every role in reveal must be in lookup too "
                                 "(a counter that reads the details also finds by them)")
    if not set(out[1]) <= set(out[2]):
        raise CentralConfigError(f"{p}: [privacy] every role in lookup must be in names too "
                                 "(a counter that finds patients shows who it found)")
    return out[0], out[1], out[2]


MAX_LIMIT = 10**10  # fen: a body's amount bound (protocol.fields.MAX_AMOUNT)


def render_config(
    db: str = "central.sqlite3",
    key_file: str = "central.key",
    host: str = "127.0.0.1",
    port: int = 8765,
    tls_cert: str = "",
    tls_key: str = "",
    pepper_file: str = "staff.pepper",
    patient_keys_file: str = "patient-data.key",
    database: str = "",
) -> str:
    """The text of a fresh config file with every key and its meaning."""
    return (
        "# onecard central — see central/config.py for every key and its default\n"
        "[central]\n"
        + (f'database = "{_toml_text(database)}"  # PostgreSQL: pg_dump/pg_restore back '
           'it up\n' if database else
           f'db = "{db}"                  # SQLite file, relative to this file\n')
        + f'key_file = "{key_file}"      # Ed25519 seed, 64 hex digits, keep at mode 0600\n'
        f'pepper_file = "{pepper_file}"  # staff PIN pepper (0600): copy to every counter\n'
        f'patient_keys_file = "{patient_keys_file}"  # patient data keys (0600): back up\n'
        f'host = "{host}"             # listen address; "0.0.0.0": counters on other machines\n'
        f"port = {port}                 # 0 = pick a free port, printed on start\n"
        "handshake_timeout_s = 10\n"
        "ping_interval_s = 20\n"
        "verify_workers = -1           # signature-checking processes; -1 = one per core\n"
        "max_skew_ms = 300000          # clock ahead of central by more: clock-skew conflict\n"
        'language = "zh"               # zh | en: the IT console\'s language\n'
        f'tls_cert = "{tls_cert}"      # PEM certificate and its key: both set = wss://\n'
        f'tls_key = "{tls_key}"        # (key mode 0600); both "" = plain ws://\n'
        'metrics_allow = ["127.0.0.1", "::1"]  # who may read /metrics (addresses, networks)\n'
        'metrics_token = ""            # or anyone with `Authorization: Bearer <token>`\n'
        "\n[dormant]\n"
        "months = 24                   # dormant report: no activity for this many months\n"
        "\n[privacy]\n"
        '# counters of these roles see patients\' ID numbers, phones and addresses\n'
        'reveal = ["cashier"]\n'
        "# …and these find patients by them (sealed, by keyed tags)\n"
        'lookup = ["cashier", "triage", "doctor", "lab", "pharmacy"]\n'
        "# …and these read patients' names and find them by name\n"
        'names = ["cashier", "triage", "doctor", "lab", "pharmacy", "kiosk"]\n'
    )


def _toml_text(v: str) -> str:
    return v.replace("\\", "\\\\").replace('"', '\\"')


def load_key(path: Path) -> SigningKey:
    """Read an Ed25519 seed stored as 64 hex digits."""
    try:
        text = path.read_text(encoding="ascii").strip()
    except FileNotFoundError:
        raise CentralConfigError(f"{path}: key file missing (run `onecard-central init`)") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise CentralConfigError(f"{path}: cannot read the key file: {exc}") from None
    try:
        seed = bytes.fromhex(text)
    except ValueError:
        raise CentralConfigError(f"{path}: not 64 hex digits") from None
    if len(seed) != 32:
        raise CentralConfigError(f"{path}: not 64 hex digits")
    return SigningKey(seed)


def write_key(path: Path, key: SigningKey) -> None:
    """Write the seed as hex, created with mode 0600 (refuses to overwrite)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="ascii") as f:
        f.write(key.seed.hex() + "\n")
