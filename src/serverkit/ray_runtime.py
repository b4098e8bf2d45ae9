"""Level 2's Ray: a private local head the platform starts and stops, or a cluster it joins.

Why a private head rather than ``ray.init()``: a bare ``ray.init()`` attaches to any cluster
already running on the machine (its address file under /tmp/ray), and writes a token to
``~/.ray/auth_token``. Our head gets its own temp dir, free ports and its own token, so it never
meets somebody else's Ray, and stopping it touches nothing else.

Authentication. Ray 2.59 enables token authentication for new local clusters by default (when
``RAY_AUTH_MODE`` is unset it generates or reuses ``~/.ray/auth_token``), and every client then
needs the token. We set the mode explicitly: our head runs with ``RAY_AUTH_MODE=token`` and
``RAY_AUTH_TOKEN_PATH`` pointing at a fresh token file (0600) in its temp dir, and clients are
given that path (``*_RAY_AUTH_TOKEN_PATH``). Joining a cluster without a path leaves Ray's own
lookup (``RAY_AUTH_TOKEN``, ``RAY_AUTH_TOKEN_PATH``, ``~/.ray/auth_token``) in charge.

Nothing here imports ``ray`` at module level: Level 1 never needs it.
"""

from __future__ import annotations

import json
import logging
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from serverkit.net import free_port
from serverkit.procs import kill_file_holders, kill_marked, marked_processes, set_pdeathsig

log = logging.getLogger(__name__)

HEAD_ENV = "LAKEKIT_RAY_HEAD"  # marks every process of a head we started (value: its temp dir)
AUTH_MODE_ENV = "RAY_AUTH_MODE"
TOKEN_PATH_ENV = "RAY_AUTH_TOKEN_PATH"
TOKEN_ENV = "RAY_AUTH_TOKEN"
# Small on purpose: tasks exchange data through the lake, not the object store, and Ray's
# default (30% of RAM) is wasted on a 2-core, 24 GiB machine. Ray spills past it to disk.
LOOPBACK_ENV = {
    # Without this, Ray on Linux swaps 127.0.0.1 for the machine's outward address: the head
    # would listen, and every client connect, beyond loopback. Ray reads it as "treat this
    # machine as a single-node cluster", which is what Level 2 is.
    "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0",
}
OBJECT_STORE_MB = 300
# Ray Serve's request path, set for throughput on few cores (switches of Ray 2.59's
# serve/_private/constants.py, each read once by the process it names, at import). Without
# them a request crosses two extra event loops in threads: in the proxy (its router's loop)
# and in the replica (the loop user code runs on), each hop a wake-up of another thread that
# competes for the same 2 cores. Our model app never blocks its loop (the forward pass runs
# in the batcher's thread), so it may share the replica's main loop.
SERVE_REPLICA_ENV = {
    "RAY_SERVE_RUN_USER_CODE_IN_SEPARATE_THREAD": "0",  # replica: our app on its main loop
    "RAY_SERVE_REQUEST_PATH_LOG_BUFFER_SIZE": "1000",  # log records flushed in batches
    "RAY_SERVE_LOG_TO_STDERR": "0",  # Serve's logs to its files only, not twice
}
SERVE_ENV = {
    **SERVE_REPLICA_ENV,
    "RAY_SERVE_RUN_ROUTER_IN_SEPARATE_LOOP": "0",  # proxy: route on its own loop
}
# Serve's direct ingress (Ray 2.59): every ingress replica also serves HTTP itself, on a port
# of its own (from 30000 up), and the proxy stays on the head. A request to the replica's port
# crosses one process instead of the proxy's six crossings (client to proxy to replica, the
# replica's two calls back into the proxy for the body and the disconnect, two messages back):
# 0.8-1.2x the bare app instead of 0.2-0.3x in paired runs here. The controller and the
# replicas read it, so a cluster has it or not; the AI Platform finds the replicas' ports
# from the controller and spreads the platform route over them. A stopped replica keeps
# answering for the drain period so that an outside balancer can drop it (30 s by default);
# ours, the AI Platform, stops sending to it before it deletes, so a delete need not wait.
DIRECT_INGRESS_ENV = {
    "RAY_SERVE_ENABLE_DIRECT_INGRESS": "1",
    "RAY_SERVE_DIRECT_INGRESS_MIN_DRAINING_PERIOD_S": "0",
}
# Ray's own work beside the requests, on the same cores. Ray starts its workers at nice 15
# (``worker_niceness``, meant for batch tasks under a busy raylet): the proxy and the
# replicas then lose every contest for a core against a Level 1 model server or anything
# else on the machine; 0 is what Ray Jobs gives its drivers too. Task events (the state
# API's task table and the dashboard's; GCS's actor table, which placement checks read,
# stays) and the metrics every process records and ships to its node's agent are never read
# at Level 2.
QUIET_ENV = {
    "RAY_worker_niceness": "0",
    "RAY_task_events_report_interval_ms": "0",
    "RAY_enable_metrics_collection": "0",
}


def use_loopback() -> None:
    """Keep this process's Ray on loopback; call before ``ray`` is first imported."""
    os.environ.update(LOOPBACK_ENV)


class LocalRay:
    """A one-node Ray head of our own: ``ray start --head --block`` in a private temp dir.

    Every process of it (GCS, raylet, workers, Serve) inherits ``HEAD_ENV``, so ``stop`` finds
    and kills exactly them, never another Ray on the machine.
    """

    def __init__(
        self,
        num_cpus: int | None = None,
        object_store_mb: int = OBJECT_STORE_MB,
        temp_dir: Path | None = None,
        direct_ingress: bool = True,
    ) -> None:
        self.num_cpus = num_cpus or os.cpu_count() or 1
        self.object_store_mb = object_store_mb
        self._own_dir = temp_dir is None
        # Short, under /tmp: Ray's Unix socket paths must stay below ~107 characters.
        self.temp_dir = Path(temp_dir or tempfile.mkdtemp(prefix="lakekit-ray-"))
        self.token_path = self.temp_dir / "auth_token"
        self.direct_ingress = direct_ingress
        self.address: str | None = None
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 120.0) -> LocalRay:
        """Start the head; returns once its address is known (about 20 s on 2 cores)."""
        self.temp_dir.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.token_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(secrets.token_hex(32))
        address_file = self.temp_dir / "ray_current_cluster"
        address_file.unlink(missing_ok=True)
        # Every process of the head (GCS, raylet, controller, proxy, replicas) inherits this
        # environment; a switch already in ours wins, so a run can measure Ray's defaults.
        env = {**SERVE_ENV, **QUIET_ENV, **(DIRECT_INGRESS_ENV if self.direct_ingress else {})}
        env.update({k: v for k, v in os.environ.items() if k not in (TOKEN_ENV, "RAY_ADDRESS")})
        env.update(
            {
                AUTH_MODE_ENV: "token",
                TOKEN_PATH_ENV: str(self.token_path),
                HEAD_ENV: str(self.temp_dir),
                "RAY_USAGE_STATS_ENABLED": "0",
                **LOOPBACK_ENV,
            }
        )
        ray_cli = Path(sys.executable).with_name("ray")
        # Every port chosen here: Ray's defaults (6379, 8265, 10001, 52365, ...) would collide
        # with another cluster on the machine.
        argv = [
            str(ray_cli),
            "start",
            "--head",
            "--block",
            "--node-ip-address=127.0.0.1",
            f"--temp-dir={self.temp_dir}",
            f"--port={free_port()}",
            f"--num-cpus={self.num_cpus}",
            "--num-gpus=0",
            f"--object-store-memory={self.object_store_mb * 1024 * 1024}",
            "--include-dashboard=false",
            f"--dashboard-port={free_port()}",
            f"--dashboard-agent-listen-port={free_port()}",
            f"--dashboard-agent-grpc-port={free_port()}",
            f"--runtime-env-agent-port={free_port()}",
            f"--metrics-export-port={free_port()}",
            f"--ray-client-server-port={free_port()}",
            f"--node-manager-port={free_port()}",
            f"--object-manager-port={free_port()}",
            "--disable-usage-stats",
            "--log-style=record",
            "--log-color=false",
        ]
        with open(self.temp_dir / "head.log", "ab") as out:
            self.proc = subprocess.Popen(
                argv,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                # If whoever started the head is killed outright, the head goes too. (It
                # takes no lock, so it is safe between fork and exec.)
                preexec_fn=set_pdeathsig,
            )
        deadline = time.monotonic() + timeout
        # ray start writes the address file once GCS and raylet are up.
        while not address_file.exists():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                tail = (self.temp_dir / "head.log").read_text(errors="replace")[-2000:]
                self.stop()
                raise RuntimeError(f"the local Ray head did not start: {tail}")
            time.sleep(0.2)
        self.address = address_file.read_text().strip()
        log.info("local Ray head at %s (temp dir %s)", self.address, self.temp_dir)
        return self

    def stop(self, grace: float = 2.0) -> None:
        """Stop every process of this head (and only those); remove the temp dir we made."""
        mark = str(self.temp_dir)
        if marked_processes(HEAD_ENV, mark):
            # SIGTERM first so raylet can tidy its workers; Ray's shutdown may hang on the
            # GCS going away first, so SIGKILL what is left after a short grace.
            kill_marked(HEAD_ENV, mark, signal.SIGTERM)
            deadline = time.monotonic() + grace
            while marked_processes(HEAD_ENV, mark) and time.monotonic() < deadline:
                time.sleep(0.1)
            kill_marked(HEAD_ENV, mark)
        if self.proc is not None:
            self.proc.wait()
        kill_file_holders(self.temp_dir)  # agents that renamed themselves out of the marker
        if self._own_dir:
            shutil.rmtree(self.temp_dir, ignore_errors=True)

    def __enter__(self) -> LocalRay:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def use_token(token_path: Path | str | None) -> None:
    """Authenticate this process, and the processes it starts, with the token file."""
    if not token_path:
        return
    os.environ.pop(TOKEN_ENV, None)  # it would take precedence over the file
    os.environ[AUTH_MODE_ENV] = "token"
    os.environ[TOKEN_PATH_ENV] = str(token_path)
    if "ray._raylet" in sys.modules:
        # Ray caches the mode (C++ config) and the token once loaded; refresh both, as Ray's
        # own _enable_token_auth does, or ray.init still connects without a token.
        from ray._raylet import (  # type: ignore[attr-defined]  # compiled, no stubs for these
            AuthenticationTokenLoader,
            Config,
        )

        Config.initialize("")
        AuthenticationTokenLoader.instance().reset_cache()


def driver_ip(address: str | None) -> str | None:
    """The address of the node this driver attaches to, said explicitly: Ray would guess it,
    and with ``LOOPBACK_ENV`` set (Level 2) it guesses 127.0.0.1, which is wrong for a head
    on another loopback address (the test cluster's 127.0.0.2) and for a pod joined to a
    real cluster (its own IP, the one that routes to the head)."""
    if not address or address.startswith("ray://"):
        return None
    host = address.rsplit(":", 1)[0]
    if host.startswith("127."):
        return host  # a node of this machine listens there
    from ray._private.services import node_ip_address_from_perspective

    return str(node_ip_address_from_perspective(address))


def lake_env(storage_options: dict[str, str]) -> dict[str, str]:
    """Environment for a process on another node that reads the lake: the storage options as
    the platform hands them to scripts (``LAKEKIT_STORAGE_OPTIONS``), and as the ``AWS_*``
    variables Lance and Daft read by default, so a script (or the model server) that opens a
    URI without options still reaches the endpoint. No instance-metadata lookups."""
    from serverkit.lakefs import ENV_FALLBACKS, STORAGE_OPTIONS_ENV

    env = {STORAGE_OPTIONS_ENV: json.dumps(storage_options)}
    if not storage_options:
        return env
    env["AWS_EC2_METADATA_DISABLED"] = "true"
    for option, names in ENV_FALLBACKS.items():
        if option in storage_options:
            env.update(dict.fromkeys(names, storage_options[option]))
    return env


def auth_env() -> dict[str, str]:
    """This process's Ray authentication settings, to pass on to a task's processes."""
    return {k: os.environ[k] for k in (AUTH_MODE_ENV, TOKEN_PATH_ENV, TOKEN_ENV) if k in os.environ}


class RayConnection:
    """This process as a Ray driver: joins ``address``, or starts a private head and stops it
    on ``close`` (a service started alone with runtime=ray and no address); ``direct_ingress``
    is for that head (a cluster we join has Serve's direct ingress or not already)."""

    def __init__(
        self,
        address: str | None,
        token_path: Path | str | None,
        namespace: str,
        direct_ingress: bool = True,
    ) -> None:
        self.address = address
        self.token_path = token_path
        self.namespace = namespace
        self.direct_ingress = direct_ingress
        self.head: LocalRay | None = None

    def open(self) -> RayConnection:
        use_loopback()
        import ray  # Level 2 only

        if not self.address:
            self.head = LocalRay(direct_ingress=self.direct_ingress).start()
            self.address, self.token_path = self.head.address, self.head.token_path
        use_token(self.token_path)
        # ray.init replaces the SIGTERM handler with sys.exit: the web server's graceful
        # shutdown (stop the tasks, the services, our Ray) would never run. Keep the server's.
        on_main = threading.current_thread() is threading.main_thread()
        sigterm = signal.getsignal(signal.SIGTERM) if on_main else None
        try:
            ray.init(
                address=self.address,
                _node_ip_address=driver_ip(self.address),
                namespace=self.namespace,
                logging_level=logging.WARNING,
                log_to_driver=False,  # workers' output stays in Ray's logs, not the service's
            )
        except BaseException:
            self.close()
            raise
        finally:
            if sigterm is not None:
                signal.signal(signal.SIGTERM, sigterm)
        return self

    def cpus(self) -> int:
        import ray

        return max(1, int(ray.cluster_resources().get("CPU", 1)))

    def close(self) -> None:
        import ray

        if ray.is_initialized():
            ray.shutdown()
        if self.head is not None:
            self.head.stop()
            self.head = None
