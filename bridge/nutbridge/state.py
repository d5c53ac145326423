"""Device state: what drivers write and upsd serves.

One :class:`Device` per ``ups.conf`` section. Drivers mutate it (``set``,
``delete``, ``add_cmd``...), upsd reads it. Mutations made inside
``with device.batch():`` are announced to subscribers once, as one set of
changed names, so a poll that touches 40 variables wakes a push client once.

Values are kept unescaped; the protocol layer escapes on output. Lookups are
case-insensitive like upstream's ``strcasecmp`` trees, listings are in
case-insensitive alphabetical order (upstream's in-order tree walk).
"""

from __future__ import annotations

import contextlib
import enum
import logging
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from .protocol.wire import MAX_VALUE

log = logging.getLogger(__name__)


class DriverState(enum.Enum):
    NOT_CONNECTED = "not-connected"  # no driver, or it never reached the device
    WAIT = "wait"  # connected, first data not complete yet (ups.status reads WAIT)
    OK = "ok"
    STALE = "stale"  # driver says it lost the device, or it stopped reporting


@dataclass(slots=True)
class Variable:
    name: str
    value: str
    rw: bool = False
    string: bool = False  # STRING:aux when True, else NUMBER
    aux: int = 0
    enums: list[str] = field(default_factory=list)
    ranges: list[tuple[int, int]] = field(default_factory=list)

    def type_words(self) -> list[str]:
        """The words after ``TYPE ups var`` (2.8 format: all that apply)."""
        words: list[str] = []
        if self.rw:
            words.append("RW")
        if self.enums:
            words.append("ENUM")
        if self.ranges:
            words.append("RANGE")
        words.append(f"STRING:{self.aux}" if self.string else "NUMBER")
        return words


# (device, names of changed variables or commands; empty set = availability change)
Listener = Callable[["Device", frozenset[str]], None]


class Device:
    """The state of one UPS/PDU as served by upsd."""

    def __init__(self, name: str, desc: str | None = None, driver_name: str = "") -> None:
        self.name = name
        self.desc = desc
        self.driver_name = driver_name
        self._vars: dict[str, Variable] = {}
        self._cmds: dict[str, str] = {}
        self._sorted: list[Variable] | None = None
        self._sorted_cmds: list[str] | None = None
        self.driver_state = DriverState.NOT_CONNECTED
        self.last_heard = 0.0
        self.fsd = False  # upsd's latch: only a restart clears it
        self.numlogins = 0
        self._listeners: list[Listener] = []
        self._batch_depth = 0
        self._pending: set[str] = set()
        self.generation = 0  # bumps on any change; lets caches check freshness

    # ---- reading -------------------------------------------------------------
    def get(self, name: str) -> Variable | None:
        return self._vars.get(name.lower())

    def value(self, name: str, default: str | None = None) -> str | None:
        v = self._vars.get(name.lower())
        return v.value if v is not None else default

    def variables(self) -> list[Variable]:
        """All variables in upstream's LIST order (case-insensitive alphabetical)."""
        if self._sorted is None:
            self._sorted = [self._vars[k] for k in sorted(self._vars)]
        return self._sorted

    def commands(self) -> list[str]:
        if self._sorted_cmds is None:
            self._sorted_cmds = [self._cmds[k] for k in sorted(self._cmds)]
        return self._sorted_cmds

    def has_cmd(self, name: str) -> bool:
        return name.lower() in self._cmds

    def canonical_cmd(self, name: str) -> str:
        return self._cmds.get(name.lower(), name)

    @property
    def status(self) -> str:
        if self.driver_state is DriverState.WAIT:
            return "WAIT"
        return self.value("ups.status", "") or ""

    def status_tokens(self) -> list[str]:
        return self.status.split()

    def served_status(self) -> str:
        """ups.status as GET VAR / LIST VAR show it (FSD latch prefixed)."""
        st = self.status
        return f"FSD {st}" if self.fsd else st

    # ---- change notification ------------------------------------------------
    def subscribe(self, listener: Listener) -> Callable[[], None]:
        self._listeners.append(listener)

        def unsubscribe() -> None:
            with contextlib.suppress(ValueError):
                self._listeners.remove(listener)

        return unsubscribe

    @contextlib.contextmanager
    def batch(self) -> Iterator[Device]:
        self._batch_depth += 1
        try:
            yield self
        finally:
            self._batch_depth -= 1
            if self._batch_depth == 0 and self._pending:
                changed = frozenset(self._pending)
                self._pending.clear()
                self._notify(changed)

    def _changed(self, name: str) -> None:
        self.generation += 1
        if self._batch_depth:
            self._pending.add(name)
        else:
            self._notify(frozenset((name,)))

    def _notify(self, changed: frozenset[str]) -> None:
        for listener in list(self._listeners):
            try:
                listener(self, changed)
            except Exception:  # a broken subscriber must not break a driver
                log.exception("state listener failed for %s", self.name)

    # ---- writing (drivers) --------------------------------------------------
    def set(
        self,
        name: str,
        value: str | int | float,
        *,
        rw: bool | None = None,
        string: bool | None = None,
        aux: int | None = None,
    ) -> None:
        """Create or update a variable; flags given are applied, others kept."""
        text = _fmt(value)
        if len(text) > MAX_VALUE:
            text = text[:MAX_VALUE]
        key = name.lower()
        var = self._vars.get(key)
        if var is None:
            var = Variable(name, text)
            self._vars[key] = var
            self._sorted = None
            changed = True
        else:
            changed = var.value != text
            var.value = text
        if rw is not None and var.rw != rw:
            var.rw, changed = rw, True
        if string is not None and var.string != string:
            var.string, changed = string, True
        if aux is not None and var.aux != aux:
            var.aux, changed = aux, True
        if changed:
            self._changed(var.name)

    def set_flags(self, name: str, *, rw: bool = False, string: bool = False) -> None:
        """Replace flags (upstream SETFLAGS semantics)."""
        var = self.get(name)
        if var is not None and (var.rw, var.string) != (rw, string):
            var.rw, var.string = rw, string
            self._changed(var.name)

    def set_aux(self, name: str, aux: int) -> None:
        var = self.get(name)
        if var is not None and var.aux != aux:
            var.aux = aux
            self._changed(var.name)

    def delete(self, name: str) -> bool:
        var = self._vars.pop(name.lower(), None)
        if var is None:
            return False
        self._sorted = None
        self._changed(var.name)
        return True

    def add_enum(self, name: str, value: str) -> None:
        var = self.get(name)
        if var is not None and value not in var.enums:
            var.enums.append(value)
            self._changed(var.name)

    def set_enums(self, name: str, values: list[str]) -> None:
        var = self.get(name)
        if var is not None:
            uniq = list(dict.fromkeys(values))
            if var.enums != uniq:
                var.enums = uniq
                self._changed(var.name)

    def add_range(self, name: str, lo: int, hi: int) -> None:
        var = self.get(name)
        if var is None:
            return
        # Upstream quirk: a range sharing its min or its max with one already
        # present is dropped as a duplicate.
        if any(lo == a or hi == b for a, b in var.ranges):
            return
        var.ranges.append((lo, hi))
        self._changed(var.name)

    def add_cmd(self, name: str) -> None:
        key = name.lower()
        if key not in self._cmds:
            self._cmds[key] = name
            self._sorted_cmds = None
            self._changed(name)

    def delete_cmd(self, name: str) -> None:
        if self._cmds.pop(name.lower(), None) is not None:
            self._sorted_cmds = None
            self._changed(name)

    def clear(self) -> None:
        """Forget every variable and command (a driver re-dumping from scratch)."""
        if self._vars or self._cmds:
            names = [v.name for v in self._vars.values()] + list(self._cmds.values())
            self._vars.clear()
            self._cmds.clear()
            self._sorted = None
            self._sorted_cmds = None
            with self.batch():
                for n in names:
                    self._changed(n)

    def set_status(self, *tokens: str) -> None:
        """Set ups.status from tokens, dropping empties and duplicates."""
        self.set("ups.status", " ".join(dict.fromkeys(t for t in tokens if t)))

    def latch_fsd(self) -> None:
        """upsd's FSD latch: ups.status reads "FSD ..." until restart."""
        if not self.fsd:
            self.fsd = True
            self._changed("ups.status")

    # ---- driver availability ------------------------------------------------
    def _set_driver_state(self, state: DriverState) -> None:
        if self.driver_state is not state:
            old = self.driver_state
            self.driver_state = state
            self.generation += 1
            if state is DriverState.STALE:
                log.warning("Data for UPS [%s] is stale - check driver", self.name)
            elif old is DriverState.STALE and state is DriverState.OK:
                log.info("UPS [%s] data is no longer stale", self.name)
            self._notify(frozenset())

    def driver_connected(self) -> None:
        """The driver reached the device; data until the first dump is WAIT."""
        self.last_heard = time.monotonic()
        if self.driver_state is DriverState.NOT_CONNECTED:
            self._set_driver_state(DriverState.WAIT)

    def data_ok(self) -> None:
        """A full, fresh read of the device completed."""
        self.last_heard = time.monotonic()
        self._set_driver_state(DriverState.OK)

    def heard(self) -> None:
        """Driver alive and data current (heartbeat without a full dump)."""
        self.last_heard = time.monotonic()

    def data_stale(self) -> None:
        if self.driver_state in (DriverState.OK, DriverState.WAIT):
            self._set_driver_state(DriverState.STALE)

    def driver_gone(self) -> None:
        self._set_driver_state(DriverState.NOT_CONNECTED)

    def availability(self, maxage: float, now: float | None = None) -> str | None:
        """None when data may be served, else the ERR code upsd must answer."""
        st = self.driver_state
        if st is DriverState.NOT_CONNECTED:
            return "DRIVER-NOT-CONNECTED"
        if st is DriverState.STALE:
            return "DATA-STALE"
        if st is DriverState.OK:
            now = time.monotonic() if now is None else now
            # Upstream gives one second of grace past MAXAGE.
            if now - self.last_heard > maxage + 1:
                return "DATA-STALE"
        return None


def _fmt(value: str | int | float) -> str:
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, float):
        text = f"{value:.2f}".rstrip("0").rstrip(".")
        return text if text not in ("", "-0") else "0"
    return str(value)
