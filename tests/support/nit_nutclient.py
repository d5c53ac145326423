"""NIT's Python client test (NUT's ``scripts/python/module/test_nutclient.py``), as a probe.

Run with the *system* Python that has Debian's PyNUT (package python3-nut), not the venv,
the way nit.sh runs the upstream script: configured by the environment (``NUT_HOST``,
``NUT_PORT``, ``NUT_USER``, ``NUT_PASS``)::

    NUT_PORT=34931 NUT_USER=admin NUT_PASS=mypass /usr/bin/python3 -I tests/support/nit_nutclient.py

It makes the calls of the upstream script of the installed release (NUT 2.8.5's PyNUT 1.9 has
CheckUPSAvailable, ListClients and DeviceLogin; 2.8.0's PyNUT 1.4 only the older ones) and
judges them by the newer script's rules, also for 2.8.0 (whose script judged nothing):

* GetUPSList, GetUPSVars("dummy"), CheckUPSAvailable, GetUPSCommands, GetRWVars must succeed;
* RunUPSCommand("UPS1", "test.panel.start") must fail: ``ERR USERNAME-REQUIRED`` without
  credentials, else ``ERR CMD-NOT-SUPPORTED`` or ``ERR ACCESS-DENIED``;
* SetRWVar("UPS1", "ups.id", "test") likewise with ``ERR VAR-NOT-SUPPORTED`` (or succeeds with
  credentials);
* ListClients("dummy") succeeds, ListClients("MissingBogusDummy") fails with ``ERR UNKNOWN-UPS``;
  DeviceLogin("dummy") fails with ``ERR USERNAME-REQUIRED`` without credentials, succeeds or
  fails with ``ERR ACCESS-DENIED`` with them; ListClients() then lists that session.

Prints one JSON document ``{"calls": [[label, "ok", result] | [label, "err", message]],
"failed": [label...]}`` (bytes as latin-1) and exits 1 when a call failed unexpectedly, like
the upstream script. Standard library only.
"""

from __future__ import annotations

import json
import os
import sys

import PyNUT


def plain(value: object) -> object:
    if isinstance(value, bytes):
        return value.decode("latin-1")
    if isinstance(value, dict):
        return {str(plain(k)): plain(v) for k, v in sorted(value.items())}
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    return value


def message(exc: BaseException) -> str:
    """The error line of a PyNUTError (``ERR ...``), whatever the PyNUT version wraps it in."""
    arg = exc.args[0] if exc.args else str(exc)
    text = plain(arg)
    return str(text).strip()


def main() -> int:
    host = os.environ.get("NUT_HOST", "127.0.0.1")
    port = int(os.environ.get("NUT_PORT", "3493"))
    user = os.environ.get("NUT_USER") or None
    password = os.environ.get("NUT_PASS") or None
    calls: list[list[object]] = []
    failed: list[str] = []

    def call(label: str, fn: object, *args: object, allowed: tuple[str, ...] | None = None,
             must_fail: bool = False) -> object:
        """allowed None: must succeed; else the error lines that are fine."""
        try:
            result = fn(*args)  # type: ignore[operator]
        except Exception as exc:
            text = message(exc)
            calls.append([label, "err", text])
            if allowed is None or text not in allowed:
                failed.append(label)
            return None
        calls.append([label, "ok", plain(result)])
        if must_fail:
            failed.append(label)
        return result

    nut = PyNUT.PyNUTClient(host=host, port=port, login=user, password=password, timeout=10)
    call("GetUPSList", nut.GetUPSList)
    call("GetUPSVars dummy", nut.GetUPSVars, "dummy")
    if hasattr(nut, "CheckUPSAvailable"):
        call("CheckUPSAvailable dummy", nut.CheckUPSAvailable, "dummy")
    call("GetUPSCommands dummy", nut.GetUPSCommands, "dummy")
    call("GetRWVars dummy", nut.GetRWVars, "dummy")
    anonymous = user is None
    denied = ("ERR USERNAME-REQUIRED",) if anonymous else ("ERR CMD-NOT-SUPPORTED", "ERR ACCESS-DENIED")
    call("RunUPSCommand UPS1 test.panel.start", nut.RunUPSCommand, "UPS1", "test.panel.start",
         allowed=denied, must_fail=anonymous)
    denied = ("ERR USERNAME-REQUIRED",) if anonymous else ("ERR VAR-NOT-SUPPORTED", "ERR ACCESS-DENIED")
    call("SetRWVar UPS1 ups.id test", nut.SetRWVar, "UPS1", "ups.id", "test", allowed=denied,
         must_fail=anonymous)
    if hasattr(nut, "DeviceLogin"):  # PyNUT >= 1.5 (NUT 2.8.1+); 1.4 sends "LIST CLIENTS"
        call("ListClients dummy", nut.ListClients, "dummy")
        call("ListClients MissingBogusDummy", nut.ListClients, "MissingBogusDummy",
             allowed=("ERR UNKNOWN-UPS",), must_fail=True)
        denied = ("ERR USERNAME-REQUIRED",) if anonymous else ("ERR ACCESS-DENIED",)
        logged_in = call("DeviceLogin dummy", nut.DeviceLogin, "dummy", allowed=denied,
                         must_fail=anonymous) is not None
        everyone = call("ListClients", nut.ListClients)
        if not isinstance(everyone, dict) or (logged_in and not everyone.get(b"dummy")):
            failed.append("ListClients")
    print(json.dumps({"calls": calls, "failed": failed}))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
