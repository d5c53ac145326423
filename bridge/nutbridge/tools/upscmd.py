"""upscmd: list or run instant commands (NUT's upscmd, byte-compatible)."""

from __future__ import annotations

from ..client import NutClient, NutError
from .admin import DEFAULT_TRACKING_TIMEOUT, Fatal, act, ask_password, ask_username, login, parse_timeout
from .common import INVALID_UPS_ONELINE, Profile, connect, err, getopt, out, profile, run, split_ups
from .helptext import HELP


def usage(prof: Profile) -> None:
    out(prof.banner("upscmd") + "\n" + HELP[("upscmd", prof.version)])


async def list_commands(c: NutClient, ups: str) -> int:
    try:
        cmds = await c.list_cmd(ups)
    except NutError as exc:
        if exc.code == "UNKNOWN-COMMAND":
            raise Fatal("Error: upsd is too old to support this query") from exc
        raise Fatal(f"Error: {exc.text}") from exc
    lines = [f"Instant commands supported on UPS [{ups}]:\n\n"]
    for cmd in cmds:
        try:
            lines.append(f"{cmd} - {await c.get_cmddesc(ups, cmd)}\n")
        except NutError:
            lines.append(f"{cmd}\n")
    out("".join(lines))
    return 0


def main(argv: list[str]) -> int:
    prof = profile()
    opts, args, _ = getopt("upscmd", argv, "hl:u:p:wt:VW:D" if prof.new else "hl:u:p:wt:V")
    user: str | None = None
    password: str | None = None
    wait = False
    timeout = float(DEFAULT_TRACKING_TIMEOUT)
    net_timeout = 10.0
    listing: str | None = None
    for o, v in opts:
        if o in ("h", "?"):
            usage(prof)
            return 0
        if o == "V":
            # 2.8.0 prints the version on stderr, later releases on stdout.
            (out if prof.new else err)(prof.banner("upscmd") + "\n")
            return 0
        if o == "l":
            listing = v
        elif o == "u":
            user = v
        elif o == "p":
            password = v
        elif o == "w":
            wait = True
        elif o == "t":
            timeout = parse_timeout(v)
        elif o == "W":
            net_timeout = parse_timeout(v)
    if listing is None and len(args) < 2:
        usage(prof)
        return 0
    spec = listing if listing is not None else args[0]

    async def go() -> int:
        t = split_ups(spec, prof)
        if t is None:
            raise Fatal(f"Error: {INVALID_UPS_ONELINE}")
        try:
            c = await connect(t.host, t.port, prof, tryssl=prof.new, timeout=net_timeout)
        except NutError as exc:
            raise Fatal(f"Error: {exc.text}") from exc
        try:
            if listing is not None:
                return await list_commands(c, t.ups)
            cmd = args[1]
            if "." not in cmd:
                raise Fatal("Error: old command names are not supported")
            name = ask_username(user, eof_is_fatal=True)
            secret = ask_password(password)
            await login(c, name, secret)
            line = f"INSTCMD {t.ups} {cmd}" + (f" {args[2]}" if len(args) > 2 else "")
            return await act(c, prof, line, wait, timeout, "Instant command failed")
        finally:
            await c.close()

    async def guarded() -> int:
        try:
            return await go()
        except Fatal as exc:
            err(f"{exc}\n")
            return 1

    return run(guarded)
