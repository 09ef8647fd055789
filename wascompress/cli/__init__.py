"""The ``wascompress`` command line: a thin layer that parses options and calls the Python API.

Each sub-command lives in its own module with ``register(subparsers)``. A user mistake (any
:class:`~wascompress.errors.WascompressError`, a bad option, an unreadable path) is reported as one line
on stderr with exit code 2; anything else is a bug and keeps its traceback. An option renamed for
consistency keeps its old name as an alias (:func:`add_option`): still parsed, not shown in ``--help``.
"""

from __future__ import annotations

import argparse
import copy
import logging
import sys
from typing import Any, NoReturn, Sequence

from wascompress import __version__
from wascompress.errors import WascompressError

PROG = "wascompress"


class AliasHidingFormatter(argparse.HelpFormatter):
    """``--help`` lists an option under its current name(s) only, not under its old aliases."""

    def _format_action_invocation(self, action: argparse.Action) -> str:
        aliases = getattr(action, "aliases", ())
        if aliases:
            action = copy.copy(action)
            action.option_strings = [s for s in action.option_strings if s not in aliases]
        return super()._format_action_invocation(action)


class OneLineParser(argparse.ArgumentParser):
    """An ArgumentParser whose errors are one line (no usage block) and exit 2, and whose help hides
    option aliases."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("formatter_class", AliasHidingFormatter)
        super().__init__(*args, **kwargs)

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


def add_option(parser: Any, *names: str, aliases: Sequence[str] = (), **kwargs: Any) -> argparse.Action:
    """``parser.add_argument(*names, **kwargs)`` that also accepts the old option strings ``aliases``
    (for users' scripts), hidden from ``--help``; ``parser`` is a parser or an argument group."""
    action = parser.add_argument(*names, *aliases, **kwargs)
    action.aliases = tuple(aliases)  # type: ignore[attr-defined]
    return action


def one_line(message: str) -> str:
    """Collapse a (possibly multi-line) message into one line."""
    return " ".join(message.split())


def build_parser() -> argparse.ArgumentParser:
    from wascompress.cli import (compress_cmd, evaluate_cmd, export_cmd, finetune_cmd, fit_cmd, models_cmd, plan_cmd,
                                 profile_cmd, train_cmd)

    parser = OneLineParser(prog=PROG, description="Weight Augmentation (WAS): train, export, profile.")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=OneLineParser)
    commands.required = True
    for module in (compress_cmd, train_cmd, finetune_cmd, plan_cmd, fit_cmd, export_cmd, profile_cmd, evaluate_cmd,
                   models_cmd):
        module.register(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    # wascompress's own progress at INFO (DEBUG with --verbose); other libraries' (the ONNX exporter's
    # optimiser passes, the quantizer) only from WARNING up unless --verbose
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(message)s",
                        stream=sys.stderr)
    logging.getLogger("wascompress").setLevel(logging.DEBUG if args.verbose else logging.INFO)
    try:
        return int(args.run(args) or 0)
    except WascompressError as err:
        print(f"{PROG} {args.command}: error: {one_line(str(err))}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # output piped into a reader that stopped (e.g. `| head`)
        sys.stderr.close()
        return 0
    except OSError as err:  # unreadable / unwritable paths given by the user
        print(f"{PROG} {args.command}: error: {err.strerror or err}: {err.filename or ''}".rstrip(": "),
              file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"{PROG} {args.command}: interrupted", file=sys.stderr)
        return 130
