"""Tell systemd how the daemon is doing (the ``sd_notify`` protocol, standard library only).

A ``Type=notify`` unit (data/systemd/nutbridge.service, docs/systemd.md) starts us with
``$NOTIFY_SOCKET`` set; systemd counts the service as started only when ``READY=1`` arrives,
shows ``STATUS=`` in ``systemctl status``, and marks it reloading/stopping on ``RELOADING=1`` /
``STOPPING=1``. The protocol is one datagram of newline-separated ``KEY=value`` lines on an
``AF_UNIX``/``SOCK_DGRAM`` socket; a leading ``@`` in the address means Linux's abstract
namespace (a leading NUL byte). This is all libsystemd's ``sd_notify()`` does for these
messages, so no dependency is needed.

Without ``$NOTIFY_SOCKET`` (a terminal, a container, the Home Assistant app) every call does
nothing. A failure to send is logged at debug level and never raised: reporting readiness
must not take the daemon down.
"""

from __future__ import annotations

import logging
import os
import socket
import time

log = logging.getLogger(__name__)


def _address(value: str) -> str | bytes | None:
    if value.startswith("@"):
        return b"\0" + value[1:].encode()  # abstract namespace
    if value.startswith("/"):
        return value
    return None  # systemd only ever passes a path or an abstract name (vsock is not for us)


def notify(*fields: str) -> bool:
    """Send ``fields`` (``"KEY=value"`` each) as one message. True when it was sent; False
    when there is no ``$NOTIFY_SOCKET`` or sending failed (logged at debug level)."""
    target = os.environ.get("NOTIFY_SOCKET", "")
    if not target:
        return False
    address = _address(target)
    if address is None:
        log.debug("sd_notify: unsupported NOTIFY_SOCKET %r", target)
        return False
    message = "\n".join(fields).encode()
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
            sock.sendto(message, address)
    except OSError as exc:
        log.debug("sd_notify %s: %s", fields, exc)
        return False
    return True


def _status(text: str) -> str:
    # one line: systemctl status shows STATUS= as is, and a newline would end the field
    return "STATUS=" + " ".join(text.split())


def ready(status: str | None = None) -> bool:
    """Start-up finished (the service is reachable): ``READY=1``, with a status line if given.
    Also the end of a reload."""
    return notify("READY=1", *([_status(status)] if status is not None else []))


def reloading() -> bool:
    """A reload begins (``READY=1`` ends it). ``MONOTONIC_USEC`` is CLOCK_MONOTONIC in µs, which
    systemd 253+ requires for ``Type=notify-reload`` to match the reload it asked for."""
    return notify("RELOADING=1", f"MONOTONIC_USEC={time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000}")


def stopping() -> bool:
    """Shutting down: ``STOPPING=1`` (systemd shows "deactivating")."""
    return notify("STOPPING=1")


def status(text: str) -> bool:
    """A one-line status for ``systemctl status`` (newlines and runs of spaces become one space)."""
    return notify(_status(text))
