"""Drive Debian's real PyNUT module (package python3-nut) against one NUT server.

Run with the *system* Python that has the module, not the project venv:

    /usr/bin/python3 -I tests/support/pynut_probe.py PORT

Prints one JSON document: a list of ``[label, "ok", result]`` or
``[label, "err", exception class, message]`` entries, bytes decoded as latin-1,
so two servers can be compared call for call. Works with PyNUT 1.4 (NUT 2.8.0,
telnetlib) and 1.9 (NUT 2.8.5, raw sockets); methods that only the newer one has
are probed when present. Standard library only; no test framework here.
"""

from __future__ import annotations

import json
import sys
import time

import PyNUT


def plain(value: object) -> object:
    if isinstance(value, bytes):
        return value.decode("latin-1")
    if isinstance(value, dict):
        return {str(plain(k)): plain(v) for k, v in sorted(value.items())}
    if isinstance(value, list | tuple | set):
        items = [plain(v) for v in value]
        return sorted(items, key=str) if isinstance(value, set) else items
    return value


def main(port: int) -> None:
    out: list[list[object]] = []

    def call(label: str, fn: object, *args: object) -> object:
        try:
            result = fn(*args)  # type: ignore[operator]
        except Exception as exc:  # PyNUTError, socket errors: both are results here
            out.append([label, "err", type(exc).__name__, str(plain(exc.args[0]) if exc.args else "")])
            return None
        out.append([label, "ok", plain(result)])
        return result

    def client(login: str | None = None, password: str | None = None) -> PyNUT.PyNUTClient:
        return PyNUT.PyNUTClient(host="127.0.0.1", port=port, login=login, password=password, timeout=5)

    anon = client()
    call("anon.GetUPSList", anon.GetUPSList)
    call("anon.GetUPSVars ups", anon.GetUPSVars, "ups")
    call("anon.GetUPSVars down", anon.GetUPSVars, "down")
    call("anon.GetUPSVars nope", anon.GetUPSVars, "nope")
    call("anon.GetUPSCommands ups", anon.GetUPSCommands, "ups")
    call("anon.GetRWVars ups", anon.GetRWVars, "ups")
    call("anon.GetRWVars down", anon.GetRWVars, "down")
    call("anon.RunUPSCommand", anon.RunUPSCommand, "ups", "load.off")
    call("anon.SetRWVar", anon.SetRWVar, "ups", "ups.load", "42")
    call("anon.FSD", anon.FSD, "ups")
    call("anon.ver", anon.ver)
    call("anon.help", anon.help)
    call("anon.ListClients ups", anon.ListClients, "ups")
    for name in ("GetUPSNames",):
        if hasattr(anon, name):
            call(f"anon.{name}", getattr(anon, name))
    if hasattr(anon, "CheckUPSAvailable"):
        call("anon.CheckUPSAvailable ups", anon.CheckUPSAvailable, "ups")
        call("anon.CheckUPSAvailable down", anon.CheckUPSAvailable, "down")

    admin = client("admin", "s3cr3t")
    call("admin.SetRWVar ups.load", admin.SetRWVar, "ups", "ups.load", "42")
    call("admin.SetRWVar ups.status", admin.SetRWVar, "ups", "ups.status", "OB")
    call("admin.SetRWVar nope.var", admin.SetRWVar, "ups", "nope.var", "1")
    call("admin.SetRWVar down", admin.SetRWVar, "down", "ups.load", "1")
    # SET VAR is answered before the driver applies it (upstream too): wait for it
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        v = admin.GetUPSVars("ups")
        if v.get(b"ups.load") == b"42" and v.get(b"ups.status") == b"OB":
            break
        time.sleep(0.1)
    call("admin.GetUPSVars after SET", admin.GetUPSVars, "ups")
    call("admin.RunUPSCommand load.off", admin.RunUPSCommand, "ups", "load.off")
    call("admin.RunUPSCommand bogus", admin.RunUPSCommand, "ups", "bogus.cmd")
    call("admin.RunUPSCommand down", admin.RunUPSCommand, "down", "load.off")
    call("admin.FSD (no upsmon role)", admin.FSD, "ups")

    reader = client("reader", "r34d")
    call("reader.RunUPSCommand", reader.RunUPSCommand, "ups", "load.off")
    call("reader.SetRWVar", reader.SetRWVar, "ups", "ups.load", "7")
    wrong = client("admin", "wrong")
    call("wrong-password.RunUPSCommand", wrong.RunUPSCommand, "ups", "load.off")
    try:
        spaced = client("admin", "two words")
    except Exception as exc:
        out.append(["spaced-password.connect", "err", type(exc).__name__, str(plain(exc.args[0]))])
    else:
        out.append(["spaced-password.connect", "ok", None])
        call("spaced-password.RunUPSCommand", spaced.RunUPSCommand, "ups", "load.off")

    if hasattr(PyNUT.PyNUTClient, "DeviceLogin"):
        secondary = client("monsecondary", "ms")
        call("secondary.DeviceLogin", secondary.DeviceLogin, "ups")
        call("secondary.ListClients", secondary.ListClients, "ups")

    primary = client("monprimary", "mp")
    call("primary.FSD", primary.FSD, "ups")
    call("primary.GetUPSVars after FSD", primary.GetUPSVars, "ups")

    json.dump(out, sys.stdout, indent=1)


if __name__ == "__main__":
    main(int(sys.argv[1]))
