"""``nutbridge scan``: find UPSes and propose ups.conf sections, as NUT's nut-scanner does.

Sans-IO parts (no sockets, no USB, no tty) are kept apart from the probing so they can be
tested alone: :mod:`.model` (what was found, and nut-scanner's ups.conf / parsable / JSON
output), :mod:`.usbids` (which driver takes a USB vendor/product id), :mod:`.ranges` (bounded
address ranges), and each probe module's own ``classify``/``section`` helpers. The probes:
:mod:`.usb` (pyusb enumeration), :mod:`.serial` (Voltronic/Q1/APC Smart on named ports),
:mod:`.snmp` (v1/v2c agents), :mod:`.nut` (NUT servers over TCP or mDNS). :mod:`.main` is
the command line. Network scans run only when asked, over a bounded range, with a
concurrency cap and a timeout per probe.
"""
