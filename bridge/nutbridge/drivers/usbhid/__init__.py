"""USB HID Power Device support (the ``usbhid-ups`` driver): report descriptor
parsing, value conversion, USB transport and the per-vendor NUT mappings."""
