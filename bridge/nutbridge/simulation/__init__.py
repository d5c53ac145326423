"""Simulated UPS hardware, to run drivers (ours and NUT's) without a UPS.

On the ground floor of the package: drivers use it (the ``nutbridge-sim`` driver runs the
model, ``usbhid-ups`` replays DDL dumps through the fake USB backend) and so do tests and
benchmarks. It imports nothing of the drivers, the server or the monitor.

* :mod:`.model`: the physics of a line-interactive UPS (battery, mains, load), clock-free;
* :mod:`.pty` with :mod:`.megatec` and :mod:`.apcsmart`: serial UPSes on a pseudo-terminal,
  answering from a :class:`~nutbridge.simulation.model.SimUPS`, with fault injection;
* :mod:`.fakeusb`: a pyusb backend whose devices answer like USB HID UPSes seen through
  libusb; :mod:`.usbdump` builds such devices from NUT DDL dumps;
* :mod:`.main`: ``nutbridge simulate``, a serial UPS on a pty from the command line.
"""
