"""Process trees marked by an environment variable, so they can be found and killed reliably.

Children inherit the environment, so a marker such as ``LAKEKIT_TASK_ID=task-1`` finds a whole
tree even when a script forks or escapes its process group with setsid, and it cannot match a
recycled PID that now belongs to somebody else.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import re
import signal
import time
from collections.abc import Mapping

PARENT_ENV = "LAKEKIT_PARENT_PID"
_PR_SET_PDEATHSIG = 1
# The platform's keys (DP_API_KEY, AIP_API_KEY, AIP_DATA_PLATFORM_API_KEY, ...): a child (a
# task, a model server: user code whose log the API serves) must not be able to print them.
_SECRET_NAME = re.compile(r"^(DP|AIP|LAKEKIT|LAKESTACK)_(\w+_)?API_KEY$")


def scrubbed_env(env: Mapping[str, str] | None = None) -> dict[str, str]:
    """``env`` (default: ours) without the platform's keys, for a child process."""
    source = os.environ if env is None else env
    return {k: v for k, v in source.items() if not _SECRET_NAME.match(k)}


def write_secret(path: str | os.PathLike[str], secret: str) -> None:
    """Write ``secret`` to a new file only its owner can read (0600 from its creation)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(secret)


def marked_processes(var: str, value: str) -> list[int]:
    """PIDs of live processes whose environment has ``var=value``."""
    marker = f"{var}={value}\0".encode()
    me = os.getpid()
    pids = []
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit() or int(entry.name) == me:
            continue
        try:
            with open(f"/proc/{entry.name}/environ", "rb") as fh:
                environ = fh.read()
        except OSError:
            continue
        if marker in environ + b"\0" and not _is_zombie(int(entry.name)):
            pids.append(int(entry.name))
    return pids


def kill_marked(var: str, value: str, sig: int = signal.SIGKILL, wait: float = 2.0) -> int:
    """Signal every process marked ``var=value``; with SIGKILL, wait until they are gone."""
    count = 0
    deadline = time.monotonic() + wait
    while pids := marked_processes(var, value):
        for pid in pids:
            try:
                os.kill(pid, sig)
                count += 1
            except ProcessLookupError:
                pass
        if sig != signal.SIGKILL or time.monotonic() > deadline:
            break
        time.sleep(0.02)
    return count


def tree_rss_bytes(var: str, value: str) -> int:
    """Resident memory of every process marked ``var=value``, added up."""
    page = os.sysconf("SC_PAGE_SIZE")
    total = 0
    for pid in marked_processes(var, value):
        try:
            with open(f"/proc/{pid}/statm", encoding="ascii") as fh:
                total += int(fh.read().split()[1]) * page
        except (OSError, IndexError, ValueError):
            continue
    return total


def signal_group(pgid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


def kill_file_holders(directory: str | os.PathLike[str]) -> list[str]:
    """SIGKILL the processes that still hold files under ``directory`` open; their names.

    Ray's agents rename themselves (setproctitle), which overwrites what /proc shows of their
    environment, so a marker-based stop can miss them: they hold their logs in
    the private Ray temp dir open, which identifies them as ours.
    """
    prefix = str(directory)
    names = []
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            held = any(
                os.readlink(fd.path).startswith(prefix) for fd in os.scandir(f"{entry.path}/fd")
            )
            if not held:
                continue
            with open(f"{entry.path}/comm", encoding="utf-8", errors="replace") as fh:
                name = fh.read().strip()
            os.kill(int(entry.name), signal.SIGKILL)
            names.append(f"{entry.name} {name}")
        except (OSError, ValueError):
            continue  # gone meanwhile, or not ours to read
    return names


def set_pdeathsig() -> bool:
    """Ask the kernel to SIGKILL this process when its parent dies (Linux); False where it
    cannot. Safe as a ``preexec_fn`` (between fork and exec)."""
    try:
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    except (OSError, AttributeError):
        return False
    return True


def die_with_parent() -> None:
    """``set_pdeathsig``, so that nothing the platform started outlives it; exit at once if
    the parent is already gone."""
    if not set_pdeathsig():
        return
    parent = os.environ.get(PARENT_ENV)
    if parent and os.getppid() != int(parent):
        os._exit(137)


def _is_zombie(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as fh:
            return fh.read().rsplit(") ", 1)[1][:1] == "Z"
    except (OSError, IndexError):
        return True
