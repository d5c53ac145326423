"""Serial UPS simulators on a pseudo-terminal, to try the serial drivers without hardware.

:class:`~nutbridge.simulation.pty.PtyDevice` owns the pty and the fault injection;
protocol modules (``megatec``, ``apcsmart``) subclass it and answer commands from
a :class:`~nutbridge.simulation.model.SimUPS`.
"""
