"""PROTVER/NETVER right after STARTTLS, side by side with the installed C upsd.

NUT 2.8.6's clients (upsc, upsmon...) send ``PROTVER`` (and ``NETVER`` when a pre-2.8.3
upsd refuses it) as the first line over the freshly negotiated TLS session. Both upsds
get the same conversation: clear text first, then STARTTLS, a TLS handshake from Python's
``ssl`` and the same lines again, one per write and pipelined in one TLS record. The
answers must be the same bytes.

Debian builds upsd with NSS, so the C side needs an NSS certificate database (made here
with ``certutil`` from libnss3-tools); the bridge reads a PEM ``CERTFILE``. Certificates
are not verified by this client: verification and pinning are tests/test_upsd.py's.
"""

from __future__ import annotations

import shutil
import socket
import ssl
import subprocess
from pathlib import Path

import pytest

from tests.support import realnut
from tests.support.realnut import NutConfig

NSS_PASSWORD = "nss-pw"

#: what a 2.8.6 client says first over TLS, plus the edge cases of the same commands
LINES = ["PROTVER", "NETVER", "PROTVER extra", "NETVER a b", "HELP", "STARTTLS",
         "GET VAR ups ups.status", "LIST UPS"]


def _read_answer(s: socket.socket | ssl.SSLSocket, lines: int) -> bytes:
    """Read until `lines` newlines arrived (LIST UPS counts as one answer: read to END)."""
    buf = b""
    while buf.count(b"\n") < lines or (b"BEGIN LIST UPS" in buf and b"END LIST UPS" not in buf):
        chunk = s.recv(4096)
        if not chunk:
            break
        buf += chunk
    return buf


def conversation(port: int) -> list[bytes]:
    """Every answer of the clear-text part, STARTTLS, and the TLS part, in order."""
    out: list[bytes] = []
    with socket.create_connection(("127.0.0.1", port), timeout=5) as raw:
        for line in LINES[:2]:
            raw.sendall(line.encode() + b"\n")
            out.append(_read_answer(raw, 1))
        raw.sendall(b"STARTTLS\n")
        out.append(_read_answer(raw, 1))
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        with ctx.wrap_socket(raw, server_hostname="localhost") as tls:
            for line in LINES:
                tls.sendall(line.encode() + b"\n")
                out.append(_read_answer(tls, 1))
            # pipelined: the 2.8.6 client's PROTVER and its NETVER fallback in one record
            tls.sendall(b"PROTVER\nNETVER\n")
            out.append(_read_answer(tls, 2))
    return out


@pytest.fixture
def certs(tmp_path: Path) -> dict[str, Path]:
    """A PEM certificate+key for the bridge and an NSS database with a certificate for upsd."""
    certutil = shutil.which("certutil")
    realnut.require("certutil (apt-get install libnss3-tools)", certutil)
    assert certutil
    d = tmp_path / "tls"
    d.mkdir()
    key, crt = d / "key.pem", d / "crt.pem"
    p = subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
                        "-subj", "/CN=localhost", "-keyout", str(key), "-out", str(crt)],
                       capture_output=True)
    realnut.require("openssl command", p.returncode == 0)
    pem = d / "server.pem"
    pem.write_text(crt.read_text() + key.read_text())
    nss = d / "nss"
    nss.mkdir()
    pwfile = d / "pw"
    pwfile.write_text(NSS_PASSWORD + "\n")
    noise = d / "noise"
    noise.write_bytes(bytes(range(256)))
    subprocess.run([certutil, "-N", "-d", f"sql:{nss}", "-f", str(pwfile)], check=True,
                   capture_output=True)
    subprocess.run([certutil, "-S", "-s", "CN=localhost", "-n", "upsd", "-x", "-t", "CTu,Cu,Cu",
                    "-k", "rsa", "-g", "2048", "-v", "1", "-d", f"sql:{nss}", "-f", str(pwfile),
                    "-z", str(noise)], check=True, capture_output=True)
    return {"pem": pem, "nss": nss}


def _cfg(root: Path, upsd_extra: str) -> NutConfig:
    cfg = NutConfig(root)
    root.mkdir(parents=True, exist_ok=True)
    dev = root / "ups.dev"
    dev.write_text("ups.status: OL\nbattery.charge: 100\n")
    cfg.add_ups("ups", driver="dummy-ups", port=str(dev), desc="parity")
    cfg.upsd_extra = upsd_extra
    return cfg


def test_protver_after_starttls_same_bytes(tmp_path: Path, certs: dict[str, Path]) -> None:
    c_cfg = _cfg(tmp_path / "c", f'CERTPATH {certs["nss"]}\nCERTIDENT "upsd" "{NSS_PASSWORD}"\n')
    p_cfg = _cfg(tmp_path / "p", f'CERTFILE {certs["pem"]}\n')
    with realnut.c_upsd(c_cfg), realnut.BridgeProcess.start(p_cfg):
        realnut.wait_ready_ups(p_cfg.port, ["ups"])
        want = conversation(c_cfg.port)
        got = conversation(p_cfg.port)
    # the C upsd really spoke TLS (an NSS set-up failure would answer STARTTLS with an ERR)
    assert want[2] == b"OK STARTTLS\n", want
    assert want[3:5] == [b"1.3\n", b"1.3\n"]
    assert want[-1] == b"1.3\n1.3\n"
    assert got == want
