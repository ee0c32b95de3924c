"""The counter's side of TLS to central: the client context from ``[sync]``, and the pin.

``wss://`` verifies central's certificate against the system's CAs and the URL's host
name; ``ca_file`` against that file instead; ``tls_pin`` alone accepts exactly the pinned
certificate (chain and name are not checked: the pin names the one certificate).  The
pin is compared as soon as the TLS connection is up, before the counter sends a
protocol frame (only the websocket upgrade request, which carries nothing secret,
goes first); a mismatch ends the connection with :class:`CertificateRefused`.

Every failure here is said in the counter's language: the sync daemon records it as
``last_error`` (the counter's status, ``onecard-edge info``).
"""

from __future__ import annotations

import ssl
from typing import TYPE_CHECKING

from edge_node.errors import ConfigError
from protocol.tlspin import pin_of

if TYPE_CHECKING:
    from edge_node.config import SyncConfig
    from edge_node.i18n import Translator


class CertificateRefused(Exception):
    """Central's certificate is not the pinned one: the connection was closed unused."""


def client_context(sync: SyncConfig) -> ssl.SSLContext | None:
    """The TLS context for ``central_url`` (``None`` for ``ws://``); a bad ``ca_file`` is a
    :class:`ConfigError` naming it."""
    if not sync.tls:
        return None
    if sync.tls_pin and not sync.ca_file:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE  # the pin, checked after the handshake, decides
    else:
        try:
            ctx = ssl.create_default_context(cafile=sync.ca_file or None)
        except FileNotFoundError:
            raise ConfigError(f"[sync] ca_file {sync.ca_file}: no such file") from None
        except OSError as exc:
            raise ConfigError(f"[sync] ca_file {sync.ca_file}: cannot read it: "
                              f"{exc.strerror or exc}") from None
        except (ssl.SSLError, ValueError):
            raise ConfigError(f"[sync] ca_file {sync.ca_file}: no PEM certificate in it "
                              "(-----BEGIN CERTIFICATE-----)") from None
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    return ctx


def check_pin(ssl_object: object, pin: str, tr: Translator) -> None:
    """Raise :class:`CertificateRefused` unless the peer's certificate has this pin."""
    der = (ssl_object.getpeercert(binary_form=True)
           if isinstance(ssl_object, ssl.SSLObject | ssl.SSLSocket) else None)
    got = pin_of(der) if der else ""
    if got != pin:
        raise CertificateRefused(tr("sync.tls_pin_mismatch", got=got or "-", want=pin))


def describe_tls_error(exc: ssl.SSLError, tr: Translator) -> str:
    """One line for staff and IT: why TLS with central failed and what to look at."""
    if isinstance(exc, ssl.SSLCertVerificationError):
        return tr("sync.tls_untrusted", why=exc.verify_message or exc.reason or str(exc))
    why = exc.reason or str(exc)
    return tr("sync.tls_failed", why=why)
