"""The external-driver family: NUT's own C drivers, hosted by the bridge or attached to.

Config contract (what :meth:`nutbridge.config.ups_conf.UpsConf.driver_config` puts into a
driver's config; keys starting with ``_`` are the loader's own and never published as
``driver.parameter.*``): ``_mode`` is ``native`` (or absent: the bridge's own family for that
``driver =`` name, else ``hosted``), ``hosted`` (:class:`~.driver.HostedDriver` runs the C binary
``<driver>`` from ``_driverpath`` (ups.conf's global ``driverpath``) or /lib/nut, /usr/lib/nut,
/usr/libexec/nut, ... in a private state directory) or ``attach``
(:class:`~.driver.AttachedDriver` connects to the socket ``<_statepath>/<driver>-<section>`` of a
driver that upsdrvctl or systemd started; the section name is the Device's name). ``_statepath``
defaults to ``$NUT_STATEPATH``, else /run/nut; ``_maxage`` is upsd.conf's MAXAGE (default 15);
``_confdir`` is the directory of the user's ups.conf (relative paths such as dummy-ups' ``port``
resolve there); ``_flags`` names the section's bare flag options (written back bare for the C
driver). A user picks the mode with the ups.conf globals ``nutbridge_hosted = <ups>... | *`` and
``nutbridge_attach = <ups>... | *`` (C drivers ignore unknown globals but refuse unknown keys in a
section); ``driver_config(section, mode="attach")`` forces a mode (``nutbridge upsd``).

Layout: :mod:`.locate` (sans-IO: where the binary is, the private ups.conf text, the socket path
and its 108-byte limit, the argv), :mod:`.mirror` (sans-IO: the driver's state as the socket
protocol's events build it, with bounds and a flood budget) and :mod:`.driver` (the socket
connection, the child process, and the Device).
"""
