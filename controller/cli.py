"""The `dbstate` command line: finds the command in the registry (`controller.commands`), parses its arguments into
its options, runs it, and turns every error into one line. No logic of its own lives here."""

from __future__ import annotations

import difflib
import os
import sys
from collections.abc import Sequence
from typing import TextIO

from controller import __version__
from controller.commands import COMMANDS, load, parser
from controller.core.errors import DbstateError

EXIT_ERROR, EXIT_USAGE = 1, 2

INTRO = """\
usage: dbstate [--version] [--help] COMMAND [options]

dbstate runs the databases of a self-hosted platform from git.

A directory of YAML declarations (DatabaseInstance, Network, Volume, Consumer; a Host per Docker engine when there
are several) is the desired state; dbstate compares it with the live Docker engines and shows (plan) or converges
(apply, run) the difference.
"""

OUTRO = """
exit codes: 0 ok, 1 error, 2 changes pending (plan), 3 findings with --fail-on-findings (plan) or --strict (audit)
see `dbstate COMMAND --help` for each command
"""


def overview() -> str:
    """The top-level help: every registered command once, with its summary."""
    width = max(len(n) for n in COMMANDS)
    rows = "".join(f"  {name:<{width}}  {info.summary}\n" for name, info in COMMANDS.items())
    return f"{INTRO}\ncommands:\n{rows}{OUTRO}"


def main(argv: Sequence[str] | None = None, out: TextIO | None = None, err: TextIO | None = None) -> int:
    # dbstate uses no pydantic plugin; without this, building the first model scans every installed package's
    # metadata for one (about 20 ms of every run). A user's explicit setting wins.
    os.environ.setdefault("PYDANTIC_DISABLE_PLUGINS", "__all__")
    out = out or sys.stdout
    err = err or sys.stderr
    args = list(sys.argv[1:] if argv is None else argv)
    if not args:
        err.write(overview())
        return EXIT_ERROR
    first = args[0]
    if first in ("-h", "--help", "help"):
        out.write(overview())
        return 0
    if first == "--version":
        out.write(f"dbstate {__version__}\n")
        return 0
    if first not in COMMANDS:
        close = difflib.get_close_matches(first, list(COMMANDS), n=1)
        hint = f" (did you mean `{close[0]}`?)" if close else ""
        err.write(f"dbstate: error: unknown command {first!r}{hint}; `dbstate --help` lists them\n")
        return EXIT_USAGE
    try:
        module = load(first)
        options = module.options(parser(first, module).parse_args(args[1:]))
        return int(module.run(options, out, err))
    except SystemExit as e:  # argparse: --help (0) or a usage error (2), already printed
        return e.code if isinstance(e.code, int) else EXIT_USAGE
    except DbstateError as e:
        print(f"dbstate: error: {e}", file=err)
        return EXIT_ERROR
    except KeyboardInterrupt:
        print("dbstate: interrupted", file=err)
        return 130
    except BrokenPipeError:
        return 0
    except Exception as e:  # a bug: say so in one line, never dump locals that may hold secrets
        if os.environ.get("DBSTATE_DEBUG"):
            raise
        print(f"dbstate: internal error: {type(e).__name__} (set DBSTATE_DEBUG=1 for a traceback)", file=err)
        return EXIT_ERROR


if __name__ == "__main__":
    sys.exit(main())
