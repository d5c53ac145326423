"""Supervisor discovery end to end: ``nutbridge app`` announces itself, Home Assistant sets it up.

The app runs for real (a subprocess, as the app image's entry point runs it) with a simulated
UPS, listening beyond loopback so that the bridge makes its certificate and offers STARTTLS.
The Supervisor is the one part that cannot run here: a stand-in HTTP endpoint (aiohttp, in the
test's event loop) answers ``/addons/self/info`` and records ``POST /discovery``. The recorded
message is handed to the integration as Home Assistant core's hassio discovery hands it on
(``HassioServiceInfo``, with ``config["addon"]`` set to the app's name); the user only
confirms, and the entry that results is pinned to the bridge's certificate and talks TLS.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from homeassistant.config_entries import SOURCE_HASSIO, ConfigEntryState
from homeassistant.const import CONF_HOST, CONF_PASSWORD, CONF_PORT, CONF_USERNAME
from homeassistant.core import HomeAssistant
from homeassistant.data_entry_flow import FlowResultType
from homeassistant.helpers.service_info.hassio import HassioServiceInfo

from custom_components.nut_bridge.const import CONF_TLS_SHA256, DOMAIN
from custom_components.nut_bridge.coordinator import CONF_ID_PREFIX, NutBridgeConfigEntry
from tests.support.realnut import REPO, free_port

from .conftest import state_of, wait_for

TOKEN = "supervisor-token-for-the-test"


@dataclass
class StandInSupervisor:
    """The Supervisor's API as the app uses it; ``posted``: the bodies of POST /discovery."""

    port: int = field(default_factory=free_port)
    posted: list[dict[str, Any]] = field(default_factory=list)
    authorization: list[str] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def info(self, request: web.Request) -> web.Response:
        # The app's host name on the Supervisor's network; here the test's loopback.
        data = {"hostname": "127.0.0.1", "slug": "local_nut_bridge"}
        return web.json_response({"result": "ok", "data": data})

    async def discovery(self, request: web.Request) -> web.Response:
        self.authorization.append(request.headers.get("Authorization", ""))
        self.posted.append(await request.json())
        return web.json_response({"result": "ok", "data": {"uuid": "4d1a7e3c" * 4}})


@pytest.fixture
async def supervisor(socket_enabled: None) -> AsyncIterator[StandInSupervisor]:
    stand_in = StandInSupervisor()
    app = web.Application()
    app.router.add_get("/addons/self/info", stand_in.info)
    app.router.add_post("/discovery", stand_in.discovery)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", stand_in.port).start()
    yield stand_in
    await runner.cleanup()


def _fingerprint(pem: Path) -> str:
    return x509.load_pem_x509_certificate(pem.read_bytes()).fingerprint(hashes.SHA256()).hex()


async def test_app_discovery_creates_a_pinned_tls_entry(
    hass: HomeAssistant, supervisor: StandInSupervisor, tmp_path: Path, slow_polling: None
) -> None:
    options = tmp_path / "options.json"
    options.write_text(json.dumps({
        "ups": [{"name": "sim", "driver": "simulated", "port": "simulated"}],
        "listen": "0.0.0.0",  # beyond loopback: the bridge makes its certificate
        "log_level": "info",
    }))
    data = tmp_path / "data"
    port = free_port()
    env = {
        **os.environ,
        "PYTHONPATH": str(REPO / "bridge") + os.pathsep + os.environ.get("PYTHONPATH", ""),
        "SUPERVISOR_URL": supervisor.url,
        "SUPERVISOR_TOKEN": TOKEN,
        "TZ": "UTC",
        "LANG": "C",
    }
    log_path = tmp_path / "app.log"
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "nutbridge", "app", "--options", str(options),
             "--data", str(data), "--port", str(port)],
            env=env, stdout=log, stderr=subprocess.STDOUT,
        )
    try:
        await wait_for(
            "the app's discovery message", lambda: bool(supervisor.posted) or proc.poll() is not None, 60
        )
        assert supervisor.posted, log_path.read_text(errors="replace")
        message = supervisor.posted[0]
        assert supervisor.authorization == [f"Bearer {TOKEN}"]
        assert message["service"] == DOMAIN
        config = message["config"]
        fingerprint = _fingerprint(data / "tls" / "nutbridge.pem")
        assert config["tls_sha256"] == fingerprint
        assert (config["host"], config["port"]) == ("127.0.0.1", port)

        # What HA core's hassio discovery starts the flow with (it adds the app's name).
        info = HassioServiceInfo(
            config={**config, "addon": "NUT Bridge"}, name="NUT Bridge", slug="local_nut_bridge",
            uuid="4d1a7e3c" * 4,
        )
        result = await hass.config_entries.flow.async_init(
            DOMAIN, context={"source": SOURCE_HASSIO}, data=info
        )
        assert result["type"] is FlowResultType.FORM
        assert result["step_id"] == "hassio_confirm"
        result = await hass.config_entries.flow.async_configure(result["flow_id"], {})  # "Submit"
        assert result["type"] is FlowResultType.CREATE_ENTRY
        entry: NutBridgeConfigEntry = result["result"]
        assert entry.unique_id == config["id"] == (data / "server-id").read_text().strip()
        assert dict(entry.data) == {
            CONF_HOST: "127.0.0.1",
            CONF_PORT: port,
            CONF_USERNAME: config["username"],
            CONF_PASSWORD: config["password"],
            CONF_TLS_SHA256: fingerprint,
            CONF_ID_PREFIX: config["id"],
        }
        await hass.async_block_till_done()
        assert entry.state is ConfigEntryState.LOADED
        coordinator = entry.runtime_data.coordinator
        assert coordinator.tls_active
        assert state_of(hass, "binary_sensor.sim_online") == "on"
        await wait_for("push over TLS", lambda: coordinator.push_active)
        assert await hass.config_entries.async_unload(entry.entry_id)
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
        code = await hass.async_add_executor_job(proc.wait, 15)
    log_text = log_path.read_text(errors="replace")
    assert code == 0, log_text
    assert config["password"] not in log_text
