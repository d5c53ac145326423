"""TLS without setup: the bridge's own self-signed certificate, made once and kept.

A bridge that listens beyond loopback with no ``CERTFILE`` in upsd.conf (and without
``AUTO_TLS false``) offers STARTTLS with a certificate it makes on first start and keeps as
one PEM file, certificate then key, mode 0600, in ``<state dir>/tls/nutbridge.pem``. Later
starts reuse it, so its fingerprint (SHA-256 of the certificate's DER, what the zeroconf TXT
``tls_sha256`` and the Supervisor discovery publish and what clients pin) stays the same.

The certificate: an EC P-256 key (made and signed in about 60 ms here; supported by
every OpenSSL and NSS a NUT client is built with), valid for ten years from a day before it
was made (clocks that lag; pinning clients ignore the dates, and a renewal would change the
fingerprint, so it is long rather than renewed), CN = host name,
subjectAltName = the host name, ``<host>.local`` (the mDNS name the bridge advertises),
``localhost`` and the addresses upsd listens on (for a wildcard, the host's addresses at that
time and loopback). Clients that pin do not read the names; they are there for clients that
verify it as a trust anchor (NUT's ``CERTVERIFY`` with the PEM in ``CERTPATH``), which is why
the certificate is a proper end-entity one (not a CA, serverAuth).

A generated file that cannot be used (unreadable, corrupt, key not matching, expired) is moved
aside as ``nutbridge.pem.broken-<time>`` and a new one is made, with a warning: the file is
ours, not the user's, and a bridge that refused to start over it would stop serving the UPS
(shutdowns) for a file nobody configured. No client silently accepts the new certificate: its
fingerprint differs, so clients that pinned the old one refuse it (Home Assistant raises a
repair). A configured ``CERTFILE`` that cannot be loaded still stops the bridge (exit 2): the
user asked for that certificate. See docs/tls.md.
"""

from __future__ import annotations

import contextlib
import hashlib
import ipaddress
import logging
import os
import re
import socket
import ssl
import stat
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from .zeroconf import host_addresses, host_label

log = logging.getLogger("nutbridge")

TLS_DIR = "tls"
CERT_NAME = "nutbridge.pem"
VALIDITY = timedelta(days=3650)
BACKDATE = timedelta(days=1)

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
_PEM_CERT = re.compile(r"-----BEGIN CERTIFICATE-----\s.*?-----END CERTIFICATE-----", re.DOTALL)


@dataclass(frozen=True)
class Certificate:
    path: Path
    sha256: str  # of the certificate's DER: 64 lowercase hex digits
    created: bool  # made by this start


def cert_path(state_dir: Path) -> Path:
    return state_dir / TLS_DIR / CERT_NAME


def pem_fingerprint(text: str) -> str:
    """SHA-256 of the first certificate's DER in PEM text (the server's own certificate in a
    CERTFILE: certificate, then its chain and the key). ValueError without a certificate."""
    m = _PEM_CERT.search(text)
    if m is None:
        raise ValueError("no certificate in the PEM data")
    return hashlib.sha256(ssl.PEM_cert_to_DER_cert(m.group(0))).hexdigest()


def file_fingerprint(path: str | Path) -> str | None:
    """The fingerprint of a PEM file's certificate, None when it cannot be read."""
    try:
        return pem_fingerprint(Path(path).read_text(encoding="ascii", errors="replace"))
    except (OSError, ValueError):
        return None


def subject_names(bound: list[tuple[str, int]]) -> tuple[str, list[str], list[IPAddress]]:
    """(CN, DNS names, IP addresses) for upsd's bound sockets."""
    host = socket.gethostname() or "nut-bridge"
    dns = list(dict.fromkeys([host, f"{host_label(host)}.local", "localhost"]))
    ips: list[IPAddress] = []
    for h, _ in bound:
        ip = ipaddress.ip_address(h.split("%", 1)[0])
        if ip.is_unspecified:
            try:
                found = [a for a in host_addresses() if a.version == ip.version]
            except ImportError:  # no python-zeroconf (ifaddr): the names must do
                found = []
            loop = ipaddress.ip_address("127.0.0.1" if ip.version == 4 else "::1")
            ips += [*found, loop]
        elif not (ip.version == 6 and ip.is_link_local):
            ips.append(ip)
    return host[:64], dns, list(dict.fromkeys(ips))


def generate(cn: str, dns: list[str], ips: list[IPAddress], now: datetime | None = None) -> bytes:
    """A new self-signed certificate and its key, as PEM (certificate first)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    now = now or datetime.now(UTC)
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn),
                      x509.NameAttribute(NameOID.ORGANIZATION_NAME, "NUT Bridge")])
    alt: list[x509.GeneralName] = [x509.DNSName(d) for d in dns]
    alt += [x509.IPAddress(ip) for ip in ips]
    ski = x509.SubjectKeyIdentifier.from_public_key(key.public_key())
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - BACKDATE)
        .not_valid_after(now - BACKDATE + VALIDITY)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.KeyUsage(digital_signature=True, content_commitment=False,
                                     key_encipherment=False, data_encipherment=False,
                                     key_agreement=False, key_cert_sign=False, crl_sign=False,
                                     encipher_only=False, decipher_only=False), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.SubjectAlternativeName(alt), critical=False)
        .add_extension(ski, critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski),
                       critical=False)
        .sign(key, hashes.SHA256())
    )
    return cert.public_bytes(serialization.Encoding.PEM) + key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())


def _problem(path: Path, data: bytes, now: datetime) -> str | None:
    """Why a kept PEM cannot serve (None: it can)."""
    from cryptography import x509

    try:
        # what upsd will do with it: certificate and matching key
        ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER).load_cert_chain(path)
        cert = x509.load_pem_x509_certificate(data)
    except (ssl.SSLError, ValueError) as exc:
        return f"not a certificate and its key ({exc})"
    if cert.not_valid_after_utc <= now:
        return f"expired on {cert.not_valid_after_utc:%Y-%m-%d}"
    return None


def _write_new(path: Path, data: bytes) -> bool:
    """Write ``data`` at ``path`` unless it appeared meanwhile (another bridge on the same
    state dir): False then. Never a partial or world-readable file."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.link(tmp, path)  # fails if it exists: the first writer's file is everyone's
    except FileExistsError:
        return False
    finally:
        with contextlib.suppress(OSError):
            tmp.unlink()
    with contextlib.suppress(OSError):
        dfd = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)
    return True


def ensure(state_dir: Path, bound: list[tuple[str, int]], now: datetime | None = None) -> Certificate:
    """The kept certificate in ``state_dir``, made (or remade, see the module docstring) when
    needed. OSError when the state directory cannot hold one; ImportError without the
    ``cryptography`` package."""
    now = now or datetime.now(UTC)
    path = cert_path(state_dir)
    path.parent.mkdir(mode=0o700, exist_ok=True)
    for _ in range(2):
        problem: str | None = None
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            pass
        except OSError as exc:
            problem = f"cannot read it: {exc.strerror or exc}"
        else:
            problem = _problem(path, data, now)
            if problem is None:
                mode = stat.S_IMODE(os.stat(path).st_mode)
                if mode & 0o077:  # it holds the private key
                    os.chmod(path, 0o600)
                    log.warning("TLS: %s was readable by others (mode %04o): now 0600", path, mode)
                return Certificate(path, pem_fingerprint(data.decode("ascii", "replace")), False)
        if problem is not None:
            aside = path.with_name(f"{path.name}.broken-{time.strftime('%Y%m%dT%H%M%S')}")
            os.replace(path, aside)
            log.warning("TLS: %s cannot be used (%s): moved to %s; making a new certificate "
                        "(clients that pinned the old fingerprint will refuse the new one)",
                        path, problem, aside.name)
        pem = generate(*subject_names(bound), now=now)
        if _write_new(path, pem):
            fp = pem_fingerprint(pem.decode("ascii"))
            log.info("TLS: made a self-signed certificate %s, SHA-256 %s", path, fp)
            return Certificate(path, fp, True)
        # another process wrote one meanwhile: use that one
    raise OSError(f"{path}: cannot settle on a certificate")
