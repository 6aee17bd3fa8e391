"""Runner choice: local runs use Beam's in-process FnApiRunner directly.

Beam 2.77's DirectRunner first tries to download a Prism binary and falls back when it
cannot; choosing the FnApiRunner ourselves keeps local runs offline and predictable.
`direct_running_mode=multi_threading` is refused: it silently dropped elements in our
measurements (in_memory and multi_processing were correct).
"""

from __future__ import annotations

import ctypes
import ctypes.util

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


M_MMAP_THRESHOLD = -3  # mallopt's parameter number (malloc.h)
MMAP_THRESHOLD = 128 * 1024


def steady_heap() -> bool:
    """Have glibc serve allocations of 128 KiB and more (a page's HTML, a spilled batch) from mmap, returned to the
    system when freed; True where it took effect.

    By default glibc raises that threshold to the largest block freed so far, so after a run's
    first large pages every page came from the heap, which fragmented: the runner's process grew
    with the pages it had seen though it held a bounded number of them (4,000 pages: 1,086 MiB at
    its peak, 604 MiB with this). Process-wide, for the allocations made after it; nothing happens
    where the C library is not glibc.
    """
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        return bool(libc.mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD))
    except (OSError, AttributeError):
        return False
