"""NUT's error vocabulary (RFC 9271 section 5.7; upstream server/neterr.h).

Each code is the exact word sent after ``ERR``; ``Err`` names every code the
bridge's upsd sends (``messages.err`` writes them, ``messages.parse_err`` reads them
back, keeping codes it does not know as text). The client-side human strings are
the ones NUT's client library prints (``Error: <text>``), used by the tools.
"""

from __future__ import annotations

from enum import StrEnum


class Err(StrEnum):
    ACCESS_DENIED = "ACCESS-DENIED"
    UNKNOWN_UPS = "UNKNOWN-UPS"
    VAR_NOT_SUPPORTED = "VAR-NOT-SUPPORTED"
    CMD_NOT_SUPPORTED = "CMD-NOT-SUPPORTED"
    INVALID_ARGUMENT = "INVALID-ARGUMENT"
    INSTCMD_FAILED = "INSTCMD-FAILED"
    SET_FAILED = "SET-FAILED"
    READONLY = "READONLY"
    TOO_LONG = "TOO-LONG"
    INVALID_VALUE = "INVALID-VALUE"
    FEATURE_NOT_SUPPORTED = "FEATURE-NOT-SUPPORTED"
    FEATURE_NOT_CONFIGURED = "FEATURE-NOT-CONFIGURED"
    ALREADY_SSL_MODE = "ALREADY-SSL-MODE"
    DRIVER_NOT_CONNECTED = "DRIVER-NOT-CONNECTED"
    DATA_STALE = "DATA-STALE"
    ALREADY_LOGGED_IN = "ALREADY-LOGGED-IN"
    INVALID_PASSWORD = "INVALID-PASSWORD"
    ALREADY_SET_PASSWORD = "ALREADY-SET-PASSWORD"
    INVALID_USERNAME = "INVALID-USERNAME"
    ALREADY_SET_USERNAME = "ALREADY-SET-USERNAME"
    USERNAME_REQUIRED = "USERNAME-REQUIRED"
    PASSWORD_REQUIRED = "PASSWORD-REQUIRED"
    UNKNOWN_COMMAND = "UNKNOWN-COMMAND"
    # Sent only in GET TRACKING answers.
    UNKNOWN = "UNKNOWN"
    FAILED = "FAILED"
    # Defined upstream but never sent by upsd; kept so clients can name them.
    VAR_UNKNOWN = "VAR-UNKNOWN"
    UNKNOWN_TYPE = "UNKNOWN-TYPE"
    UNKNOWN_INSTCMD = "UNKNOWN-INSTCMD"
    MISSING_ARGUMENT = "MISSING-ARGUMENT"

    def line(self, extra: str = "") -> str:
        """The answer line ``ERR <code>[ <extra>]``."""
        return f"ERR {self.value} {extra}\n" if extra else f"ERR {self.value}\n"


# Client library strings, verified by making upsc 2.8.0 and 2.8.5 print the
# answer of a fake server for every code: tools print "Error: <text>". The client
# matches the text after "ERR " by prefix; unlisted codes give "Unknown error".
CLIENT_ERROR_TEXT: dict[str, str] = {
    "VAR-NOT-SUPPORTED": "Variable not supported by UPS",
    "UNKNOWN-UPS": "Unknown UPS",
    "ACCESS-DENIED": "Access denied",
    "PASSWORD-REQUIRED": "Password required",
    "PASSWORD-INCORRECT": "Password incorrect",
    "MISSING-ARGUMENT": "Missing argument",
    "DATA-STALE": "Data stale",
    "VAR-UNKNOWN": "Variable unknown",
    "ALREADY-LOGGED-IN": "Already logged in",
    "INVALID-PASSWORD": "Invalid password",
    "ALREADY-SET-PASSWORD": "Already set password",
    "INVALID-USERNAME": "Invalid username",
    "ALREADY-SET-USERNAME": "Already set username",
    "USERNAME-REQUIRED": "Username required",
    "UNKNOWN-COMMAND": "Unknown command",
    "INVALID-VALUE": "Invalid value for variable",
    "READONLY": "Read-only variable",
    "TOO-LONG": "New value is too long",
    "INSTCMD-FAILED": "Instant command failed",
    "SET-FAILED": "Set command failed",
    "CMD-NOT-SUPPORTED": "Instant command not supported",
    "UNKNOWN-TYPE": "Unknown variable type",
    "UNKNOWN-VAR": "Unknown variable",
    "UNKNOWN-INSTCMD": "Unknown instant command",
    "DRIVER-NOT-CONNECTED": "Driver not connected",
    # Not in the client's table: INVALID-ARGUMENT, FEATURE-*, ALREADY-SSL-MODE,
    # UNKNOWN, FAILED and anything else print "Unknown error".
}
