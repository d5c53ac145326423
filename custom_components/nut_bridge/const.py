"""Constants for the NUT Bridge integration."""

from __future__ import annotations

from datetime import timedelta
from typing import Final

from homeassistant.const import Platform

DOMAIN: Final = "nut_bridge"

DEFAULT_HOST: Final = "localhost"
DEFAULT_PORT: Final = 3493

# Every platform of the integration, set up (and unloaded) in this order.
PLATFORMS: Final = [
    Platform.BINARY_SENSOR,
    Platform.SENSOR,
    Platform.BUTTON,
    Platform.EVENT,
    Platform.NUMBER,
    Platform.SELECT,
    Platform.SWITCH,
    Platform.TEXT,
]

# Poll interval while every UPS is on line power, and while any UPS is on battery.
UPDATE_INTERVAL: Final = timedelta(seconds=5)
UPDATE_INTERVAL_ON_BATTERY: Final = timedelta(seconds=2)
# Per-request timeout of the NUT client, seconds.
CLIENT_TIMEOUT: Final = 5.0

KEY_STATUS: Final = "ups.status"
KEY_MFR: Final = "ups.mfr"
KEY_MODEL: Final = "ups.model"
KEY_SERIAL: Final = "ups.serial"
KEY_FIRMWARE: Final = "ups.firmware"

# Answers that make a single UPS unavailable without failing the whole poll.
UPS_UNAVAILABLE_CODES: Final = frozenset({"DATA-STALE", "DRIVER-NOT-CONNECTED", "UNKNOWN-UPS"})
# Answers meaning the credentials were refused.
AUTH_FAILED_CODES: Final = frozenset({"ACCESS-DENIED", "USERNAME-REQUIRED", "PASSWORD-REQUIRED"})

# entry.data key: SHA-256 fingerprint of the server's TLS certificate (64 lowercase hex
# digits). Present = the server offered STARTTLS: every connection then requires TLS with
# exactly this certificate, and no credential is sent otherwise.
CONF_TLS_SHA256: Final = "tls_sha256"

# Repair issues about the server's TLS (per entry; raised by the coordinator).
ISSUE_CERTIFICATE_CHANGED: Final = "certificate_changed"
ISSUE_TLS_UNAVAILABLE: Final = "tls_unavailable"
