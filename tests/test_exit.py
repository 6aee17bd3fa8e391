"""A finished command exits cleanly: no native thread is left to release our Python objects at interpreter exit.

pyarrow's threaded, pre-buffered Parquet reads of a Python file object (what Beam's FileSystems.open
gives) hand the bytes read to arrow's own threads, which release some of them after the read has
returned (apache/arrow#33975). One released once the interpreter has begun finalizing ends its thread
inside a C++ destructor: "terminate called without an active exception", exit 134, after the run's
output was complete. Whether that happens at exit is a race; what makes it possible is not, so these
tests read through a Beam filesystem whose files hand out buffers that note which threads read and release them.
"""

from __future__ import annotations

import gc
import io
import threading
from pathlib import Path

import pytest
from apache_beam.io.filesystem import FileMetadata, FileSystem, MatchResult
from apache_beam.io.localfilesystem import LocalFileSystem

from newsbeam.pipeline.cli import main
from newsbeam.pipeline.dedup_cmd import read_chunk

PREFIX = "tracked://"


def on_native_thread() -> bool:
    """Whether this code runs on a thread Python did not start (arrow's): such a thread shows as a dummy thread."""
    return isinstance(threading.current_thread(), threading._DummyThread)


class Buffers:
    """Buffers handed out by tracked files: how many, how many read and released by threads Python did not start."""

    def __init__(self):
        self._lock = threading.Lock()  # arrow's threads read and release too
        self.reset()

    def reset(self):
        self.handed = self.read_on_native_thread = self.released = self.on_native_thread = 0

    def note_read(self):
        with self._lock:
            self.handed += 1
            self.read_on_native_thread += on_native_thread()

    def note_release(self):
        with self._lock:
            self.released += 1
            self.on_native_thread += on_native_thread()

    def alive(self) -> int:
        gc.collect()  # what a reference cycle holds is released here, on this thread; what arrow holds is not
        return self.handed - self.released

    def problems(self) -> str | None:
        alive = self.alive()
        if self.read_on_native_thread or self.on_native_thread or alive:
            return (f"of {self.handed} buffers read, {self.read_on_native_thread} were read and {self.on_native_thread} released "
                    f"by arrow's threads, {alive} are still held by arrow: one released by arrow's thread at interpreter "
                    "exit aborts the process (exit 134)")
        return None


BUFFERS = Buffers()


class Chunk(bytearray):
    def __del__(self):
        BUFFERS.note_release()


class TrackedFile(io.RawIOBase):
    def __init__(self, raw):
        self._raw = raw

    def read(self, size=-1):
        BUFFERS.note_read()
        return Chunk(self._raw.read(size))

    def readinto(self, buffer):
        return self._raw.readinto(buffer)

    def readable(self):
        return True

    def seekable(self):
        return True

    def seek(self, offset, whence=io.SEEK_SET):
        return self._raw.seek(offset, whence)

    def tell(self):
        return self._raw.tell()

    def close(self):
        self._raw.close()
        super().close()


def _local(path: str) -> str:
    return path[len(PREFIX):] if path.startswith(PREFIX) else path


def _tracked(metadata: FileMetadata) -> FileMetadata:
    return FileMetadata(PREFIX + metadata.path, metadata.size_in_bytes, metadata.last_updated_in_seconds)


class TrackedFileSystem(FileSystem):
    """Local files under tracked:///path, read through TrackedFile."""

    def __init__(self, pipeline_options=None):
        super().__init__(pipeline_options)
        self._local = LocalFileSystem(pipeline_options)

    @classmethod
    def scheme(cls):
        return "tracked"

    def join(self, basepath, *paths):
        return PREFIX + self._local.join(_local(basepath), *paths)

    def split(self, path):
        head, tail = self._local.split(_local(path))
        return PREFIX + head, tail

    def mkdirs(self, path):
        return self._local.mkdirs(_local(path))

    def has_dirs(self):
        return True

    def _list(self, dir_or_prefix):
        return (_tracked(m) for m in self._local._list(_local(dir_or_prefix)))

    def match(self, patterns, limits=None):
        return [MatchResult(PREFIX + r.pattern, [_tracked(m) for m in r.metadata_list])
                for r in self._local.match([_local(p) for p in patterns], limits)]

    def create(self, path, *args, **kwargs):
        return self._local.create(_local(path), *args, **kwargs)

    def open(self, path, *args, **kwargs):
        return TrackedFile(self._local.open(_local(path), *args, **kwargs))

    def copy(self, sources, destinations):
        return self._local.copy([_local(p) for p in sources], [_local(p) for p in destinations])

    def rename(self, sources, destinations):
        return self._local.rename([_local(p) for p in sources], [_local(p) for p in destinations])

    def exists(self, path):
        return self._local.exists(_local(path))

    def size(self, path):
        return self._local.size(_local(path))

    def last_updated(self, path):
        return self._local.last_updated(_local(path))

    def checksum(self, path):
        return self._local.checksum(_local(path))

    def metadata(self, path):
        return _tracked(self._local.metadata(_local(path)))

    def delete(self, paths):
        return self._local.delete([_local(p) for p in paths])


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    """A dataset one run of the bundled sample wrote (read back untracked)."""
    out = tmp_path_factory.mktemp("exit") / "data"
    assert main(["run", "-q", "--out", str(out)]) == 0
    return out


@pytest.fixture
def buffers():
    BUFFERS.reset()
    return BUFFERS


def test_a_run_reading_what_earlier_runs_stored_leaves_no_buffer_to_arrow(dataset, buffers, capsys):
    assert main(["run", "-q", "--out", PREFIX + str(dataset)]) == 0
    assert "complete" in capsys.readouterr().out
    assert buffers.handed, "the run read nothing through the tracked filesystem"
    assert buffers.problems() is None, buffers.problems()


def test_feed_health_leaves_no_buffer_to_arrow(dataset, buffers, capsys):
    assert main(["feeds", PREFIX + str(dataset)]) == 0
    assert "3 feeds" in capsys.readouterr().out
    assert buffers.handed
    assert buffers.problems() is None, buffers.problems()


def test_dedup_chunk_reads_leave_no_buffer_to_arrow(dataset, buffers):
    files = sorted((dataset / "articles").rglob("*.parquet"))
    rows = [row for path in files for row in read_chunk(PREFIX + str(path), 0, ["article_id", "url", "text"])]
    assert rows and all(row["article_id"] and row["url"] for row in rows)
    assert buffers.problems() is None, buffers.problems()
