"""STARTTLS options: verification against a CA file, SHA-256 certificate pinning, or
trust on first use (any certificate; the caller reads its fingerprint and pins it).

The fingerprint is the SHA-256 of the certificate's DER, 64 lowercase hex digits: what a
NUT Bridge publishes (zeroconf TXT ``tls_sha256``, Supervisor discovery) and what a
client stores as its pin.
"""

from __future__ import annotations

import hashlib
import hmac
import ssl
from dataclasses import dataclass
from enum import Enum


class TLSMode(Enum):
    OFF = "off"
    # Like NUT's UPSCLI_CONN_TRYSSL: send STARTTLS, continue in plaintext on ERR.
    TRY = "try"
    # Like UPSCLI_CONN_REQSSL: fail the connection unless TLS is established.
    REQUIRE = "require"


def normalize_fingerprint(fp: str) -> str:
    """'AB:CD:...' or 'abcd...' -> lowercase hex without separators."""
    return fp.replace(":", "").replace(" ", "").lower()


def fingerprint(der: bytes) -> str:
    return hashlib.sha256(der).hexdigest()


@dataclass(frozen=True)
class TLSOptions:
    mode: TLSMode = TLSMode.OFF
    # Verify the server certificate against this CA bundle (PEM).
    cafile: str | None = None
    # Accept exactly the certificate with this SHA-256 fingerprint (hex, ':' allowed).
    pin_sha256: str | None = None
    check_hostname: bool = True
    # A caller-built context overrides cafile/check_hostname (pinning still applies).
    context: ssl.SSLContext | None = None
    # Trust on first use: accept whatever certificate the server presents, unverified;
    # the caller reads NutClient.peer_fingerprint and decides (e.g. shows it, pins it).
    # Never send a secret on such a connection before that decision.
    tofu: bool = False

    def build_context(self) -> ssl.SSLContext:
        if self.context is not None:
            return self.context
        if self.cafile:
            ctx = ssl.create_default_context(cafile=self.cafile)
            ctx.check_hostname = self.check_hostname
            return ctx
        if self.pin_sha256 or self.tofu:
            # The pin replaces chain validation: the exact certificate is trusted (or,
            # first use, any certificate, judged by the caller from its fingerprint).
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
            return ctx
        # No trust anchor configured: use the system store, as a browser would.
        return ssl.create_default_context()

    def check_pin(self, der: bytes | None) -> bool:
        if not self.pin_sha256:
            return True
        if der is None:
            return False
        return hmac.compare_digest(fingerprint(der), normalize_fingerprint(self.pin_sha256))
