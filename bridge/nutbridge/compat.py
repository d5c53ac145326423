"""Which upstream NUT release the bridge reproduces, byte for byte.

NUT 2.8.0 (Debian 12) and 2.8.5 differ in small visible ways: tool help texts and
STARTTLS use, upsd's ``VER``/``server.info``/``server.version``/``HELP``, the driver
core's own variables and commands (2.8.5 adds ``driver.debug``,
``driver.flag.allow_killpower``, ``driver.state`` and the
``driver.reload*``/``driver.killpower``/``shutdown.default`` commands), and some
drivers' tables (nutdrv_qx's Megatec ``I`` layout and battery voltage formats). One
profile selects all of them, so a bridge reproduces one release throughout
(docs/compatibility.md lists each). The default is the newest supported release;
``NUTBRIDGE_NUT_COMPAT=2.8.0`` makes a bridge indistinguishable from a Debian 12
installation. Read at import by upsd's module constants: set it before starting.
"""

from __future__ import annotations

import os

COMPAT_ENV = "NUTBRIDGE_NUT_COMPAT"
SUPPORTED = ("2.8.0", "2.8.5")


def nut_compat() -> str:
    v = os.environ.get(COMPAT_ENV, SUPPORTED[-1]).strip()
    return v if v in SUPPORTED else SUPPORTED[-1]


def driver_core_2_8_5() -> bool:
    return nut_compat() != "2.8.0"
