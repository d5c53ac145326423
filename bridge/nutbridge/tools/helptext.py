"""Help texts of the tools, as NUT 2.8.0 and 2.8.5 print them for -h.

Recorded from the real binaries' output; the first line (the version banner) is
produced by Profile.banner instead. The two versions share most of each text, so
every text is put together from the fragments below; tests/test_tools_interop.py
compares what our tools print with NUT's, byte for byte.
"""

DEFAULT_FORMAT = (
    "%TIME @Y@m@d @H@M@S% %VAR battery.charge% %VAR input.voltage% %VAR ups.load% "
    "[%VAR ups.status%] %VAR ups.temperature% %VAR input.frequency%"
)

# ---- fragments shared by both versions

_UPSC_FORMS = (
    'First form (lists UPSes):\n'
    '  -l         - lists each UPS on <hostname>, one per line.\n'
    '  -L         - lists each UPS followed by its description (from ups.conf).\n'
    '               Default hostname: localhost\n'
    '\n'
    'Second form (lists variables and values):\n'
    '  <ups>      - upsd server, <upsname>[@<hostname>[:<port>]] form\n'
    '  <variable> - optional, display this variable only.\n'
    '               Default: list all variables for <host>\n'
    '\n'
    'Third form (lists clients connected to a device):\n'
    '  -c         - lists each client connected on <ups>, one per line.\n'
    '  <ups>      - upsd server, <upsname>[@<hostname>[:<port>]] form\n'
)


def _upsc_usage(json: str) -> str:
    return (
        f'usage: upsc {json}-l | -L [<hostname>[:port]]\n'
        f'       upsc {json}<ups> [<variable>]\n'
        f'       upsc {json}-c <ups>\n'
    )


_UPSCMD_USAGE = (
    'usage: upscmd [-h]\n'
    '       upscmd [-l <ups>]\n'
    '       upscmd [-u <username>] [-p <password>] [-w] [-t <timeout>] <ups> <command> [<value>]\n'
)

_UPSRW_USAGE = (
    'usage: upsrw [-h]\n'
    '       upsrw [-s <variable>] [-u <username>] [-p <password>] [-w] [-t <timeout>] <ups>\n'
)


def _wait_options(what: str) -> str:
    return (
        f'  -w            wait for the completion of {what} by the driver\n'
        '                and return its actual result from the device\n'
        '  -t <timeout>\tset a timeout when using -w (in seconds, default: 10)\n'
    )


_UPSCMD_OPTIONS = (
    '  -l <ups>\tshow available commands on UPS <ups>\n'
    '  -u <username>\tset username for command authentication\n'
    '  -p <password>\tset password for command authentication\n'
    + _wait_options("command") +
    '\n'
    '  <ups>\t\tUPS identifier - <upsname>[@<hostname>[:<port>]]\n'
    '  <command>\tValid instant command - test.panel.start, etc.\n'
    '  [<value>]\tAdditional data for command - number of seconds, etc.\n'
)

_UPSRW_OPTIONS = (
    '  -s <variable>\tspecify variable to be changed\n'
    '\t\tuse -s VAR=VALUE to avoid prompting for value\n'
    '  -l            show all possible read/write variables.\n'
    '  -u <username> set username for command authentication\n'
    '  -p <password> set password for command authentication\n'
    + _wait_options("setting") +
    '\n'
    '  <ups>         UPS identifier - <upsname>[@<hostname>[:<port>]]\n'
)

_UPSRW_NO_S = 'Call without -s to show all possible read/write variables (same as -l).\n'

_UPSLOG_FORMAT = (
    '  -f <format>\t- Log format.  See below for details.\n'
    '\t\t- Use -f "<format>" so your shell doesn\'t break it up.\n'
)

_UPSLOG_MONITOR = (
    '  -s <ups>\t- Monitor UPS <ups> - <upsname>@<host>[:<port>]\n'
    '        \t- Example: -s myups@server\n'
)

_UPSLOG_ESCAPES = (
    'Some valid format string escapes:\n'
    '\t%% insert a single %\n'
    '\t%TIME format% insert the time with strftime formatting\n'
    '\t%HOST% insert the local hostname\n'
    '\t%UPSHOST% insert the host of the ups being monitored\n'
    '\t%PID% insert the pid of upslog\n'
    '\t%VAR varname% insert the value of ups variable varname\n'
    '\n'
    'format string defaults to:\n'
    + DEFAULT_FORMAT + "\n"
)

# ---- fragments 2.8.5 added


def _common_arguments(debug: bool = True) -> str:
    return (
        'Common arguments:\n'
        '  -V         - display the version of this software\n'
        '  -W <secs>  - network timeout for initial connections (default: 10)\n'
        + ('  -D         - raise debugging level\n' if debug else '')
        + '  -h         - display this help text\n'
    )


def _manual(tool: str) -> str:
    return (
        f"For more information please Read The Fine Manual ('man 8 {tool}') and/or see\n"
        f'\thttps://www.networkupstools.org/historic/v2.8.5/docs/man/{tool}.html\n'
    )


_USERS_NOTE = 'Also check documentation and samples of upsd.users\n'

HELP: dict[tuple[str, str], str] = {
    ("upsc", "2.8.0"): (
        '\n'
        + _upsc_usage("") +
        '\n'
        'Demo program to display UPS variables.\n'
        '\n'
        + _UPSC_FORMS
    ),
    ("upscmd", "2.8.0"): (
        '\n'
        + _UPSCMD_USAGE +
        '\n'
        'Administration program to initiate instant commands on UPS hardware.\n'
        '\n'
        '  -h\t\tdisplay this help text\n'
        + _UPSCMD_OPTIONS
    ),
    ("upsrw", "2.8.0"): (
        '\n'
        + _UPSRW_USAGE +
        '\n'
        'Demo program to set variables within UPS hardware.\n'
        '\n'
        '  -h            display this help text\n'
        + _UPSRW_OPTIONS +
        '\n'
        + _UPSRW_NO_S
    ),
    ("upslog", "2.8.0"): (
        'UPS status logger.\n'
        '\n'
        'usage: upslog [OPTIONS]\n'
        '\n'
        + _UPSLOG_FORMAT +
        '  -i <interval>\t- Time between updates, in seconds\n'
        '  -l <logfile>\t- Log file name, or - for stdout (foreground by default)\n'
        '  -F\t\t- stay foregrounded even if logging into a file\n'
        '  -B\t\t- stay backgrounded even if logging to stdout\n'
        '  -p <pidbase>  - Base name for PID file (defaults to "upslog")\n'
        + _UPSLOG_MONITOR +
        '  -u <user>\t- Switch to <user> if started as root\n'
        '\n'
        + _UPSLOG_ESCAPES +
        '\n'
        'See the upslog(8) man page for more information.\n'
    ),
    ("upsc", "2.8.5"): (
        '\n'
        'NUT read-only client program to display UPS variables.\n'
        '\n'
        + _upsc_usage("[-j] ") +
        '\n'
        'Option:\n'
        '  -j         - display output in JSON format\n'
        '\n'
        + _UPSC_FORMS +
        '\n'
        + _common_arguments() +
        '\n'
        + _manual("upsc")
    ),
    ("upscmd", "2.8.5"): (
        '\n'
        'NUT administration client program to initiate instant commands on UPS hardware.\n'
        '\n'
        + _UPSCMD_USAGE +
        '\n'
        '\n'
        + _UPSCMD_OPTIONS +
        '\n'
        + _common_arguments() +
        '\n'
        + _manual("upscmd")
        + _USERS_NOTE
    ),
    ("upsrw", "2.8.5"): (
        '\n'
        'NUT administration client program to set variables within UPS hardware.\n'
        '\n'
        + _UPSRW_USAGE +
        '\n'
        '\n'
        + _UPSRW_OPTIONS +
        '\n'
        + _common_arguments() +
        '\n'
        + _UPSRW_NO_S +
        '\n'
        + _manual("upsrw")
        + _USERS_NOTE
    ),
    ("upslog", "2.8.5"): (
        'NUT read-only client program - UPS status logger.\n'
        '\n'
        'usage: upslog [OPTIONS]\n'
        '\n'
        + _UPSLOG_FORMAT +
        '  -N\t\t- Prefix "%UPSHOST%%t" before the format (default/custom):\n'
        '\t\t  useful when logging many systems into same target.\n'
        '  -i <interval>\t- Time between updates, in seconds\n'
        '  -d <count>\t- Exit after specified amount of updates\n'
        '  -l <logfile>\t- Log file name, or - for stdout (foreground by default)\n'
        '  -D\t\t- raise debugging level (and stay foreground by default)\n'
        '  -F\t\t- stay foregrounded even if logging into a file\n'
        '  -B\t\t- stay backgrounded even if logging to stdout or debugging\n'
        '  -p <pidbase>\t- Base name for PID file (defaults to "upslog")\n'
        '             \t- NOTE: PID file is written regardless of fore/back-grounding\n'
        + _UPSLOG_MONITOR +
        "        \t- Specify '*' as upsname to query all devices on the host\n"
        '  -m <tuple>\t- Monitor UPS <ups,logfile>\n'
        '\t\t- Example: -m myups@server,/var/log/myups.log\n'
        "\t\t- NOTE: You can use '-' as logfile for stdout\n"
        '\t\t  and it would not imply foregrounding\n'
        "\t\t- Unlike one '-s ups -l file' spec, you can specify many tuples\n"
        "\t\t- Example: -m '*,-' to view updates of all known local devices\n"
        "\t\t- Example: -m '*@1.2.3.4,-' to view updates of all known remote\n"
        '\t\t  devices served by NUT data server with IP address 1.2.3.4\n'
        '  -u <user>\t- Switch to <user> if started as root\n'
        '\n'
        + _common_arguments(debug=False) +
        '\n'
        + _UPSLOG_ESCAPES +
        '\n'
        + _manual("upslog")
    ),
}
