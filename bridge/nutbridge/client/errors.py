"""Client-side errors: server ERR answers plus the local failures NUT's client names."""

from __future__ import annotations

from ..protocol.errors import CLIENT_ERROR_TEXT

# Codes for failures detected on the client side (never sent by a server). Their
# texts are what NUT's client library prints for the same situation.
PROTOCOL_ERROR = "PROTOCOL-ERROR"
SERVER_DISCONNECTED = "SERVER-DISCONNECTED"
CONNECTION_FAILURE = "CONNECTION-FAILURE"
NO_SUCH_HOST = "NO-SUCH-HOST"
TIMEOUT = "TIMEOUT"
TLS_ERROR = "TLS-ERROR"

_LOCAL_TEXT = {
    PROTOCOL_ERROR: "Protocol error",
    SERVER_DISCONNECTED: "Server disconnected",
    CONNECTION_FAILURE: "Connection failure",
    NO_SUCH_HOST: "No such host",
    TIMEOUT: "Read timeout",
    TLS_ERROR: "SSL error",
}


def error_text(code: str) -> str:
    """Human text for an ERR code, matched by prefix like NUT's client library."""
    for prefix, text in CLIENT_ERROR_TEXT.items():
        if code.startswith(prefix):
            return text
    return "Unknown error"


class NutError(Exception):
    """An ``ERR <code> [extra]`` answer, or a local failure with one of the codes above."""

    def __init__(self, code: str, extra: str = "", *, detail: str = "", answer: str = "") -> None:
        self.code = code
        self.extra = extra
        # Local failures: e.g. strerror text for CONNECTION-FAILURE.
        self.detail = detail
        # The raw answer line (without newline) when the server sent one.
        self.answer = answer
        super().__init__(self.text)

    @property
    def local(self) -> bool:
        return self.code in _LOCAL_TEXT

    @property
    def text(self) -> str:
        """The string NUT tools print after ``Error: ``."""
        if self.code in _LOCAL_TEXT:
            base = _LOCAL_TEXT[self.code]
            return f"{base}: {self.detail}" if self.detail else base
        return error_text(self.code)

    @property
    def disconnected(self) -> bool:
        return self.code in (SERVER_DISCONNECTED, TIMEOUT)


class CertificateMismatch(NutError):
    """The server's certificate is not the pinned one (TLS-ERROR); nothing else was sent.

    ``fingerprint``: the SHA-256 of the certificate the server presented ("" if none),
    so that a caller can show it and let the user accept it.
    """

    def __init__(self, fingerprint: str) -> None:
        super().__init__(TLS_ERROR, detail="certificate fingerprint mismatch")
        self.fingerprint = fingerprint


class TLSNotOffered(NutError):
    """STARTTLS was required but the server declined it (its ERR code, e.g.
    FEATURE-NOT-CONFIGURED, or PROTOCOL-ERROR for another answer); nothing else was sent."""
