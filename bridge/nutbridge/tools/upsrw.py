"""upsrw: list or set writable variables (NUT's upsrw, byte-compatible)."""

from __future__ import annotations

from ..client import NutClient, NutError
from ..protocol.wire import encode
from .admin import AdminOptions, Fatal, list_or_fatal, login_and_act, run_on_ups
from .common import Profile, getopt, out, profile, read_line_stdin
from .helptext import HELP


def usage(prof: Profile) -> None:
    out(prof.banner("upsrw") + "\n" + HELP[("upsrw", prof.version)])


async def _value(c: NutClient, ups: str, var: str) -> str | None:
    try:
        return await c.get_var(ups, var)
    except NutError:
        return None


async def describe(c: NutClient, ups: str, var: str) -> str:
    """One variable's block of the listing."""
    try:
        desc = await c.get_desc(ups, var)
    except NutError:
        desc = "Description unavailable"
    lines = [f"[{var}]", desc]
    try:
        words = [w for w in await c.get_type(ups, var) if w != "RW"]
    except NutError:
        lines.append("Unknown type")
        return "\n".join(lines) + "\n\n"
    is_enum = "ENUM" in words
    is_range = "RANGE" in words
    strlen = next((w.split(":", 1)[1] for w in words if w.startswith("STRING:")), None)
    value = await _value(c, ups, var)
    if is_enum:
        lines.append("Type: ENUM STRING" if strlen is not None else "Type: ENUM NUMBER")
        if strlen is not None:
            lines.append(f"Maximum length: {strlen}")
        try:
            options = await c.list_enum(ups, var)
        except NutError:
            options = []
        for opt in options:
            lines.append(f'Option: "{opt}"' + (" SELECTED" if opt == value else ""))
    elif is_range:
        lines.append("Type: RANGE NUMBER")
        try:
            ranges = await c.list_range(ups, var)
        except NutError:
            ranges = []
        current = _int(value)
        for lo, hi in ranges:
            sel = current is not None and _int(lo) is not None and _int(hi) is not None
            inside = sel and int(lo) <= (current or 0) <= int(hi)
            lines.append(f'Option: "{lo}-{hi}"' + (" SELECTED" if inside else ""))
    else:
        known = False
        for w in words:
            if w.startswith("STRING:"):
                lines += ["Type: STRING", f"Maximum length: {strlen}"]
                known = True
            elif w == "NUMBER":
                lines.append("Type: NUMBER")
                known = True
            else:
                lines.append(f"Type: {w} (unrecognized)")
        if known or words:
            lines.append(f"Value: {value if value is not None else ''}")
    return "\n".join(lines) + "\n\n"


def _int(text: str | None) -> int | None:
    try:
        return int(text) if text is not None else None
    except ValueError:
        return None


async def list_rw(c: NutClient, ups: str) -> int:
    names = list(await list_or_fatal(c.list_rw(ups)))
    for name in names:
        out(await describe(c, ups, name))
    return 0


def main(argv: list[str]) -> int:
    prof = profile()
    opts, args, _ = getopt("upsrw", argv, "hls:p:t:u:wVW:D" if prof.new else "hls:p:t:u:wV")
    admin = AdminOptions()
    setvar: str | None = None
    for o, v in opts:
        if o in ("h", "?"):
            usage(prof)
            return 0
        if o == "V":
            out(prof.banner("upsrw") + "\n")
            return 0
        if o == "s":
            setvar = v
        else:
            admin.take(o, v)
    if not args:
        usage(prof)
        return 0

    async def go(c: NutClient, ups: str) -> int:
        if setvar is None:
            return await list_rw(c, ups)
        var, eq, value = setvar.partition("=")
        if "." not in var:
            raise Fatal("Error: old variable names are not supported")
        if not eq:
            out(f"Enter new value for {var}: ")
            value = read_line_stdin() or ""
        line = f'SET VAR {ups} {var} "{encode(value)}"'
        return await login_and_act(c, prof, admin, line, "Set variable failed", eof_is_fatal=False)

    return run_on_ups(args[0], prof, admin, go)
