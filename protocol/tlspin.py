"""Pinning central's TLS certificate: the pin's text form, parsed and computed.

A pin is ``sha256:`` and the SHA-256 of central's whole certificate (its DER bytes), in
hex — the same digest ``openssl x509 -noout -fingerprint -sha256 -in CERT`` prints, so
its colon-separated form is accepted too.  The certificate's hash, not the SPKI's:
it needs no ASN.1 parsing here and anyone can check it with that one openssl command;
the price is that a renewed certificate needs the new pin on every counter, so pin
long-lived self-signed certificates and let a CA-issued one be verified by its CA
(``[sync] ca_file`` or the system's CAs) instead.

Pure functions: bytes and text in, values out.
"""

from __future__ import annotations

import hashlib
import re

PIN_PREFIX = "sha256:"
_HEX64 = re.compile(r"[0-9a-f]{64}")


def pin_of(der: bytes) -> str:
    """The pin of a certificate given as DER bytes: ``sha256:`` + 64 hex digits."""
    return PIN_PREFIX + hashlib.sha256(der).hexdigest()


def parse_pin(text: str) -> str:
    """A pin in its canonical form (``sha256:`` + 64 lower-case hex digits).

    Accepts ``sha256:HEX``, ``sha256:AA:BB:…`` and openssl's ``sha256 Fingerprint=AA:BB:…``
    line; raises ``ValueError`` saying what a pin looks like for anything else."""
    t = text.strip()
    low = t.lower()
    if low.startswith("sha256 fingerprint="):
        t = t[len("sha256 fingerprint="):]
    elif low.startswith(PIN_PREFIX):
        t = t[len(PIN_PREFIX):]
    else:
        raise ValueError('a certificate pin is "sha256:" and 64 hex digits (the SHA-256 of '
                         "central's certificate, as `onecard-central init --tls-self-signed` "
                         "prints it)")
    digest = t.replace(":", "").strip().lower()
    if not _HEX64.fullmatch(digest):
        raise ValueError('a certificate pin is "sha256:" and 64 hex digits, not '
                         f"{text.strip()[:80]!r}")
    return PIN_PREFIX + digest
