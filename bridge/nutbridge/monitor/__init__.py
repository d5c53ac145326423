"""upsmon: watch UPSes over the NUT protocol and shut the host down safely.

``config`` reads upsmon.conf, ``notify`` holds the notify types and messages,
``machine`` is the sans-IO decision logic (no sockets, no clocks); the asyncio
runner drives it.
"""
