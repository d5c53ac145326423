"""``nutbridge upssched``: NUT's upssched, the timer helper behind upsmon's NOTIFYCMD.

``config`` reads upssched.conf, ``plan`` is the sans-IO part (which actions a
notification asks for, the timer table, the wire format between client and timer
daemon) and ``main`` is the program: the client upsmon runs and the timer daemon
the first call starts (docs/upssched.md).
"""
