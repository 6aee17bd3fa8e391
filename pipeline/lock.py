"""One writer at a time per dataset: `DIR/.newsbeam.lock` names the run that holds it.

On a local (or NFS) folder the lock is an flock on that file: the kernel releases it when its
holder exits, however it exits, so a killed run never leaves a lock behind. On an object store
(gs://, s3://, any other Beam filesystem) it is an object the holder rewrites every HEARTBEAT
seconds; one not rewritten for STALE_AFTER is taken over. Object stores reached through Beam's
filesystems have no create-if-absent, so there the lock is written, then read back to see who
won: two launchers starting within the same moment can still both go on (documented).
"""

from __future__ import annotations

import json
import os
import secrets
import socket
import threading
from contextlib import contextmanager
from datetime import datetime, timedelta, timezone

from apache_beam.io.filesystems import FileSystems

LOCK_NAME = ".newsbeam.lock"
HEARTBEAT = 60.0  # seconds between rewrites of an object-store lock
STALE_AFTER = timedelta(minutes=10)


class LockedError(Exception):
    """Another run holds the dataset's lock; the CLI prints it as one line."""


def _holder(run_id: str, command: str) -> dict:
    now = datetime.now(timezone.utc).isoformat(timespec="seconds")
    return {"run_id": run_id, "command": f"newsbeam {command}", "host": socket.gethostname(), "pid": os.getpid(),
            "started_at": now, "heartbeat_at": now, "token": secrets.token_hex(8)}


def _refusal(out: str, holder: dict | None) -> LockedError:
    if not holder:
        who = "another run (it is starting or ending)"
    else:
        who = (f"run {holder.get('run_id')} ({holder.get('command')}, pid {holder.get('pid')} on {holder.get('host')}, "
               f"since {holder.get('started_at')})")
    return LockedError(f"{out} is being written by {who}; one run at a time per dataset: "
                       "wait for it to finish, or write this run to another --out")


def _parse(raw: bytes) -> dict | None:
    try:
        holder = json.loads(raw.decode("utf-8"))
    except ValueError:
        return None
    return holder if isinstance(holder, dict) else None


@contextmanager
def writer_lock(out: str, run_id: str, command: str = "run"):
    """Held while a run writes into `out`; LockedError naming the holder when another run has it."""
    holder = _holder(run_id, command)
    if "://" in out:
        with _object_lock(FileSystems.join(out, LOCK_NAME), out, holder):
            yield holder
    else:
        with _file_lock(os.path.join(out, LOCK_NAME), out, holder):
            yield holder


@contextmanager
def _file_lock(path: str, out: str, holder: dict):
    import fcntl

    os.makedirs(out, exist_ok=True)
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder_now = _parse(os.pread(fd, 64 * 1024, 0))
            os.close(fd)
            raise _refusal(out, holder_now) from None
        try:
            same = os.fstat(fd).st_ino == os.stat(path).st_ino
        except FileNotFoundError:
            same = False
        if same:
            break
        os.close(fd)  # the holder before removed the file as this one locked it: lock the new file
    try:
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(holder).encode("utf-8"), 0)
        yield
    finally:
        os.unlink(path)  # before unlocking: whoever locks the old file next sees it is gone
        os.close(fd)


def _read(path: str) -> dict | None:
    try:
        with FileSystems.open(path, compression_type="uncompressed") as f:
            return _parse(f.read())
    except Exception:  # gone between the check and the read, or unreadable: nobody holds it
        return None


def _write(path: str, holder: dict) -> None:
    with FileSystems.create(path) as f:
        f.write(json.dumps(holder).encode("utf-8"))


def is_stale(holder: dict | None, now: datetime | None = None) -> bool:
    """An object-store lock whose holder stopped rewriting it (or that cannot be read) may be taken over."""
    if not holder:
        return True
    try:
        beat = datetime.fromisoformat(str(holder.get("heartbeat_at")))
    except ValueError:
        return True
    return (now or datetime.now(timezone.utc)) - beat > STALE_AFTER


@contextmanager
def _object_lock(path: str, out: str, holder: dict):
    if FileSystems.exists(path):
        current = _read(path)
        if not is_stale(current):
            raise _refusal(out, current)
    _write(path, holder)
    if (_read(path) or {}).get("token") != holder["token"]:
        raise _refusal(out, _read(path))
    stop = threading.Event()

    def beat():
        while not stop.wait(HEARTBEAT):
            if (_read(path) or {}).get("token") != holder["token"]:
                return  # taken over by another launcher after it went stale: not ours to refresh
            _write(path, {**holder, "heartbeat_at": datetime.now(timezone.utc).isoformat(timespec="seconds")})

    thread = threading.Thread(target=beat, name="newsbeam-lock-heartbeat", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(timeout=5)
        if (_read(path) or {}).get("token") == holder["token"]:
            FileSystems.delete([path])
