"""``nutbridge scan``: nut-scanner's command line, safe by default.

Selectors use nut-scanner's letters: ``-U`` USB, ``-O`` NUT servers over an address range
(``-s``/``-e``, ``-m``, ``-p``), ``-S`` SNMP agents over the same kind of range (v1, v2c, or
v3 with nut-scanner's ``-l``/``-u``/``-w``/``-W``/``-x``/``-X``),
``-A`` NUT servers announced over mDNS; ``--serial`` probes
the serial ports it names. Without a selector only USB is scanned (``-C`` likewise): the
network is probed only when asked, over at most
``--max-addresses`` addresses, ``-T`` probes at a time, each bounded by ``-t`` seconds.
Output: ups.conf with nut-scanner's sanity comments (``-Q``, default), plain ups.conf
(``-N``), nut-scanner's parsable lines (``-P``) or JSON (``--json``); progress goes to stderr
(``-q`` silences it) so that stdout is the file.
"""

from __future__ import annotations

import argparse
import asyncio
import sys

from . import model
from .ranges import MAX_ADDRESSES, RangeError, addresses, cidr, span
from .snmp import V3_OPTIONS
from .usbids import RuleId

#: the hard ceilings of the bounds (the options may lower them, never raise them past these)
ADDRESS_CEILING = 65536
CONCURRENCY_CEILING = 256


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="nutbridge scan", description="Find UPSes and print ups.conf "
                                "sections for them, as NUT's nut-scanner does (docs/scan.md).")
    bus = p.add_argument_group("buses (nut-scanner's letters; default: USB only)")
    bus.add_argument("-C", "--complete_scan", action="store_true",
                     help="every local bus (USB); network scans still need their own option")
    bus.add_argument("-U", "--usb_scan", action="store_true", help="USB devices")
    bus.add_argument("-O", "--oldnut_scan", action="store_true",
                     help="NUT servers (LIST UPS) on the addresses given by -s/-e/-m")
    bus.add_argument("-S", "--snmp_scan", action="store_true",
                     help="SNMP agents on the addresses given by -s/-e/-m")
    bus.add_argument("-A", "--avahi_scan", action="store_true",
                     help="NUT servers announced over mDNS (_nut._tcp)")
    bus.add_argument("--serial", action="append", default=[], metavar="PORT[,PORT...]",
                     help="probe these serial ports for Voltronic, Megatec/Q1 and APC Smart UPSes "
                     "(never all ports by default)")
    bus.add_argument("--serial-timeout", type=float, default=1.0, metavar="S",
                     help="seconds to wait for each serial answer (1)")
    net = p.add_argument_group("network scans")
    net.add_argument("-s", "--start_ip", action="append", default=[], metavar="IP")
    net.add_argument("-e", "--end_ip", action="append", default=[], metavar="IP")
    net.add_argument("-m", "--mask_cidr", action="append", default=[], metavar="IP/PREFIX")
    net.add_argument("-p", "--port", type=int, action="append", default=[], metavar="PORT",
                     help="upsd port for -O (3493); repeatable, each address is probed on each")
    net.add_argument("-c", "--community", default="public", help="SNMP community for -S (public)")
    net.add_argument("--snmp-version", choices=("v1", "v2c", "v3"), default=None,
                     help="SNMP version for -S (v1, as nut-scanner; v3 when -l is given)")
    v3 = p.add_argument_group("SNMPv3 for -S (nut-scanner's options; written into the sections found)")
    v3.add_argument("-l", "--secLevel", help="noAuthNoPriv, authNoPriv or authPriv")
    v3.add_argument("-u", "--secName", help="the USM user name")
    v3.add_argument("-w", "--authProtocol", help="MD5 (default), SHA, SHA256, SHA384 or SHA512")
    v3.add_argument("-W", "--authPassword", help="for authNoPriv and authPriv")
    v3.add_argument("-x", "--privProtocol", help="DES (default), AES, AES192 or AES256")
    v3.add_argument("-X", "--privPassword", help="for authPriv")
    net.add_argument("--snmp-port", type=int, action="append", default=[], metavar="PORT",
                     help="UDP port for -S (161); repeatable")
    net.add_argument("-t", "--timeout", type=float, default=5.0, help="seconds per probe (5)")
    net.add_argument("-T", "--thread", type=int, default=32, metavar="N",
                     help=f"probes at a time (32, at most {CONCURRENCY_CEILING})")
    net.add_argument("--max-addresses", type=int, default=MAX_ADDRESSES, metavar="N",
                     help=f"refuse ranges larger than this ({MAX_ADDRESSES}, at most {ADDRESS_CEILING})")
    net.add_argument("--mdns-time", type=float, default=3.0, metavar="S",
                     help="how long -A listens for announcements (3 s)")
    out = p.add_argument_group("output")
    fmt = out.add_mutually_exclusive_group()
    fmt.add_argument("-Q", "--disp_nut_conf_with_sanity_check", dest="fmt", action="store_const",
                     const="Q", help="ups.conf with sanity-check warnings as comments (default)")
    fmt.add_argument("-N", "--disp_nut_conf", dest="fmt", action="store_const", const="N",
                     help="ups.conf")
    fmt.add_argument("-P", "--disp_parsable", dest="fmt", action="store_const", const="P",
                     help="one parsable line per device")
    fmt.add_argument("--json", dest="fmt", action="store_const", const="J", help="JSON")
    out.add_argument("-q", "--quiet", action="store_true", help="no progress messages")
    return p


def _ranges(args: argparse.Namespace) -> list[str]:
    limit = max(1, min(args.max_addresses, ADDRESS_CEILING))
    spans = [span(s, args.end_ip[i] if i < len(args.end_ip) else None, limit)
             for i, s in enumerate(args.start_ip)]
    spans += [span(e, None, limit) for e in args.end_ip[len(args.start_ip):]]
    spans += [cidr(m, limit) for m in args.mask_cidr]
    return addresses(spans, limit)


def run(argv: list[str], *, usb_backend: object | None = None,
        udev_rules: list[RuleId] | None = None) -> int:
    """The command; ``usb_backend``: a pyusb backend instead of libusb-1.0, ``udev_rules``:
    instead of NUT's installed udev rules (tests)."""
    args = parser().parse_args(argv)

    def say(text: str) -> None:
        if not args.quiet:
            sys.stderr.write(text + "\n")

    serial_ports = [p for spec in args.serial for p in spec.split(",") if p]
    usb_wanted = args.usb_scan or args.complete_scan or not (
        args.oldnut_scan or args.avahi_scan or args.snmp_scan or serial_ports)
    ranged = args.oldnut_scan or args.snmp_scan
    try:
        hosts = _ranges(args) if ranged else []
    except RangeError as exc:
        sys.stderr.write(f"nutbridge scan: {exc}\n")
        return 2
    if ranged and not hosts:
        sys.stderr.write("nutbridge scan: -O and -S need addresses (-s START [-e END] or -m IP/PREFIX)\n")
        return 2
    ports = args.port or [3493]
    snmp_ports = args.snmp_port or [161]
    if not 0 < args.timeout <= 60 or not all(0 < p < 65536 for p in (*ports, *snmp_ports)):
        sys.stderr.write("nutbridge scan: -t must be in (0, 60] seconds and -p/--snmp-port ports\n")
        return 2
    limit = max(1, min(args.max_addresses, ADDRESS_CEILING))
    for wanted, kind in ((args.oldnut_scan, ports), (args.snmp_scan, snmp_ports)):
        if wanted and len(hosts) * len(kind) > limit:
            sys.stderr.write(f"nutbridge scan: {len(hosts)} addresses x {len(kind)} ports is more "
                             f"than the limit of {limit} probes\n")
            return 2
    concurrency = max(1, min(args.thread, CONCURRENCY_CEILING))
    v3 = {k: v for k in V3_OPTIONS if (v := getattr(args, k))}
    snmp_version = args.snmp_version or ("v3" if v3 else "v1")
    if args.snmp_scan and (v3 or snmp_version == "v3"):
        from ..drivers.base import ConfigError
        from ..drivers.snmp.session import v3_from_options

        if snmp_version != "v3":
            sys.stderr.write("nutbridge scan: -l/-u/-w/-W/-x/-X are SNMPv3 options, not for "
                             f"--snmp-version {snmp_version}\n")
            return 2
        try:
            v3_from_options(v3)
        except ConfigError as exc:  # names what is wrong, never echoes a password
            sys.stderr.write(f"nutbridge scan: {exc}\n")
            return 2
    found: list[model.Found] = []
    rc = 0
    if usb_wanted:
        from .usb import scan_usb

        say("Scanning USB bus.")
        try:
            found += scan_usb(usb_backend, udev_rules)
        except RuntimeError as exc:
            sys.stderr.write(f"nutbridge scan: {exc}\n")
            rc = 1
    if serial_ports:
        from .serial import scan_serial

        say(f"Scanning serial bus on {', '.join(serial_ports)}.")
        found += asyncio.run(scan_serial(serial_ports, timeout=max(0.05, min(args.serial_timeout, 10.0)),
                                         concurrency=concurrency))
    if args.snmp_scan:
        from .snmp import scan_snmp

        say(f"Scanning SNMP bus on {len(hosts)} address(es).")
        try:
            found += asyncio.run(scan_snmp([(h, p) for h in hosts for p in snmp_ports],
                                           community=args.community, version=snmp_version,
                                           timeout=args.timeout, concurrency=concurrency, v3=v3))
        except ImportError as exc:
            sys.stderr.write(f"nutbridge scan: SNMP scan needs pysnmp: {exc}\n")
            rc = 1
    if args.oldnut_scan:
        from .nut import scan_hosts

        say(f"Scanning NUT bus (old connect method) on {len(hosts)} address(es).")
        found += asyncio.run(scan_hosts([(h, p) for h in hosts for p in ports], timeout=args.timeout,
                                        concurrency=concurrency))
    if args.avahi_scan:
        from .nut import browse_mdns, scan_hosts

        say("Scanning NUT bus (avahi method).")
        try:
            servers = asyncio.run(browse_mdns(max(0.1, min(args.mdns_time, 60.0))))
        except RuntimeError as exc:
            sys.stderr.write(f"nutbridge scan: {exc}\n")
            servers, rc = [], 1
        if len(servers) > limit:  # anyone on the LAN can announce: the probes stay bounded
            sys.stderr.write(f"nutbridge scan: {len(servers)} NUT servers announced, probing the "
                             f"first {limit}\n")
            servers = servers[:limit]
        found += asyncio.run(scan_hosts(servers, timeout=args.timeout, concurrency=concurrency))
    fmt = args.fmt or "Q"
    if fmt == "J":
        sys.stdout.write(model.as_json(found))
    elif fmt == "P":
        sys.stdout.write(model.parsable(found))
    else:
        sys.stdout.write(model.ups_conf(found, sanity=fmt == "Q"))
    return rc


def main(argv: list[str]) -> int:
    return run(argv)
