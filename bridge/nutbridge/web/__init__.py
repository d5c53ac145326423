"""The bridge's HTTP endpoint (docs/http.md): off unless ``HTTP_LISTEN`` or ``--http`` asks for it.

A front end on the device state like upsd (server/frontend.py): it reads the same
:class:`~nutbridge.state.Device` objects, never the drivers, and acts only through
:class:`~nutbridge.server.core.Core` sessions, so it passes upsd's checks.

* :mod:`.server`: the aiohttp application, its listeners (TLS with the bridge's certificate),
  access rules (upsd.conf's ALLOW, hosts.allow/hosts.deny) and security headers;
* :mod:`.metrics`: ``/metrics`` and ``/ups_metrics`` for Prometheus (docs/prometheus.md);
* :mod:`.page` (with :mod:`.api` and ``static/``): the status page and its JSON.
"""
