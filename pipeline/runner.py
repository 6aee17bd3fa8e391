"""Runner choice: local runs use Beam's in-process FnApiRunner directly.

Beam 2.77's DirectRunner first tries to download a Prism binary and falls back when it
cannot; choosing the FnApiRunner ourselves keeps local runs offline and predictable.
`direct_running_mode=multi_threading` is refused: it silently dropped elements in our
measurements (in_memory and multi_processing were correct).
"""

from __future__ import annotations

from apache_beam.options.pipeline_options import DirectOptions, PipelineOptions, StandardOptions

LOCAL_RUNNERS = {None, "", "DirectRunner", "direct", "FnApiRunner"}


class RunnerError(ValueError):
    pass


def is_local(options: PipelineOptions) -> bool:
    return options.view_as(StandardOptions).runner in LOCAL_RUNNERS


def single_process(options: PipelineOptions) -> bool:
    """A local run in this one process (the default), where spreading work over workers only costs."""
    direct = options.view_as(DirectOptions)
    return is_local(options) and direct.direct_running_mode in (None, "in_memory")


def check_runner_options(options: PipelineOptions) -> None:
    if is_local(options) and options.view_as(DirectOptions).direct_running_mode == "multi_threading":
        raise RunnerError(
            "--direct_running_mode multi_threading is not supported (it dropped elements in our tests); "
            "use in_memory (the default) or multi_processing"
        )


def make_runner(options: PipelineOptions):
    """A runner instance for local runs, else the runner name for Beam to resolve."""
    check_runner_options(options)
    if not is_local(options):
        return options.view_as(StandardOptions).runner
    from apache_beam.portability.api import beam_provision_api_pb2
    from apache_beam.runners.portability.fn_api_runner import fn_runner
    from apache_beam.runners.portability.portable_runner import JobServiceHandle

    encoded = JobServiceHandle.encode_pipeline_options(options.get_all_options())
    provision = fn_runner.ExtendedProvisionInfo(beam_provision_api_pb2.ProvisionInfo(pipeline_options=encoded))
    return fn_runner.FnApiRunner(provision_info=provision)
