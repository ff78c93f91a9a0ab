#!/usr/bin/env python3
"""Independent generator of the --x25519 known-answer vectors in docs/protocol.md §6.2.

Uses only Python's hashlib/hmac and the `cryptography` package's X25519 (not spiperelay's
code), so `cargo test` (src/proto/x25519/tests.rs) checks our implementation against a second
one. Run: python3 scripts/x25519-vectors.py
"""
import hashlib
import hmac

from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

DK1_LABEL = b"spiperelay x25519 v1 dk1"
DK2_LABEL = b"spiperelay x25519 v1 dk2"

# RFC 7748 section 6.1: Alice is our client, Bob our server.
A_PRIV = bytes.fromhex("77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a")
B_PRIV = bytes.fromhex("5dab087e624a8a4b79e17f8b83800ee66f3bb1292618b6fd1c2f8b27ff88e0eb")
KEY_FILE = b""  # K = SHA-256(""), as spiped's own vectors (-k /dev/null)
NONCE_C = bytes(range(0x00, 0x20))
NONCE_S = bytes(range(0x20, 0x40))


def pub(priv):
    return X25519PrivateKey.from_private_bytes(priv).public_key().public_bytes(
        Encoding.Raw, PublicFormat.Raw
    )


def pbkdf2(key, salt, n):
    return hashlib.pbkdf2_hmac("sha256", key, salt, 1, n)


k = hashlib.sha256(KEY_FILE).digest()
pub_c, pub_s = pub(A_PRIV), pub(B_PRIV)
shared = X25519PrivateKey.from_private_bytes(A_PRIV).exchange(X25519PublicKey.from_public_bytes(pub_s))
assert shared == X25519PrivateKey.from_private_bytes(B_PRIV).exchange(
    X25519PublicKey.from_public_bytes(pub_c)
)
dk1 = pbkdf2(k, DK1_LABEL + NONCE_C + NONCE_S, 64)
v_c = pub_c + bytes(224)
v_s = pub_s + bytes(224)
h_c = hmac.new(dk1[:32], v_c, hashlib.sha256).digest()
h_s = hmac.new(dk1[32:], v_s, hashlib.sha256).digest()
dk2 = pbkdf2(k, DK2_LABEL + NONCE_C + NONCE_S + pub_c + pub_s + shared, 128)

for name, value in [
    ("pub_C", pub_c),
    ("pub_S", pub_s),
    ("shared", shared),
    ("dhmac_C", dk1[:32]),
    ("dhmac_S", dk1[32:]),
    ("h_C", h_c),
    ("h_S", h_s),
    ("E_C", dk2[0:32]),
    ("H_C", dk2[32:64]),
    ("E_S", dk2[64:96]),
    ("H_S", dk2[96:128]),
]:
    print(f"{name:8} {value.hex()}")
