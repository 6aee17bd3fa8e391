"""The cloud path, offline: the flex template's metadata, the Dataflow job graph (dry run), the staged package.

Nothing here reaches Google Cloud: `--dry_run=True` makes Beam's DataflowRunner translate the
pipeline into a Dataflow job and stop before submitting it, and `--no_auth` skips credentials.
"""

from __future__ import annotations

import argparse
import json
import re
import tarfile
from pathlib import Path

import apache_beam as beam
import pytest
from apache_beam.options.pipeline_options import PipelineOptions

from apache_beam.portability.api import beam_runner_api_pb2

from newsbeam.pipeline.build import build_pipeline
from newsbeam.pipeline.cli import main
from newsbeam.pipeline.streaming import build_streaming, poll_ticks
from newsbeam.pipeline.config import RunConfig, StoredState
from newsbeam.pipeline.template import load_parameters, main as template_main, run_arguments, run_options
from newsbeam.transforms.commits import RunFiles, new_attempt
from newsbeam.transforms.sources import read_sources

pytest.importorskip("apache_beam.runners.dataflow.internal.apiclient", reason="needs the gcp extra")

ROOT = Path(__file__).resolve().parents[1]
METADATA = ROOT / "deploy" / "metadata.json"
SAMPLE = ROOT / "pipeline" / "sample" / "feeds.opml"
DATAFLOW = ["--runner=DataflowRunner", "--project=demo-project", "--region=europe-west1", "--temp_location=gs://demo-bucket/tmp",
            "--dry_run=True", "--no_auth", "--sdk_location=container", "--sdk_container_image=europe-west1-docker.pkg.dev/demo/newsbeam:1"]


# deploy/metadata.json


def test_metadata_parses_and_every_regex_compiles():
    metadata = json.loads(METADATA.read_text())
    assert metadata["name"] == "newsbeam" and metadata["parameters"]
    for parameter in metadata["parameters"]:
        assert {"name", "label", "helpText"} <= set(parameter), parameter
        for regex in parameter.get("regexes", []):
            re.compile(regex)


def test_every_parameter_is_an_option_of_newsbeam_run_or_of_the_streaming_job():
    batch, streaming = run_options(), run_options("stream")
    for parameter in load_parameters(str(METADATA)):
        flag = "--" + parameter["name"].replace("_", "-")
        assert flag in batch or flag in streaming, f"{parameter['name']} is no option of newsbeam run or stream"
        if flag not in batch:
            assert parameter.get("isOptional") and parameter["helpText"].startswith(("Streaming only", "Seconds between polls"))
        options = batch if flag in batch else streaming
        if isinstance(options[flag], argparse._StoreTrueAction):
            assert parameter["regexes"] == ["^(true|false)$"], parameter["name"]


def test_required_parameters_are_the_ones_a_cloud_run_needs():
    required = {p["name"] for p in load_parameters(str(METADATA)) if not p.get("isOptional")}
    assert required == {"feeds", "out"}


def test_example_values_in_the_help_match_their_regexes():
    for parameter in load_parameters(str(METADATA)):
        example = re.search(r"Example: (\S+)$", parameter["helpText"])
        if example:
            assert all(re.match(r, example.group(1)) for r in parameter["regexes"]), parameter["name"]


def test_template_arguments_become_run_options_and_the_rest_goes_to_beam():
    args = run_arguments(
        ["--feeds=gs://b/feeds.yaml", "--out=gs://b/data", "--per_host=4", "--ignore_robots=false", "--retries=",
         "--allow_network=10.1.0.0/16,10.2.0.0/16", "--runner=DataflowRunner", "--sdk_container_image=img"],
        load_parameters(str(METADATA)),
    )
    assert args == ["run", "--feeds", "gs://b/feeds.yaml", "--out", "gs://b/data", "--per-host", "4",
                    "--allow-network", "10.1.0.0/16", "--allow-network", "10.2.0.0/16",
                    "--runner=DataflowRunner", "--sdk_container_image=img"]
    assert "--ignore-robots" in run_arguments(["--ignore_robots=true"], load_parameters(str(METADATA)))


# The Dataflow job graph, built offline


def test_the_dataflow_job_graph_is_the_same_size_over_a_large_stored_history(tmp_path):
    """A dry run over an empty dataset and over 40 stored runs of 2,000 articles each (their key index, near and story
    state): the translated Dataflow job is the same size, for nothing of the history is in it."""
    import dataclasses
    from datetime import datetime, timezone

    from newsbeam.pipeline.job import load_stored_state
    from newsbeam.transforms.stored import StoredView
    from test_stored import _history, graph_size

    out = tmp_path / "data"
    config = RunConfig(feeds=read_sources(str(SAMPLE)), feeds_location=str(SAMPLE), out=str(out), run_id="dry")
    before = datetime(2100, 1, 1, tzinfo=timezone.utc)

    def dry_run() -> int:
        stored = dataclasses.replace(load_stored_state(config.out, "dry"), view=StoredView(config.out, "dry", before))
        p = beam.Pipeline(runner="DataflowRunner", options=PipelineOptions(DATAFLOW))
        build_pipeline(p, config, stored, RunFiles(config.out, "dry", "0dd"), {"kind": "run"})
        return graph_size(p.run().job.proto_pipeline)

    empty = dry_run()
    _history(out, runs=40, articles=2_000)
    assert sum(1 for _ in out.glob("_state/keys/*.parquet")) == 40 * 16
    assert dry_run() == empty


def test_dry_run_builds_the_whole_job_graph_for_dataflow(tmp_path):
    options = PipelineOptions(DATAFLOW)
    config = RunConfig(feeds=read_sources(str(SAMPLE)), feeds_location=str(SAMPLE), out=str(tmp_path / "out"), run_id="dry")
    p = beam.Pipeline(runner="DataflowRunner", options=options)
    build_pipeline(p, config, StoredState(), RunFiles(config.out, "dry", new_attempt()), {"kind": "run"})
    result = p.run()
    graph = result.job.proto_pipeline
    names = {t.unique_name for t in graph.components.transforms.values()}
    for stage in ("ReadSources", "FetchFeeds/PollFeeds", "FetchPages/Fetch", "SpreadPages", "Extract", "StripChrome",
                  "Normalise", "Dedup", "Write", "KeepFeedState", "KeepNearState", "KeepStoryState", "KeepChromeState",
                  "Commit/Commit"):
        assert stage in names, stage
    environments = list(graph.components.environments.values())
    assert environments and all(b"europe-west1-docker.pkg.dev/demo/newsbeam:1" in env.payload for env in environments)
    assert result.job.proto.name  # a Dataflow job request was made, not sent


def test_a_poll_interval_makes_the_template_launch_the_streaming_job():
    parameters = load_parameters(str(METADATA))
    args = run_arguments(["--feeds=gs://b/f.yaml", "--out=gs://b/d", "--poll_interval=600", "--max_polls=", "--remember_days=14",
                          "--per_host=3", "--runner=DataflowRunner"], parameters)
    assert args == ["stream", "--feeds", "gs://b/f.yaml", "--out", "gs://b/d", "--poll-interval", "600", "--remember-days", "14",
                    "--per-host", "3", "--runner=DataflowRunner"]
    batch = run_arguments(["--feeds=gs://b/f.yaml", "--out=gs://b/d", "--poll_interval=", "--max_polls=", "--runner=DataflowRunner"],
                          parameters)
    assert batch == ["run", "--feeds", "gs://b/f.yaml", "--out", "gs://b/d", "--runner=DataflowRunner"]


def test_a_streaming_parameter_without_a_poll_interval_is_one_line(capsys):
    code = template_main(["--feeds=gs://b/f.yaml", "--out=gs://b/d", "--max_polls=3"], metadata=str(METADATA))
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and err == ["newsbeam: error: template parameter max_polls is for a streaming job: give poll_interval too"]


def test_the_template_entry_point_dry_runs_and_writes_a_manifest(tmp_path, capsys):
    out = tmp_path / "data"
    code = template_main([f"--feeds={SAMPLE}", f"--out={out}", "--per_host=3", "--ignore_robots=true", *DATAFLOW], metadata=str(METADATA))
    assert code == 0
    printed = capsys.readouterr().out
    assert "built (dry run; nothing submitted) on DataflowRunner" in printed
    assert not list((out / "runs").glob("*.json")), "a dry run commits nothing"
    manifest = json.loads(next((out / "runs" / "launched").glob("*.json")).read_text())
    assert manifest["status"] == "dry_run" and manifest["job_transforms"] > 100
    assert manifest["options"]["fetch"]["per_host"] == 3 and manifest["options"]["fetch"]["obey_robots"] is False
    assert not (out / "articles").exists()  # nothing ran


def test_stream_with_dataflow_builds_the_streaming_job_and_says_so(tmp_path, capsys):
    """`newsbeam stream --runner DataflowRunner` submits the streaming job: ticks, keyed state, poll windows."""
    out = tmp_path / "data"
    code = main(["stream", "--feeds", str(SAMPLE), "--out", str(out), "--poll-interval", "300", "--max-polls", "12",
                 "--remember-days", "14", "--run-id", "live", "-q", *DATAFLOW])
    assert code == 0
    printed = capsys.readouterr().out
    assert "stream live: 3 feeds, job graph of" in printed and "built (dry run; nothing submitted) on DataflowRunner" in printed
    manifest = json.loads((out / "runs" / "launched" / "live.json").read_text())
    assert manifest["kind"] == "stream" and manifest["status"] == "dry_run"
    assert manifest["poll_interval_seconds"] == 300 and manifest["max_polls"] == 12
    assert manifest["remember_seconds"] == 14 * 86400
    assert manifest["options"]["beam"]["streaming"] is True


def test_a_streaming_job_polling_more_than_once_a_second_is_refused_in_one_line(tmp_path, capsys):
    code = main(["stream", "--feeds", str(SAMPLE), "--out", str(tmp_path / "d"), "--poll-interval", "0.5", *DATAFLOW])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and err == ["newsbeam: error: --poll-interval: a streaming job polls at most once a second"]
    assert not (tmp_path / "d" / "runs").exists()


def test_the_streaming_graph_has_the_ticks_the_keyed_state_and_the_poll_windows(tmp_path):
    options = PipelineOptions([*DATAFLOW, "--streaming"])
    config = RunConfig(feeds=read_sources(str(SAMPLE)), feeds_location=str(SAMPLE), out=str(tmp_path / "out"), run_id="live")
    p = beam.Pipeline(runner="DataflowRunner", options=options)
    build_streaming(p, config, StoredState(), poll_ticks(p, 1_790_000_000.0, 300, None), 1_790_000_000.0, 300)
    graph = p.run().job.proto_pipeline
    transforms = {t.unique_name: t for t in graph.components.transforms.values()}
    for stage in ("Polls", "PollFeeds/PollFeed", "SkipSeenLinks/FirstPoll", "PollWindows", "FetchPages/Fetch", "Extract",
                  "SeenBefore/UrlSeen", "SeenBefore/TextSeen", "Dedup", "Write", "KeepFeedState", "CloseWindow"):
        assert stage in transforms, stage
    stateful = [name for name, t in transforms.items() if t.spec.urn == "beam:transform:pardo:v1"
                and beam_runner_api_pb2.ParDoPayload.FromString(t.spec.payload).state_specs]
    assert {"PollFeeds/PollFeed/ParDo(_PollWithStateFn)", "SkipSeenLinks/FirstPoll/ParDo(_SkipSeenFn)",
            "SeenBefore/UrlSeen/ParDo(_SeenBeforeFn)", "SeenBefore/TextSeen/ParDo(_SeenBeforeFn)"} <= set(stateful)
    assert any(c.is_bounded == beam_runner_api_pb2.IsBounded.UNBOUNDED for c in graph.components.pcollections.values())


# The package as Beam stages it for workers that do not have it installed


def test_the_package_stages_from_pyproject(tmp_path):
    from apache_beam.runners.portability.stager import Stager

    options = PipelineOptions([f"--setup_file={ROOT / 'pyproject.toml'}", "--sdk_location=container"])
    resources = Stager.create_job_resources(options, str(tmp_path), log_submission_env_dependencies=False)
    assert any(b"workflow.tar.gz" in r.role_payload for r in resources)  # what the workers pip install
    tarball = next(tmp_path.glob("newsbeam-*.tar.gz"))
    with tarfile.open(tarball) as tar:
        names = {name.split("/", 1)[1] for name in tar.getnames() if "/" in name}
    for expected in ("pyproject.toml", "pipeline/cli.py", "pipeline/template.py", "transforms/pool.py",
                     "schemas/tables.py", "pipeline/sample/feeds.opml"):
        assert expected in names, expected


def test_the_python_floor_is_one_the_code_runs_on():
    import tomllib

    floor = tomllib.loads((Path(__file__).parents[1] / "pyproject.toml").read_text())["project"]["requires-python"]
    major, minor = map(int, re.fullmatch(r">=\s*(\d+)\.(\d+)", floor).groups())
    # tomllib (the TOML feed lists) and datetime.fromisoformat("...Z") (feed dates) are Python 3.11's
    assert (major, minor) >= (3, 11), floor
