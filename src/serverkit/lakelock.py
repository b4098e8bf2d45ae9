"""One server per lake: a lease kept in the lake itself, on a local disk or object storage.

The lease is a one-row Lance table (``<dir>/<name>.lock.lance``) whose row names its holder
(host, pid, port, when it started, when the lease expires). Every change is a Lance commit made
against the version the holder last read with no retries, so it is a compare-and-swap: of two
instances taking or renewing the lease at once exactly one commits the next version (Lance uses
a conditional create of the manifest locally, and a conditional put on object storage). A lease
is stale once it has expired, or at once when its holder is a dead process of this host (kill
-9, then a restart, must not wait for the lease to run out). The holder renews it on a thread;
losing it (another instance took it over while this one was frozen) is reported to a callback.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import lance
import pyarrow as pa

log = logging.getLogger(__name__)

DEFAULT_TTL_SECONDS = 30.0
_CLEANUP_EVERY = 20  # renewals between removals of the lease's old versions


class LakeLocked(RuntimeError):
    """Another live instance holds the lease."""

    def __init__(self, uri: str, holder: dict[str, Any]) -> None:
        self.holder = holder
        super().__init__(
            f"{uri} is held by another instance: host {holder.get('host')}, pid "
            f"{holder.get('pid')}, port {holder.get('port')}, since {holder.get('started')} "
            f"(lease expires {holder.get('expires')}); stop it first, or wait for its lease "
            "to expire if it died on another machine"
        )


class LakeLock:
    """The lease of one server over a lake (or a state folder).

    Args:
        root: the folder (local path or URI) the lease lives under.
        name: whose lease it is (``data-platform``); the table is ``<name>.lock.lance``.
        port: recorded for whoever is refused.
        storage_options: Lance's storage options for ``root``.
        ttl_seconds: how long a lease lasts without renewal; renewed every third of it.
        on_lost: called (on the renewal thread) if the lease was taken over meanwhile.
    """

    def __init__(
        self,
        root: str,
        name: str,
        port: int | None = None,
        storage_options: dict[str, str] | None = None,
        ttl_seconds: float = DEFAULT_TTL_SECONDS,
        on_lost: Callable[[dict[str, Any]], None] | None = None,
    ) -> None:
        self.uri = f"{str(root).rstrip('/')}/{name}.lock.lance"
        self.storage_options = dict(storage_options or {})
        self.ttl = ttl_seconds
        self.on_lost = on_lost
        self.me = {
            "id": uuid.uuid4().hex,
            "host": socket.gethostname(),
            "pid": os.getpid(),
            "port": port,
            "started": _iso(time.time()),
            "boot": _boot_id(),
            "pid_start": _pid_start(os.getpid()),
        }
        self._version: int | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._renewals = 0

    # -- public --------------------------------------------------------------------------

    def acquire(self) -> LakeLock:
        """Take the lease (a stale one is taken over) and start renewing it.

        Raises:
            LakeLocked: a live instance holds it.
        """
        ds = self._open()
        if ds is None:
            try:
                ds = lance.write_dataset(
                    self._row(), self.uri, mode="create", storage_options=self._opts()
                )
            except OSError:  # created meanwhile by another instance: decide on what it wrote
                ds = self._open()
                if ds is None:
                    raise
                holder = _holder(ds)
                if holder is not None and not self._stale(holder):
                    raise LakeLocked(self.uri, holder) from None
                self._swap(ds)
            else:
                self._version = int(ds.version)
        else:
            holder = _holder(ds)
            if holder is not None and not self._stale(holder):
                raise LakeLocked(self.uri, holder)
            if holder is not None and holder.get("expires_at", 0) > 0:
                log.warning("taking over the stale lease of %s", _who(holder))
            self._swap(ds)
        self._thread = threading.Thread(target=self._renew_loop, name="lake-lease", daemon=True)
        self._thread.start()
        return self

    def release(self) -> None:
        """Stop renewing and give the lease up (a next instance takes it at once)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        if self._version is None:
            return
        try:
            self._commit(self._version, released=True)
        except Exception as exc:  # lost or unwritable: it expires on its own
            log.warning("could not release the lease %s: %s", self.uri, exc)
        self._version = None

    def holder(self) -> dict[str, Any] | None:
        """Who holds the lease now, as stored (None when there is none)."""
        ds = self._open()
        return _holder(ds) if ds is not None else None

    def __enter__(self) -> LakeLock:
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()

    # -- internals -----------------------------------------------------------------------

    def _opts(self) -> dict[str, str] | None:
        return self.storage_options or None

    def _open(self) -> Any:
        try:
            return lance.dataset(self.uri, storage_options=self._opts())
        except (ValueError, OSError):
            return None

    def _row(self, released: bool = False) -> pa.Table:
        now = time.time()
        expires = 0.0 if released else now + self.ttl
        holder = {**self.me, "expires": _iso(expires), "expires_at": expires, "renewed_at": now}
        return pa.table({"holder": [json.dumps(holder)]})

    def _stale(self, holder: dict[str, Any]) -> bool:
        if holder.get("id") == self.me["id"]:
            return True
        if float(holder.get("expires_at", 0)) < time.time():
            return True
        if holder.get("host") == self.me["host"]:
            pid = holder.get("pid")
            if not isinstance(pid, int) or holder.get("boot") != self.me["boot"]:
                return True  # from before a reboot
            # A pid that now names another process (a restarted container's pid 1) is stale.
            started = holder.get("pid_start")
            return not _alive(pid) or (started is not None and _pid_start(pid) != started)
        return False

    def _swap(self, ds: Any) -> None:
        """Take the lease from the version read; LakeLocked when another instance won."""
        try:
            self._commit(int(ds.version))
        except OSError:
            fresh = self._open()
            holder = (_holder(fresh) if fresh is not None else None) or {}
            raise LakeLocked(self.uri, holder) from None

    def _commit(self, read_version: int, released: bool = False) -> None:
        row = self._row(released)
        fragments = lance.fragment.write_fragments(row, self.uri, storage_options=self._opts())
        operation = lance.LanceOperation.Overwrite(row.schema, fragments)
        ds = lance.LanceDataset.commit(
            self.uri,
            operation,
            read_version=read_version,
            storage_options=self._opts(),
            max_retries=0,  # a compare-and-swap: a concurrent commit makes this one fail
        )
        self._version = int(ds.version)

    def _renew_loop(self) -> None:
        while not self._stop.wait(self.ttl / 3):
            version = self._version
            if version is None:
                return
            try:
                self._commit(version)
            except OSError:
                fresh = self._open()
                holder = (_holder(fresh) if fresh is not None else None) or {}
                if holder.get("id") == self.me["id"]:
                    continue  # our own commit landed after all
                log.critical("the lease %s was taken over by %s", self.uri, _who(holder))
                self._version = None
                if self.on_lost is not None:
                    self.on_lost(holder)
                return
            except Exception:  # a storage hiccup: try again before the lease runs out
                log.exception("renewing the lease %s failed", self.uri)
                continue
            self._renewals += 1
            if self._renewals % _CLEANUP_EVERY == 0:
                self._cleanup()

    def _cleanup(self) -> None:
        try:
            ds = lance.dataset(self.uri, storage_options=self._opts())
            ds.cleanup_old_versions(older_than=timedelta(seconds=0))
        except Exception:
            log.debug("cleaning the lease's old versions failed", exc_info=True)


def _holder(ds: Any) -> dict[str, Any] | None:
    try:
        rows = ds.to_table(columns=["holder"]).column("holder").to_pylist()
        return json.loads(rows[0]) if rows else None
    except (ValueError, OSError, IndexError):
        return None


def _who(holder: dict[str, Any]) -> str:
    return f"{holder.get('host')}:{holder.get('pid')} (port {holder.get('port')})"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _pid_start(pid: int) -> int | None:
    """When a process started (clock ticks since boot), to tell it from a recycled pid."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as fh:
            return int(fh.read().rsplit(")", 1)[1].split()[19])
    except (OSError, ValueError, IndexError):
        return None


def _boot_id() -> str | None:
    try:
        with open("/proc/sys/kernel/random/boot_id", encoding="ascii") as fh:
            return fh.read().strip()
    except OSError:
        return None


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="seconds")
