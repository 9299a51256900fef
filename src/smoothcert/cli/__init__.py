"""``smoothcert <command>``: the command line over the library (``smoothcert <command> -h``).
Floor 7: the parser (:mod:`~smoothcert.cli.parser`, options generated from the settings
dataclasses by :mod:`~smoothcert.cli.options`) and the commands (:mod:`~smoothcert.cli.commands`)."""

from __future__ import annotations

import sys
from typing import Sequence

from smoothcert.cli.commands import RUN
from smoothcert.cli.parser import COMMANDS, build_parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; bad input, file problems and a diverged training run end with one line on
    stderr and exit status 2; Ctrl-C ends with one line and status 130 (every row written so far
    was flushed, and ``--resume`` continues)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    command = next((word for word in argv if word in COMMANDS), None)
    args = build_parser(command).parse_args(argv)
    try:
        return RUN[args.command](args)
    except (ValueError, OSError, FloatingPointError) as error:
        print(f"smoothcert {args.command}: error: {' '.join(str(error).split())}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"smoothcert {args.command}: interrupted; what was written so far is kept (--resume continues it)", file=sys.stderr)
        return 130


__all__ = ["main", "build_parser"]
