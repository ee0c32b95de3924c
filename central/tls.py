"""Central's own TLS: the server context from ``tls_cert``/``tls_key``, and a self-signed
certificate for ``onecard-central init --tls-self-signed``.

Everything a person can get wrong (a file missing or unreadable, not PEM, an encrypted
key, a key of another certificate) is a :class:`CentralConfigError` naming the file and
what to do: ``serve`` prints it as one line and exits 2 before it listens.

The self-signed certificate is made by the ``openssl`` command (Debian's ``openssl``
package, on every Debian machine), not by Python: the ``cryptography`` package is not a
dependency of anything onecard installs, and adding it (a Rust-built wheel) for one
``init`` option would be a heavier dependency than a command that is already there.
"""

from __future__ import annotations

import ipaddress
import logging
import os
import re
import shutil
import socket
import ssl
import subprocess
from pathlib import Path

from central.config import CentralConfig, CentralConfigError
from protocol.tlspin import pin_of

log = logging.getLogger("onecard.central.tls")

#: a self-signed certificate lasts this long: its pin is on every counter, and a new
#: certificate means a new pin everywhere (a CA-issued one is renewed, not pinned)
SELF_SIGNED_DAYS = 3650
CERT_NAME = "central-tls.crt"
KEY_NAME = "central-tls.key"
_DNS_NAME = re.compile(r"(?=.{1,253}\Z)[A-Za-z0-9*]([A-Za-z0-9-]*[A-Za-z0-9])?"
                       r"(\.[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?)*\.?")


class _Encrypted(Exception):
    """The private key asks for a passphrase (central runs unattended: it has none)."""


def _no_passphrase() -> str:
    raise _Encrypted


def server_context(cfg: CentralConfig) -> ssl.SSLContext | None:
    """The TLS context ``serve`` listens with, or ``None`` for plain ws:// (no tls_cert)."""
    if cfg.tls_cert is None or cfg.tls_key is None:
        return None
    cert, key = cfg.tls_cert, cfg.tls_key
    for path, name in ((cert, "tls_cert"), (key, "tls_key")):
        try:
            path.read_bytes()
        except FileNotFoundError:
            raise CentralConfigError(f"{path}: no such file ([central] {name} in "
                                     f"{cfg.path})") from None
        except OSError as exc:
            raise CentralConfigError(f"{path}: cannot read it ([central] {name}): "
                                     f"{exc.strerror or exc}; the user central runs as "
                                     "must be able to read it") from None
    try:
        ssl.create_default_context(cafile=str(cert))  # parses every certificate in the file
    except (ssl.SSLError, ValueError):
        raise CentralConfigError(f"{cert}: not a PEM certificate ([central] tls_cert: the "
                                 "file with -----BEGIN CERTIFICATE-----)") from None
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        ctx.load_cert_chain(str(cert), str(key), password=_no_passphrase)
    except _Encrypted:
        raise CentralConfigError(f"{key}: the key is protected by a passphrase, which central "
                                 "cannot type at start: store it without one, mode 0600 "
                                 f"(openssl pkey -in {key} -out NEW.key)") from None
    except ssl.SSLError as exc:
        if exc.reason == "KEY_VALUES_MISMATCH":
            raise CentralConfigError(f"{key}: this key does not belong to the certificate "
                                     f"{cert} ([central] tls_key and tls_cert must be a "
                                     "pair)") from None
        raise CentralConfigError(f"{key}: not a PEM private key ([central] tls_key: the "
                                 "file with -----BEGIN … PRIVATE KEY-----)") from None
    if key.stat().st_mode & 0o004:
        log.warning("the TLS key %s is readable by every user: chmod 600 %s", key, key)
    return ctx


def certificate_pin(cert: Path) -> str:
    """The pin (``sha256:…``) of the first certificate in a PEM file: central's own."""
    text = cert.read_text(encoding="ascii", errors="replace")
    begin, end = "-----BEGIN CERTIFICATE-----", "-----END CERTIFICATE-----"
    i = text.find(begin)
    j = text.find(end, i)
    if i < 0 or j < 0:
        raise CentralConfigError(f"{cert}: not a PEM certificate")
    return pin_of(ssl.PEM_cert_to_DER_cert(text[i : j + len(end)]))


def certificate_names(extra: list[str]) -> list[str]:
    """subjectAltName entries: this machine's names, loopback, and ``extra`` (``--tls-name``).

    Only a counter that verifies the certificate by ``ca_file`` checks the name it dials
    against these; a pinned certificate is checked by its hash alone."""
    names = ["localhost", "127.0.0.1", socket.gethostname(), socket.getfqdn(), *extra]
    out: list[str] = []
    for n in names:
        n = n.strip()
        try:
            entry = f"IP:{ipaddress.ip_address(n)}"
        except ValueError:
            if not _DNS_NAME.fullmatch(n):
                raise CentralConfigError(f"--tls-name {n!r}: not a host name or an IP "
                                         "address") from None
            entry = f"DNS:{n.rstrip('.')}"
        if entry not in out:
            out.append(entry)
    return out


def make_self_signed(directory: Path, names: list[str]) -> tuple[Path, Path]:
    """Write ``central-tls.crt`` and ``central-tls.key`` (mode 0600) into ``directory``.

    An EC P-256 key, valid :data:`SELF_SIGNED_DAYS` days, for ``names``; refuses to
    overwrite either file."""
    openssl = shutil.which("openssl")
    if openssl is None:
        raise CentralConfigError("--tls-self-signed needs the openssl command "
                                 "(Debian: apt-get install openssl)")
    san = certificate_names(names)
    cert, key = directory / CERT_NAME, directory / KEY_NAME
    made: list[Path] = []
    try:
        for path, mode in ((key, 0o600), (cert, 0o644)):
            # created here first, so the key is never readable by others, even briefly
            try:
                os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode))
            except FileExistsError:
                raise CentralConfigError(f"{path}: exists; refusing to overwrite a "
                                         "certificate or key (move it away first)") from None
            made.append(path)
        r = subprocess.run(
            [openssl, "req", "-x509", "-newkey", "ec", "-pkeyopt",
             "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", str(key), "-out", str(cert),
             "-days", str(SELF_SIGNED_DAYS), "-subj", "/CN=onecard-central",
             "-addext", "subjectAltName=" + ",".join(san),
             "-addext", "basicConstraints=critical,CA:FALSE",
             "-addext", "keyUsage=critical,digitalSignature",
             "-addext", "extendedKeyUsage=serverAuth"],
            capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL,
        )
        if r.returncode != 0:
            why = (r.stderr.strip().splitlines() or ["no message"])[-1]
            raise CentralConfigError(f"openssl could not make the certificate: {why}")
        os.chmod(key, 0o600)
    except BaseException:
        for path in made:  # only what this call created: never an existing key
            path.unlink(missing_ok=True)
        raise
    return cert, key
