"""upscmd: list or run instant commands (NUT's upscmd, byte-compatible)."""

from __future__ import annotations

from ..client import NutClient, NutError
from .admin import AdminOptions, Fatal, list_or_fatal, login_and_act, run_on_ups
from .common import Profile, err, getopt, out, profile
from .helptext import HELP


def usage(prof: Profile) -> None:
    out(prof.banner("upscmd") + "\n" + HELP[("upscmd", prof.version)])


async def list_commands(c: NutClient, ups: str) -> int:
    cmds = await list_or_fatal(c.list_cmd(ups))
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
    admin = AdminOptions()
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
        else:
            admin.take(o, v)
    if listing is None and len(args) < 2:
        usage(prof)
        return 0

    async def go(c: NutClient, ups: str) -> int:
        if listing is not None:
            return await list_commands(c, ups)
        cmd = args[1]
        if "." not in cmd:
            raise Fatal("Error: old command names are not supported")
        line = f"INSTCMD {ups} {cmd}" + (f" {args[2]}" if len(args) > 2 else "")
        return await login_and_act(c, prof, admin, line, "Instant command failed", eof_is_fatal=True)

    return run_on_ups(listing if listing is not None else args[0], prof, admin, go)
