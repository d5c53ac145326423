"""A real Home Assistant process for benchmarks/scale.py: started, onboarded, driven over its APIs.

Not the test harness (pytest-homeassistant-custom-component runs HA inside pytest's event loop,
where its CPU and memory cannot be told apart from the test's): ``python -m homeassistant`` in
its own process, with a fresh configuration directory, so that its CPU time and RSS can be read
from /proc like any daemon's.

Everything is set up through HA's public HTTP and websocket APIs, the way the frontend does it,
because that is what stays stable across releases (the ``.storage`` files are private and
versioned; writing them by hand breaks when a schema version moves):

1. ``configuration.yaml`` loads only ``http`` (on 127.0.0.1 and a free port), ``api``,
   ``websocket_api``, ``config`` (the config-entry flow API), ``onboarding`` and ``logger``; no
   ``default_config`` (no recorder, frontend, zeroconf...), ``--skip-pip`` (no downloads).
2. Onboarding: ``POST /api/onboarding/users`` creates the owner and answers an auth code, which
   ``POST /auth/token`` exchanges for an access token; over the websocket that token buys a
   long-lived one (``auth/long_lived_access_token``), so runs longer than 30 min keep working,
   and ``http/config/promote`` confirms the ``http:`` settings (HA 2026.10 migrates them from
   YAML to a pending config and restarts after 5 min unless someone confirms it).
3. Integrations: ``POST /api/config/config_entries/flow`` with the handler (``mqtt``,
   ``nut_bridge``), then the form's fields to ``.../flow/<flow_id>`` (the given ones, the rest as
   the frontend leaves them: defaults, read from the form's ``data_schema``), until
   ``create_entry``: MQTT needs a config entry (its YAML only configures entities), and this is
   the flow a user clicks through.
4. Counting and timing: the websocket's ``config/device_registry/list`` and
   ``config/entity_registry/list``, and ``subscribe_trigger`` with a ``state`` trigger on the
   entities timed (HA filters at the source: ``subscribe_events`` of ``state_changed`` would
   stream every state change of tens of thousands of entities to the benchmark, and that
   serialisation would be counted as HA's own cost).

Where Home Assistant is not importable by this interpreter (Debian 12's Python 3.11 is too old),
HA runs in the Debian sid userland (``../shared/tools/sid``, same network namespace, same PIDs:
the tool only adds a mount namespace and ``exec``s): its configuration directory is then made
under the repository's ``.scratch/`` (git-ignored), which sid mounts at the same path.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiohttp

REPO = Path(__file__).resolve().parents[1]
SID = Path(os.environ.get("SID", REPO.parent / "shared" / "tools" / "sid"))
SID_PYTHON = REPO / ".venv-3.14" / "bin" / "python"
CLIENT_ID = "http://127.0.0.1/"  # IndieAuth client id: any URL; HA only checks its shape
USER, PASSWORD = "bench", "bench-scale-not-secret"

CONFIGURATION = """\
homeassistant:
  name: NUT Bridge scale benchmark
  latitude: 52.52
  longitude: 13.40
  elevation: 34
  unit_system: metric
  time_zone: UTC
  currency: EUR
  country: DE
http:
  server_host: 127.0.0.1
  server_port: {port}
api:
websocket_api:
config:
onboarding:
logger:
  default: warning
"""


def ha_importable() -> bool:
    """Can this interpreter run Home Assistant itself?"""
    try:
        out = subprocess.run([sys.executable, "-c", "import homeassistant"], capture_output=True, timeout=60)
    except (OSError, subprocess.SubprocessError):
        return False
    return out.returncode == 0


def ha_command(python: str | None) -> tuple[list[str], bool]:
    """How to start ``python -m homeassistant``: (argv prefix, through sid?)."""
    if python:
        return [python], False
    if ha_importable():
        return [sys.executable], False
    if SID.exists() and SID_PYTHON.exists():
        return [str(SID), str(SID_PYTHON)], True
    raise SystemExit("scale: Home Assistant is not importable here (needs Python >= 3.14.2 and "
                     "requirements-ha.txt): pass --hass-python, or provide ../shared/tools/sid "
                     "with .venv-3.14")


def ha_version(prefix: list[str]) -> str:
    try:
        code = "from homeassistant.const import __version__; print(__version__)"
        out = subprocess.run([*prefix, "-c", code], capture_output=True, text=True, timeout=120, cwd=REPO)
    except (OSError, subprocess.SubprocessError):
        return "?"
    return out.stdout.strip().splitlines()[-1] if out.stdout.strip() else "?"


class Hass:
    """One ``python -m homeassistant`` with a fresh configuration directory on ``port``."""

    def __init__(self, port: int, python: str | None, custom_components: list[Path] | None = None) -> None:
        self.port = port
        self.base = f"http://127.0.0.1:{port}"
        self.prefix, self.sid = ha_command(python)
        self.frontend_stub = False
        scratch = REPO / ".scratch"
        scratch.mkdir(exist_ok=True)
        # under the repository when HA runs in sid: mounted there at the same path
        self.config = Path(tempfile.mkdtemp(prefix="scale-ha-", dir=scratch if self.sid else None))
        (self.config / "configuration.yaml").write_text(CONFIGURATION.format(port=port))
        cc = self.config / "custom_components"
        cc.mkdir()
        for comp in custom_components or []:
            (cc / comp.name).symlink_to(comp)
        if not self._importable("hass_frontend"):
            # HA always sets up `frontend` and falls back to recovery mode (none of the YAML's
            # integrations) when it fails; its UI package is not needed to measure anything
            stub = cc / "frontend"
            stub.mkdir()
            (stub / "manifest.json").write_text(json.dumps(
                {"domain": "frontend", "name": "Frontend (not installed: stand-in)", "version": "0.0.0",
                 "documentation": "https://example.invalid", "codeowners": [], "requirements": []}))
            (stub / "__init__.py").write_text(
                '"""Stand-in for HA\'s frontend (its UI package is not installed)."""\n\n\n'
                "async def async_setup(hass, config):\n    return True\n")
            self.frontend_stub = True
        self.proc: subprocess.Popen[bytes] | None = None
        self.token = ""

    def _importable(self, module: str) -> bool:
        try:
            out = subprocess.run([*self.prefix, "-c", f"import {module}"], capture_output=True, timeout=120,
                                 cwd=REPO)
        except (OSError, subprocess.SubprocessError):
            return False
        return out.returncode == 0

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    @property
    def log_path(self) -> Path:
        return self.config / "hass.out"

    def start(self) -> None:
        env = dict(os.environ, PYTHONDONTWRITEBYTECODE="1")
        env.pop("PYTHONPATH", None)
        with open(self.log_path, "wb") as log:
            # cwd: sid mounts the parent of its working directory (/work) at the same path
            # -P: the working directory is not on sys.path (its custom_components would shadow ours)
            argv = [*self.prefix, "-P", "-m", "homeassistant", "--config", str(self.config), "--skip-pip"]
            self.proc = subprocess.Popen(argv, cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT)

    def log_tail(self, n: int = 3000) -> str:
        text = ""
        for p in (self.log_path, self.config / "home-assistant.log"):
            with contextlib.suppress(OSError):
                text += p.read_text(errors="replace")[-n:]
        return text

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def remove(self) -> None:
        shutil.rmtree(self.config, ignore_errors=True)

    # ---- HTTP ----------------------------------------------------------------------------------

    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    async def wait_http(self, timeout: float) -> float:
        """Seconds until ``/api/onboarding`` answers (HA's HTTP server is up)."""
        t0 = time.monotonic()
        async with aiohttp.ClientSession() as s:
            while time.monotonic() - t0 < timeout:
                if self.proc is not None and self.proc.poll() is not None:
                    raise RuntimeError(f"Home Assistant exited ({self.proc.returncode}):\n{self.log_tail()}")
                with contextlib.suppress(aiohttp.ClientError, OSError, asyncio.TimeoutError):
                    async with s.get(f"{self.base}/api/onboarding",
                                     timeout=aiohttp.ClientTimeout(total=5)) as r:
                        if r.status == 200:
                            return time.monotonic() - t0
                await asyncio.sleep(0.5)
        raise RuntimeError(f"Home Assistant's HTTP did not come up in {timeout:.0f} s:\n{self.log_tail()}")

    async def onboard(self) -> None:
        """Create the owner user and get a token (``self.token``)."""
        async with aiohttp.ClientSession() as s:
            async with s.post(f"{self.base}/api/onboarding/users", json={
                    "client_id": CLIENT_ID, "name": "Bench", "username": USER, "password": PASSWORD,
                    "language": "en"}) as r:
                if r.status != 200:
                    raise RuntimeError(f"onboarding: {r.status} {await r.text()}")
                code = (await r.json())["auth_code"]
            async with s.post(f"{self.base}/auth/token", data={
                    "grant_type": "authorization_code", "code": code, "client_id": CLIENT_ID}) as r:
                if r.status != 200:
                    raise RuntimeError(f"token: {r.status} {await r.text()}")
                self.token = (await r.json())["access_token"]
        async with HaSocket(self) as ws:
            self.token = await ws.call("auth/long_lived_access_token", client_name="scale benchmark",
                                       lifespan=30)
            # Since 2026.10 HA moves `http:` from YAML into storage as a *pending* config that
            # the user must confirm within 5 min, else HA restarts itself (here: exits) to
            # revert it; confirming is what the UI's prompt does. Older HA has no such command.
            with contextlib.suppress(RuntimeError):
                await ws.call("http/config/promote")

    async def add_entry(self, handler: str, answers: list[dict[str, Any]], tries: int = 1) -> int:
        """Run the config flow of ``handler``, answering its forms in order, until it creates the
        entry; a flow that ends otherwise (e.g. ``cannot_connect`` from a saturated HA) is run
        again, ``tries`` times in all. Returns the number of failed tries."""
        for failed in range(tries):
            try:
                await self._flow(handler, answers)
                return failed
            except RuntimeError:
                if failed == tries - 1:
                    raise
                await asyncio.sleep(5)
        return tries

    async def _flow(self, handler: str, answers: list[dict[str, Any]]) -> dict[str, Any]:
        async with aiohttp.ClientSession(headers=self.headers()) as s:
            url = f"{self.base}/api/config/config_entries/flow"
            async with s.post(url, json={"handler": handler, "show_advanced_options": False}) as r:
                step: dict[str, Any] = await r.json()
            for answer in answers:
                if step.get("type") != "form":
                    break
                filled = {**form_defaults(step.get("data_schema") or []), **answer}
                async with s.post(f"{url}/{step['flow_id']}", json=filled) as r:
                    step = await r.json()
            if step.get("type") != "create_entry":
                raise RuntimeError(f"config flow {handler}: {json.dumps(step)[:1000]}")
            return step


def form_defaults(schema: list[dict[str, Any]]) -> dict[str, Any]:
    """What the frontend submits for the fields left alone: each field's default, and for a
    required field without one an "off" value (booleans false, a select's first option; a
    collapsed section, e.g. MQTT's "other settings", filled the same way)."""
    out: dict[str, Any] = {}
    for f in schema:
        name = f.get("name")
        if not isinstance(name, str):
            continue
        if "default" in f:
            out[name] = f["default"]
        elif f.get("type") == "expandable":
            out[name] = form_defaults(f.get("schema") or [])
        elif f.get("required"):
            sel = f.get("selector") or {}
            if "boolean" in sel:
                out[name] = False
            elif "select" in sel and sel["select"].get("options"):
                first = sel["select"]["options"][0]
                out[name] = first["value"] if isinstance(first, dict) else first
    return out


class HaSocket:
    """HA's websocket API: ``call`` for commands, ``subscribe_trigger`` for timed state changes."""

    def __init__(self, hass: Hass) -> None:
        self.hass = hass
        self.ids = itertools.count(1)
        self.pending: dict[int, asyncio.Future[Any]] = {}
        self.handlers: dict[int, Callable[[dict[str, Any], float], None]] = {}
        self._session: aiohttp.ClientSession | None = None
        self._ws: aiohttp.ClientWebSocketResponse | None = None
        self._reader: asyncio.Task[None] | None = None
        self.closed = False

    async def __aenter__(self) -> HaSocket:
        self._session = aiohttp.ClientSession()
        # the registries of 1,000 devices are tens of MB in one message
        self._ws = await self._session.ws_connect(f"{self.hass.base}/api/websocket", max_msg_size=0)
        hello = await self._ws.receive_json()
        assert hello["type"] == "auth_required", hello
        await self._ws.send_json({"type": "auth", "access_token": self.hass.token})
        ok = await self._ws.receive_json()
        if ok["type"] != "auth_ok":
            raise RuntimeError(f"websocket auth: {ok}")
        self._reader = asyncio.create_task(self._read())
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reader
        if self._ws is not None:
            await self._ws.close()
        if self._session is not None:
            await self._session.close()

    async def _read(self) -> None:
        assert self._ws is not None
        async for msg in self._ws:
            now = time.monotonic()  # as the frame arrives, before JSON decoding
            if msg.type != aiohttp.WSMsgType.TEXT:
                break
            data = json.loads(msg.data)
            for m in data if isinstance(data, list) else [data]:
                mid = m.get("id")
                if m.get("type") == "event" and mid in self.handlers:
                    self.handlers[mid](m["event"], now)
                elif m.get("type") == "result" and mid in self.pending:
                    fut = self.pending.pop(mid)
                    if m.get("success"):
                        fut.set_result(m.get("result"))
                    else:
                        fut.set_exception(RuntimeError(f"websocket: {m.get('error')}"))
        self.closed = True
        for fut in self.pending.values():
            if not fut.done():
                fut.set_exception(RuntimeError("websocket closed"))

    async def call(self, kind: str, timeout: float = 120.0, **kw: Any) -> Any:
        assert self._ws is not None
        mid = next(self.ids)
        fut: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self.pending[mid] = fut
        await self._ws.send_json({"id": mid, "type": kind, **kw})
        return await asyncio.wait_for(fut, timeout)

    async def subscribe_trigger(self, entity_ids: list[str],
                                handler: Callable[[str, str, float], None]) -> None:
        """``handler(entity_id, new_state, arrival_monotonic)`` for every state change of these."""
        assert self._ws is not None
        mid = next(self.ids)

        def on_event(event: dict[str, Any], now: float) -> None:
            trig = event.get("variables", {}).get("trigger", {})
            to = trig.get("to_state") or {}
            handler(str(trig.get("entity_id")), str(to.get("state")), now)

        self.handlers[mid] = on_event
        fut: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self.pending[mid] = fut
        await self._ws.send_json({"id": mid, "type": "subscribe_trigger",
                                  "trigger": {"trigger": "state", "entity_id": entity_ids}})
        await asyncio.wait_for(fut, 60)
