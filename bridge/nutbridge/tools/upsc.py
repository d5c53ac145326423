"""upsc: list UPSes, their variables or clients (NUT's upsc, byte-compatible)."""

from __future__ import annotations

import json

from ..client import NO_SUCH_HOST, NutClient, NutError
from .common import (
    DEFAULT_PORT,
    INVALID_UPS,
    Profile,
    connect,
    err,
    getopt,
    out,
    profile,
    run,
    split_hostport,
    split_ups,
)
from .helptext import HELP

TOO_OLD_LIST = "upsd is too old to support this query"
TOO_OLD_VAR = "variable unknown (old upsd detected)"


def _js(text: str) -> str:
    return json.dumps(text, ensure_ascii=False)


class Upsc:
    def __init__(self, prof: Profile, as_json: bool) -> None:
        self.prof = prof
        self.json = as_json
        self.client: NutClient | None = None

    def fail(self, text: str, multiline: bool = False) -> int:
        if self.json:
            out(f'{{\n  "error": {_js(text)}\n}}\n' if multiline else f'{{"error": {_js(text)}}}\n')
        err(f"Error: {text}\n")
        return 1

    def nut_fail(self, exc: NutError, too_old: str = TOO_OLD_LIST, multiline: bool = False) -> int:
        if exc.code == "UNKNOWN-COMMAND":
            return self.fail(too_old, multiline)
        return self.fail(exc.text, multiline)

    async def open(self, host: str, port: int) -> NutClient | int:
        try:
            return await connect(host, port, self.prof, tryssl=True)
        except NutError as exc:
            if exc.code == NO_SUCH_HOST and self.prof.new:
                err(f"upscli_tryconnect: Host not found: '{host}'\n")
            return self.fail(exc.text)

    async def list_upses(self, hostspec: str | None, verbose: bool) -> int:
        host, port = split_hostport(hostspec) if hostspec else ("localhost", DEFAULT_PORT)
        c = await self.open(host, port)
        if isinstance(c, int):
            return c
        try:
            items = await c.list_items("UPS")
        except NutError as exc:
            return self.nut_fail(exc)
        finally:
            await c.close()
        rows = [(w[0], w[1] if len(w) > 1 else "") for w in items if w]
        if self.json:
            if verbose:
                body = ",\n".join(f"  {_js(n)}: {_js(d)}" for n, d in rows)
                out("{\n" + body + "\n}\n")
            else:
                out("[\n" + ",\n".join(f"  {_js(n)}" for n, _ in rows) + "\n]\n")
        else:
            out("".join(f"{n}: {d}\n" if verbose else f"{n}\n" for n, d in rows))
        return 0

    async def list_clients(self, spec: str | None) -> int:
        t = split_ups(spec, self.prof)
        if t is None:
            return self.fail(INVALID_UPS)
        c = await self.open(t.host, t.port)
        if isinstance(c, int):
            return c
        try:
            items = await c.list_items("CLIENT", t.ups)
        except NutError as exc:
            return self.nut_fail(exc)
        finally:
            await c.close()
        addrs = [w[0] for w in items if w]
        if self.json:
            out("[\n" + ",\n".join(f"  {_js(a)}" for a in addrs) + "\n]\n")
        else:
            out("".join(f"{a}\n" for a in addrs))
        return 0

    async def show(self, spec: str | None, var: str | None) -> int:
        t = split_ups(spec, self.prof)
        if t is None:
            return self.fail(INVALID_UPS)
        c = await self.open(t.host, t.port)
        if isinstance(c, int):
            return c
        try:
            if var is not None:
                return await self.one_var(c, t.ups, var)
            return await self.all_vars(c, t.ups)
        finally:
            await c.close()

    async def one_var(self, c: NutClient, ups: str, var: str) -> int:
        if "." not in var:
            return self.fail("old-style variable names are not supported")
        try:
            value = await c.get_var(ups, var)
        except NutError as exc:
            return self.nut_fail(exc, TOO_OLD_VAR)
        out(f"{_js(value)}\n" if self.json else f"{value}\n")
        return 0

    async def all_vars(self, c: NutClient, ups: str) -> int:
        try:
            items = await c.list_items("VAR", ups)
        except NutError as exc:
            # upsc -j has already opened the object when the list fails.
            return self.nut_fail(exc, multiline=True)
        rows = [(w[0], w[1] if len(w) > 1 else "") for w in items if w]
        if self.json:
            out("{\n" + ",\n".join(f"  {_js(k)}: {_js(v)}" for k, v in rows) + "\n}\n")
        else:
            out("".join(f"{k}: {v}\n" for k, v in rows))
        return 0


def usage(prof: Profile) -> None:
    out(prof.banner("upsc") + "\n" + HELP[("upsc", prof.version)])


def main(argv: list[str]) -> int:
    prof = profile()
    opts, args, _ = getopt("upsc", argv, "hlLcVW:Dj" if prof.new else "hlLcVD")
    mode = ""
    as_json = False
    for o, _v in opts:
        if o in ("h", "?"):
            usage(prof)
            return 0
        if o == "V":
            # 2.8.0 prints the version on stderr, later releases on stdout.
            (out if prof.new else err)(prof.banner("upsc") + "\n")
            return 0
        if o == "j":
            as_json = True
        elif o in ("l", "L", "c"):
            mode = o
    tool = Upsc(prof, as_json)

    async def go() -> int:
        if mode in ("l", "L"):
            return await tool.list_upses(args[0] if args else None, mode == "L")
        if mode == "c":
            return await tool.list_clients(args[0] if args else None)
        return await tool.show(args[0] if args else None, args[1] if len(args) > 1 else None)

    return run(go)
