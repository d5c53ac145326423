"""USB scan: enumerate with pyusb and propose a section per device a driver takes.

Like nut-scanner's ``-U``: ``port = "auto"`` with the ``vendorid``/``productid`` (4 upper-case
hex digits), ``product``, ``serial`` and ``vendor`` strings the driver matches on, then
``bus`` (active) and ``device`` (commented: addresses change on every replug). The strings
need the device opened; a device we may not open (no udev rule) is still proposed, without
them. Enumeration uses the backend the usbhid driver uses (libusb-1.0) unless one is given
(tests pass the fake backend).
"""

from __future__ import annotations

from typing import Any

from .model import Found, Option
from .usbids import NO_MATCH_OPTIONS, RuleId, known_vendors, load_udev_rules, match


def _string(dev: Any, index: int) -> str | None:
    """USB string ``index`` of ``dev``, None when absent or unreadable."""
    if not index:
        return None
    import usb.util  # type: ignore[import-untyped]

    try:
        text = usb.util.get_string(dev, index)
    except Exception:  # an unreadable string is just absent (EACCES, STALL, ...)
        return None
    # trailing blanks dropped, as nut-scanner does: the drivers match the trimmed strings
    return text.rstrip(" ") if isinstance(text, str) else None


def describe(vendor_id: int, product_id: int, manufacturer: str | None, product: str | None,
             serial: str | None, bus: int | None, address: int | None,
             rules: list[RuleId]) -> Found | None:
    """The section for one enumerated device, or None when no driver takes it (sans-IO)."""
    m = match(vendor_id, product_id, manufacturer, product, rules)
    if m is None:
        return None
    driver = m.drivers[0]
    active = None if driver not in NO_MATCH_OPTIONS else ""
    opts = [Option("vendorid", f"{vendor_id:04X}", active), Option("productid", f"{product_id:04X}", active)]
    if product is not None:
        opts.append(Option("product", product, active))
    if serial is not None:
        opts.append(Option("serial", serial, active))
    if manufacturer is not None:
        opts.append(Option("vendor", manufacturer, None if driver != "bcmxcp_usb" else ""))
    opts.append(Option("bus", f"{bus or 0:03d}"))
    opts.append(Option("device", f"{address or 0:03d}", ""))
    return Found("usb", driver, "auto", tuple(opts), m.drivers[1:], {"matched": m.why})


def scan_usb(backend: object | None = None, rules: list[RuleId] | None = None) -> list[Found]:
    """Every plugged device some driver takes, in enumeration order. Raises RuntimeError when
    USB cannot be enumerated (no pyusb, no libusb)."""
    try:
        import usb.backend.libusb1  # type: ignore[import-untyped]
        import usb.core  # type: ignore[import-untyped]
        import usb.util
    except ImportError as exc:
        raise RuntimeError(f"USB scan needs pyusb: {exc}") from None
    if backend is None:
        backend = usb.backend.libusb1.get_backend()
        if backend is None:
            raise RuntimeError("USB scan needs libusb-1.0 (not found)")
    if rules is None:
        rules = load_udev_rules()
    vendors = known_vendors(rules)
    found: list[Found] = []
    try:
        devices = list(usb.core.find(find_all=True, backend=backend))
    except Exception as exc:  # libusb errors at enumeration: report, not a traceback
        raise RuntimeError(f"cannot enumerate USB devices: {exc}") from None
    for dev in devices:
        try:
            vid, pid = int(dev.idVendor), int(dev.idProduct)
        except Exception:  # a device gone between enumeration and reading
            continue
        if vid not in vendors:  # opened only for a known vendor (strings may decide)
            continue
        manufacturer = _string(dev, dev.iManufacturer)
        product = _string(dev, dev.iProduct)
        serial = _string(dev, dev.iSerialNumber)
        try:
            usb.util.dispose_resources(dev)  # close the handle the string reads opened
        except Exception:  # a device gone meanwhile: nothing to release
            pass
        item = describe(vid, pid, manufacturer, product, serial, dev.bus, dev.address, rules)
        if item is not None:
            found.append(item)
    return found
