"""Log lines that a peer can trigger, at most once per peer and kind per interval.

A hostile client can make upsd log on every line it sends (parse errors,
refused logins, denied hosts). Writing each one costs the event loop a
syscall and fills the journal; worse, a blocked stderr pipe would stall the
whole process. :class:`RateLimitedLog` keeps the first message of each
``(peer, kind)`` per interval and says how many it left out when it next logs
that key. Its memory is bounded: past ``max_keys`` keys the oldest are forgotten.
"""

from __future__ import annotations

import logging
import time
from collections import OrderedDict

INTERVAL = 60.0
MAX_KEYS = 4096


class RateLimitedLog:
    __slots__ = ("_interval", "_keys", "_log", "_max_keys")

    def __init__(self, logger: logging.Logger, interval: float = INTERVAL, max_keys: int = MAX_KEYS) -> None:
        self._log = logger
        self._interval = interval
        self._max_keys = max_keys
        # (peer, kind) -> [time of the last line logged, lines left out since]
        self._keys: OrderedDict[tuple[str, str], list[float]] = OrderedDict()

    def log(self, level: int, peer: str, kind: str, msg: str, *args: object) -> bool:
        """Log ``msg % args`` unless ``(peer, kind)`` was logged less than an interval ago.

        Returns True when the line was written."""
        now = time.monotonic()
        key = (peer, kind)
        entry = self._keys.get(key)
        if entry is not None and now - entry[0] < self._interval:
            entry[1] += 1
            return False
        left_out = int(entry[1]) if entry is not None else 0
        self._keys[key] = [now, 0]
        self._keys.move_to_end(key)
        while len(self._keys) > self._max_keys:
            self._keys.popitem(last=False)
        if left_out:
            self._log.log(level, msg + " (%d more like this from %s in the last %.0f s)",
                          *args, left_out, peer, self._interval)
        else:
            self._log.log(level, msg, *args)
        return True
