"""What the bridge's other front ends (the HTTP endpoint, the MQTT publisher) get from it.

upsd is one front end on the device state; ``nutbridge.web`` and ``nutbridge.mqtt`` are others.
They read the same :class:`~nutbridge.state.Device` objects and their change notifications
(``Device.subscribe``), never the drivers, and they act (log in, INSTCMD, SET) through the same
:class:`~nutbridge.server.core.Core` as a network client, with a :class:`Session` of their own:
so a command from the status page or from MQTT passes exactly upsd's checks (upsd.users rights,
tracking, the event history's record of who did it).

The composition root (``serve.py``) builds one :class:`Frontend` and hands it to each of them; it
calls :meth:`Frontend.devices_changed` after a reload added or removed UPSes.
"""

from __future__ import annotations

import ssl
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

from ..config.upsd_conf import UpsdConf
from ..history import History
from ..state import Device
from .core import Core


class FrontendService(Protocol):
    """A front end's life cycle as the composition root drives it. ``start`` raises
    :class:`~nutbridge.server.upsd.ListenError` when it cannot bind (the bridge exits 1);
    ``stop`` is called once, before upsd closes."""

    async def start(self) -> None: ...

    async def stop(self) -> None: ...


@dataclass
class Frontend:
    core: Core  #: devices (``core.devices``), users, sessions: ``core.connect(addr)``/``handle``
    history: History  #: the event history (read it; commands record themselves through core)
    upsd: UpsdConf  #: listeners, ALLOW networks (``client_allowed``), the HTTP/MQTT settings
    server_id: Callable[[], str]  #: the bridge's stable id (state directory; zeroconf's TXT ``id``)
    version: str
    #: the context STARTTLS uses (CERTFILE or the generated certificate); None: clear text only
    ssl_context: ssl.SSLContext | None = None
    tls_sha256: str | None = None
    _watchers: list[Callable[[], None]] = field(default_factory=list)

    @property
    def devices(self) -> list[Device]:
        return list(self.core.devices)

    def watch_devices(self, callback: Callable[[], None]) -> Callable[[], None]:
        """Call ``callback`` after UPSes were added or removed; returns the unsubscriber."""
        self._watchers.append(callback)
        return lambda: self._watchers.remove(callback) if callback in self._watchers else None

    def devices_changed(self) -> None:
        for cb in list(self._watchers):
            cb()
