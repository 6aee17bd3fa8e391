"""The Dataflow flex template's entry point: template parameters in, `newsbeam run` (or `stream`) out.

Dataflow's launcher runs the template's Python file with each template parameter as
`--name=value` (names as in deploy/metadata.json, with underscores) next to its own options
(`--runner`, `--project`, `--region`, `--temp_location`, `--sdk_container_image`, ...). This
maps the parameters that name `newsbeam run` options onto them (`--per_host=4` becomes
`--per-host 4`; a boolean option is given when its value is `true`; a repeatable option
takes a comma-separated list) and hands everything else to Apache Beam unchanged. With a
`poll_interval` the template launches the streaming job (`newsbeam stream`) instead of a run.
"""

from __future__ import annotations

import argparse
import json
import sys

from newsbeam.pipeline.config import UsageError
from newsbeam.pipeline.cli import main as cli_main
from newsbeam.pipeline.cli import make_parser


def run_options(command: str = "run") -> dict[str, argparse.Action]:
    """`newsbeam COMMAND`'s options by their long name (`--per-host`)."""
    parser = make_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return {s: action for action in sub.choices[command]._actions for s in action.option_strings if s.startswith("--")}


def load_parameters(path: str) -> list[dict]:
    with open(path, encoding="utf-8") as f:
        return json.load(f)["parameters"]


def run_arguments(argv: list[str], parameters: list[dict]) -> list[str]:
    """The `newsbeam run` command line for the launcher's arguments; `newsbeam stream` if one is a poll interval."""
    command = "stream" if any(a.startswith("--poll_interval=") and a.partition("=")[2] for a in argv) else "run"
    options = run_options(command)
    ours = {p["name"] for p in parameters}
    args = [command]
    for arg in argv:
        name, has_value, value = arg[2:].partition("=") if arg.startswith("--") else ("", False, "")
        if not has_value or name not in ours:
            args.append(arg)
            continue
        flag = "--" + name.replace("_", "-")
        action = options.get(flag)
        if action is None:  # a streaming job's parameter in a batch run
            if value.strip():
                raise UsageError(f"template parameter {name} is for a streaming job: give poll_interval too")
            continue
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
    try:
        args = run_arguments(sys.argv[1:] if argv is None else argv, load_parameters(metadata))
    except UsageError as exc:
        print(f"newsbeam: error: {exc}", file=sys.stderr)
        return 2
    return cli_main(args)
