"""Asyncio client library for the NUT network protocol (1.3).

>>> async with NutClient("localhost") as c:
...     status = await c.get_var("ups", "ups.status")
"""

from .core import DEFAULT_PORT, DEFAULT_TIMEOUT, NutClient, Session, check_err
from .errors import (
    CONNECTION_FAILURE,
    NO_SUCH_HOST,
    PROTOCOL_ERROR,
    SERVER_DISCONNECTED,
    TIMEOUT,
    TLS_ERROR,
    CertificateMismatch,
    NutError,
    TLSNotOffered,
    error_text,
)
from .reconnect import ReconnectingClient
from .tls import TLSMode, TLSOptions, fingerprint

__all__ = [
    "CONNECTION_FAILURE",
    "DEFAULT_PORT",
    "DEFAULT_TIMEOUT",
    "NO_SUCH_HOST",
    "PROTOCOL_ERROR",
    "SERVER_DISCONNECTED",
    "TIMEOUT",
    "TLS_ERROR",
    "CertificateMismatch",
    "NutClient",
    "NutError",
    "ReconnectingClient",
    "Session",
    "TLSMode",
    "TLSNotOffered",
    "TLSOptions",
    "check_err",
    "error_text",
    "fingerprint",
]
