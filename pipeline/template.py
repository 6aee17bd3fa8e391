"""The Dataflow flex template's entry point: template parameters in, `newsbeam run` out.

Dataflow's launcher runs the template's Python file with each template parameter as
`--name=value` (names as in deploy/metadata.json, with underscores) next to its own options
(`--runner`, `--project`, `--region`, `--temp_location`, `--sdk_container_image`, ...). This
maps the parameters that name `newsbeam run` options onto them (`--per_host=4` becomes
`--per-host 4`; a boolean option is given when its value is `true`; a repeatable option
takes a comma-separated list) and hands everything else to Apache Beam unchanged.
"""

from __future__ import annotations

import argparse
import json
import sys

from newsbeam.pipeline.cli import main as cli_main
from newsbeam.pipeline.cli import make_parser


def run_options() -> dict[str, argparse.Action]:
    """`newsbeam run`'s options by their long name (`--per-host`)."""
    parser = make_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return {s: action for action in sub.choices["run"]._actions for s in action.option_strings if s.startswith("--")}


def load_parameters(path: str) -> list[dict]:
    with open(path, encoding="utf-8") as f:
        return json.load(f)["parameters"]


def run_arguments(argv: list[str], parameters: list[dict]) -> list[str]:
    """The `newsbeam run` command line for the launcher's arguments."""
    options = run_options()
    ours = {p["name"] for p in parameters}
    args = ["run"]
    for arg in argv:
        name, has_value, value = arg[2:].partition("=") if arg.startswith("--") else ("", False, "")
        if not has_value or name not in ours:
            args.append(arg)
            continue
        flag = "--" + name.replace("_", "-")
        action = options[flag]
        if isinstance(action, argparse._StoreTrueAction):
            if value.strip().lower() == "true":
                args.append(flag)
        elif isinstance(action, argparse._AppendAction):
            for item in filter(None, (v.strip() for v in value.split(","))):
                args += [flag, item]
        elif value != "":
            args += [flag, value]
    return args


def main(argv: list[str] | None = None, metadata: str = "metadata.json") -> int:
    return cli_main(run_arguments(sys.argv[1:] if argv is None else argv, load_parameters(metadata)))
