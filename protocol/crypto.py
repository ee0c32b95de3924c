"""Ed25519 keys (PyNaCl), BLAKE2b-256 hashes, and human-comparable key fingerprints.

Keys are generated on the node and never leave it; only the 32-byte public key is
enrolled at central.  Randomness comes from libsodium unless a seed is passed in
(tests and benchmarks pass seeds for reproducibility).
"""

from __future__ import annotations

import hashlib

import nacl.exceptions
import nacl.signing

from protocol.errors import SignatureError

PUBLIC_KEY_SIZE = 32
SIGNATURE_SIZE = 64
HASH_SIZE = 32
ZERO_HASH = bytes(HASH_SIZE)


def blake2b_256(data: bytes) -> bytes:
    """BLAKE2b with a 32-byte digest (hashlib: ~10x faster than nacl.hash here)."""
    return hashlib.blake2b(data, digest_size=HASH_SIZE).digest()


def fingerprint(public_key: bytes) -> str:
    """A short fingerprint for people to compare aloud, e.g. ``ed25519:3f2a-91c0-…``.

    The first 16 bytes of BLAKE2b-256 of the key in groups of four hex digits, as
    SSH shows keys; 64 bits of collision resistance is enough for a human check
    against a key that is also pinned byte for byte.
    """
    if len(public_key) != PUBLIC_KEY_SIZE:
        raise ValueError("an Ed25519 public key is 32 bytes")
    digest = blake2b_256(public_key)[:16].hex()
    return "ed25519:" + "-".join(digest[i : i + 4] for i in range(0, len(digest), 4))


class SigningKey:
    """A node's private Ed25519 key."""

    __slots__ = ("_key",)

    def __init__(self, seed: bytes) -> None:
        if len(seed) != 32:
            raise ValueError("an Ed25519 seed is 32 bytes")
        self._key = nacl.signing.SigningKey(seed)

    @classmethod
    def generate(cls) -> SigningKey:
        return cls(bytes(nacl.signing.SigningKey.generate()))

    @property
    def seed(self) -> bytes:
        return bytes(self._key)

    @property
    def public_key(self) -> bytes:
        return bytes(self._key.verify_key)

    @property
    def fingerprint(self) -> str:
        return fingerprint(self.public_key)

    def sign(self, message: bytes) -> bytes:
        """The 64-byte detached signature of ``message``."""
        return self._key.sign(message).signature

    def __repr__(self) -> str:  # never print the seed
        return f"SigningKey({self.fingerprint})"


_verify_keys: dict[bytes, nacl.signing.VerifyKey] = {}


def verify(public_key: bytes, message: bytes, signature: bytes) -> None:
    """Raise :class:`SignatureError` unless ``signature`` is ``public_key``'s over ``message``."""
    if len(public_key) != PUBLIC_KEY_SIZE or len(signature) != SIGNATURE_SIZE:
        raise SignatureError("malformed key or signature")
    vk = _verify_keys.get(public_key)
    if vk is None:
        try:
            vk = nacl.signing.VerifyKey(public_key)
        except (nacl.exceptions.CryptoError, ValueError, TypeError) as exc:
            raise SignatureError(f"not a valid Ed25519 public key: {exc}") from None
        if len(_verify_keys) > 4096:
            _verify_keys.clear()
        _verify_keys[public_key] = vk
    try:
        vk.verify(message, signature)
    except nacl.exceptions.BadSignatureError:
        raise SignatureError("signature does not verify") from None


def is_valid_signature(public_key: bytes, message: bytes, signature: bytes) -> bool:
    try:
        verify(public_key, message, signature)
    except SignatureError:
        return False
    return True
