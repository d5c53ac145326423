"""The MQTT publisher: every UPS of the bridge as a Home Assistant device over MQTT (docs/mqtt.md).

:mod:`.discovery` builds the topics and payloads (sans-IO, pure); :mod:`.publisher` talks to the
broker (aiomqtt) and acts on command topics through a :class:`~nutbridge.server.core.Core`
session, so MQTT gets exactly upsd's checks.
"""
