"""Steps recorded before SparkStep became a kind package keep running.

A graph stored then (a published pipeline, a run to rerun) records a SparkStep as the command
`python -m headrace.engine.sparkrun (--script FILE | --notebook FILE) [--digest D]
[--script-directory-argument] --input NAME --output NAME --argument SLOT --widget NAME=SLOT
--master M --target T --conf K=V --env K=V`. `headrace.engine.sparkrun` hands that argv to
`main` here, which reads it into the same `SparkSpec` a SparkStep makes today and runs the
same program: the old flags are parsed in this one place and nowhere else.
"""

from __future__ import annotations

import argparse
import sys
from typing import NoReturn

from headrace.graph.model import STEP_ERROR_PREFIX
from headrace.kinds.spark import program
from headrace.kinds.spark.spec import SparkSpec

__all__ = ["main", "spec_from_argv"]

PROG = "python -m headrace.engine.sparkrun"


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise ValueError(message)


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(prog=PROG, add_help=False)
    code = parser.add_mutually_exclusive_group(required=True)
    code.add_argument("--script")
    code.add_argument("--notebook")
    parser.add_argument("--digest")
    parser.add_argument("--script-directory-argument", action="store_true")
    for flag in ("--input", "--output", "--argument", "--widget", "--conf", "--env"):
        parser.add_argument(flag, action="append", default=[])
    parser.add_argument("--master")
    parser.add_argument("--target")
    return parser


def _pairs(items: list[str], flag: str) -> list[tuple[str, str]]:
    pairs = []
    for item in items:
        key, sep, value = item.partition("=")
        if not sep:
            raise ValueError(f"{flag} {item!r} is not KEY=VALUE")
        pairs.append((key, value))
    return pairs


def spec_from_argv(argv: list[str]) -> SparkSpec:
    """The SparkSpec of an old SparkStep command's arguments; ValueError when they do not
    parse."""
    args = _parser().parse_args(argv)
    return SparkSpec(
        script=args.script,
        notebook=args.notebook,
        digest=args.digest,
        script_directory_argument=args.script_directory_argument,
        inputs=tuple(args.input),
        outputs=tuple(args.output),
        arguments=tuple(args.argument),
        widgets=tuple(_pairs(args.widget, "--widget")),
        master=args.master,
        target=args.target,
        # In order: a target object's settings came first, the step's own after them.
        conf=dict(_pairs(args.conf, "--conf")),
        env=dict(_pairs(args.env, "--env")),
    )


def main(argv: list[str] | None = None) -> int:
    try:
        spec = spec_from_argv(sys.argv[1:] if argv is None else argv)
    except ValueError as exc:
        reason = (
            f"the step's recorded command does not parse ({exc}); make the SparkStep again "
            "and submit the pipeline anew."
        )
        print(f"{program.PREFIX}{reason}", file=sys.stderr)  # noqa: T201
        print(f"{STEP_ERROR_PREFIX}SparkStep: {reason}", file=sys.stderr)  # noqa: T201
        return 2
    return program.main(spec)
