"""Debian's Mosquitto for the tests: a broker on a free loopback port, configured in a temp dir.

``Mosquitto(root, users={...}, tls=(cert, key)).start()`` (or the :func:`mosquitto` context
manager); restartable on the same port. With ``users`` it uses a password file and refuses
anonymous clients. Used by tests/test_mqtt.py, tests/test_app.py and tests_ha, with the
bridge side they share: the upsd.users account MQTT commands run as, and a bridge's identity.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nutbridge.mqtt import discovery as d

from . import realnut
from .realnut import NutConfig

#: the upsd.users account the MQTT tests map commands to (MQTT_ACCOUNT mqtt)
ACCOUNT_USERS = """\
[mqtt]
    password = mq77-secret
    instcmds = outlet.1.load.off
    instcmds = outlet.1.load.on
    instcmds = test.battery.start.quick
    actions = SET
"""


def mosquitto_exe() -> str:
    exe = shutil.which("mosquitto", path="/usr/sbin:/usr/bin:/sbin")
    realnut.require("Mosquitto broker (apt-get install mosquitto)", exe)
    assert exe
    return exe


@dataclass
class Mosquitto:
    """Debian's mosquitto on 127.0.0.1:port, configured in ``root``; restartable on the same port."""

    root: Path
    port: int = field(default_factory=realnut.free_port)
    users: dict[str, str] = field(default_factory=dict)  # non-empty: password file, no anonymous
    tls: tuple[Path, Path] | None = None  # (certificate, key)
    proc: subprocess.Popen[bytes] | None = None

    @property
    def log_path(self) -> Path:
        return self.root / "mosquitto.log"

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def start(self) -> Mosquitto:
        exe = mosquitto_exe()
        self.root.mkdir(parents=True, exist_ok=True)
        lines = [f"listener {self.port} 127.0.0.1", "persistence false", "log_dest stderr",
                 "log_type error", "log_type warning", "log_type notice", "log_type information"]
        if os.geteuid() == 0:
            lines.append("user root")  # keep reading our 0600 files in a 0700 temp dir
        if self.users:
            pw = self.root / "passwd"
            pw.write_text("".join(f"{u}:{p}\n" for u, p in self.users.items()))
            pw.chmod(0o600)
            subprocess.run([str(Path(exe).parent.parent / "bin" / "mosquitto_passwd"), "-U", str(pw)],
                           check=True, capture_output=True)
            lines += ["allow_anonymous false", f"password_file {pw}"]
        else:
            lines.append("allow_anonymous true")
        if self.tls:
            lines += [f"certfile {self.tls[0]}", f"keyfile {self.tls[1]}"]
        conf = self.root / "mosquitto.conf"
        conf.write_text("\n".join(lines) + "\n")
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen([exe, "-c", str(conf)], stdout=log, stderr=subprocess.STDOUT)
        try:
            realnut.wait_port(self.port, timeout=10)
        except TimeoutError:
            self.stop()
            raise RuntimeError(f"mosquitto did not start:\n{self.log()}") from None
        return self

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None


@contextmanager
def mosquitto(root: Path, **kw: Any) -> Iterator[Mosquitto]:
    broker = Mosquitto(root, **kw).start()
    try:
        yield broker
    finally:
        broker.stop()


def server_id(cfg: NutConfig) -> str:
    """The bridge's id (read from its state directory, as zeroconf's TXT ``id`` is)."""
    deadline = time.monotonic() + 10  # written when the bridge first needs it
    while time.monotonic() < deadline:
        for p in (cfg.run / "nut-bridge" / "server-id", cfg.root / "state" / "server-id"):
            if p.exists() and len(text := p.read_text().strip()) == 32:
                return text
        time.sleep(0.05)
    raise AssertionError(f"no server-id under {cfg.root}")


def identity(cfg: NutConfig) -> d.BridgeIdentity:
    return d.BridgeIdentity(server_id(cfg), "")
