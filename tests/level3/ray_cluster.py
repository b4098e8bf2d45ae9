"""A multi-node Ray cluster on one machine: a head and workers, each a real ``ray start``.

Each node listens on its own loopback address (127.0.0.2, .3, .4): Ray rewrites 127.0.0.1 to
the machine's outward address unless ``RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER`` is set, and that
setting also makes Ray treat the machine as a single node, so it must stay unset here. Every
node has ``--num-cpus 1``, a custom resource named after it (placement without guessing), its
own temp dir and free ports, and all share one token file (``RAY_AUTH_MODE=token``).

Every process of a node inherits ``NODE_ENV=<its temp dir>``, so a single node can be killed
(a lost node) and the whole cluster stopped without touching any other Ray on the machine.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from serverkit.net import free_port
from serverkit.procs import kill_file_holders, kill_marked, marked_processes, set_pdeathsig

NODE_ENV = "LEVEL3_RAY_NODE"
RESULT_MARK = "LEVEL3-RESULT "
MAX_STARTS = 2
RAY_CLI = Path(sys.executable).with_name("ray")
OBJECT_STORE_BYTES = 100 * 1024 * 1024  # Ray's floor is 75 MiB; tasks talk through the lake
# Ray's defaults notice a dead raylet after 5 failed checks 3 s apart; the platform's "node
# lost" should not wait that long. A killed raylet refuses the check at once, so 5 checks 1 s
# apart find it in ~5 s; the 3 s timeout keeps a raylet that is alive but slow (a loaded
# machine) from being declared dead. The GCS reads these from its environment.
HEALTH_CHECK_ENV = {
    "RAY_health_check_initial_delay_ms": "1000",
    "RAY_health_check_period_ms": "1000",
    "RAY_health_check_timeout_ms": "3000",
    "RAY_health_check_failure_threshold": "5",
}
# Inherited settings that would change what a node is: an address to join, another token, or
# the single-machine switch that rewrites our addresses.
_DROPPED_ENV = ("RAY_ADDRESS", "RAY_AUTH_TOKEN", "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER")


_PORT_PARAMS = (
    "node-manager-port",
    "object-manager-port",
    "metrics-export-port",
    "dashboard-agent-listen-port",
    "dashboard-agent-grpc-port",
    "runtime-env-agent-port",
)


def node_port_params() -> dict[str, str]:
    """The ``ray start`` port parameters every node needs, each a free port (Ray's fixed
    defaults would collide between nodes on one machine)."""
    return {name: str(free_port()) for name in _PORT_PARAMS}


def holders(directory: Path) -> list[int]:
    """PIDs of processes with a file under ``directory`` open (deleted since, or not)."""
    prefix = str(directory)
    found = []
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            if any(
                os.readlink(fd.path).startswith(prefix) for fd in os.scandir(f"{entry.path}/fd")
            ):
                found.append(int(entry.name))
        except OSError:
            continue  # gone meanwhile, or not ours to read
    return found


def describe(pids: Sequence[int]) -> list[str]:
    """``PID command line`` for each, for an assertion's message."""
    lines = []
    for pid in pids:
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as fh:
                cmdline = fh.read().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            cmdline = "(gone)"
        lines.append(f"{pid} {cmdline[:200]}")
    return lines


def as_flags(params: Mapping[str, str]) -> list[str]:
    return [f"--{key}={value}" for key, value in params.items()]


@dataclass
class RayNode:
    """One ``ray start --block`` process tree: ``argv`` after ``ray start``, extra ``env``."""

    name: str
    ip: str
    argv: list[str]
    env: dict[str, str]
    temp_dir: Path
    proc: subprocess.Popen[bytes] | None = None
    node_id: str = ""
    starts: int = 0

    @property
    def log_path(self) -> Path:
        return self.temp_dir / "ray-start.log"

    def start(self) -> None:
        self.starts += 1
        self.temp_dir.mkdir(parents=True, exist_ok=True)
        env = {k: v for k, v in os.environ.items() if k not in _DROPPED_ENV}
        env.update(self.env)
        env.update({NODE_ENV: str(self.temp_dir), "RAY_USAGE_STATS_ENABLED": "0"})
        argv = [str(RAY_CLI), "start", "--block", *self.argv, f"--temp-dir={self.temp_dir}"]
        with open(self.log_path, "ab") as out:
            self.proc = subprocess.Popen(
                argv,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                preexec_fn=set_pdeathsig,  # the test runner killed outright takes the node along
            )

    def pids(self) -> list[int]:
        """Its live processes: marked ones, and those holding a file of its temp dir open
        (Ray's agents retitle themselves, which hides the marker in /proc)."""
        return sorted(
            set(marked_processes(NODE_ENV, str(self.temp_dir))) | set(holders(self.temp_dir))
        )

    def kill(self, wait: float = 5.0) -> None:
        """SIGKILL every process of this node at once: a machine that vanished. Returns once
        they are gone (a killed process lingers, its files open, until the kernel reaps it)."""
        deadline = time.monotonic() + wait
        while True:
            kill_marked(NODE_ENV, str(self.temp_dir))
            kill_file_holders(self.temp_dir)  # agents whose process title hides the marker
            if not self.pids() or time.monotonic() > deadline:
                break
            time.sleep(0.05)
        if self.proc is not None:
            self.proc.wait()

    def stop(self, grace: float = 2.0) -> None:
        mark = str(self.temp_dir)
        if marked_processes(NODE_ENV, mark):
            # SIGTERM lets the raylet reap its workers; SIGKILL whatever outlives the grace.
            kill_marked(NODE_ENV, mark, signal.SIGTERM)
            deadline = time.monotonic() + grace
            while marked_processes(NODE_ENV, mark) and time.monotonic() < deadline:
                time.sleep(0.1)
        self.kill()

    def restart(self) -> None:
        """Start a killed node again as a new node (Ray gives it a new id), on fresh ports
        and an emptied temp dir: what the dead raylet left there belongs to no one."""
        self.kill()
        shutil.rmtree(self.temp_dir, ignore_errors=True)
        self.argv = [a for a in self.argv if a.split("=", 1)[0][2:] not in _PORT_PARAMS]
        self.argv += as_flags(node_port_params())
        self.node_id, self.starts = "", 0
        self.start()

    def tail(self, chars: int = 3000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-chars:]
        except OSError:
            return ""


@dataclass
class RayCluster:
    """A head and workers as local processes; ``start`` returns once every node is alive."""

    root: Path
    token_path: Path
    nodes: list[RayNode] = field(default_factory=list)
    gcs_port: int = 0
    dashboard_port: int = 0

    @property
    def head(self) -> RayNode:
        return self.nodes[0]

    @property
    def address(self) -> str:
        return f"{self.head.ip}:{self.gcs_port}"

    @property
    def dashboard_url(self) -> str:
        return f"http://{self.head.ip}:{self.dashboard_port}"

    @property
    def workers(self) -> list[RayNode]:
        return self.nodes[1:]

    def node(self, name: str) -> RayNode:
        return next(n for n in self.nodes if n.name == name)

    @property
    def client_env(self) -> dict[str, str]:
        """What a driver process needs to join: the address and the token."""
        return {
            "RAY_ADDRESS": self.address,
            "RAY_AUTH_MODE": "token",
            "RAY_AUTH_TOKEN_PATH": str(self.token_path),
        }

    def start(self, timeout: float = 90.0) -> RayCluster:
        self.head.start()
        self._wait_for_head(timeout)
        for worker in self.workers:
            worker.start()
        self._wait_for_nodes(timeout)
        return self

    def revive(self, timeout: float = 90.0, wait: bool = True) -> RayCluster:
        """Every worker a test killed (a lost node) started again; with ``wait``, returns once
        every node is alive. Cheaper than a new cluster for the next module: the head and its
        GCS stay."""
        for worker in self.workers:
            if worker.proc is None or worker.proc.poll() is not None:
                worker.restart()
        if wait and not all(n.node_id for n in self.nodes):
            self._wait_for_nodes(timeout)
        return self

    def _wait_for_head(self, timeout: float) -> None:
        # `ray start --head` writes this file once its GCS and raylet are up; a worker started
        # before that may find the GCS listening but the cluster not ready, and exit.
        address_file = self.head.temp_dir / "ray_current_cluster"
        deadline = time.monotonic() + timeout
        while not address_file.exists():
            self._check_alive(deadline)
            time.sleep(0.2)

    def _wait_for_nodes(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while True:
            try:
                alive = {n["ip"]: n["node_id"] for n in self.list_nodes() if n["alive"]}
            except httpx.HTTPError:
                alive = {}  # the dashboard is not up yet
            if all(node.ip in alive for node in self.nodes):
                for node in self.nodes:
                    node.node_id = alive[node.ip]
                return
            self._check_alive(deadline)
            time.sleep(0.5)

    def _check_alive(self, deadline: float) -> None:
        for node in self.nodes:
            exited = node.proc is not None and node.proc.poll() is not None
            if exited and node is not self.head and node.starts < MAX_STARTS and not node.node_id:
                # `ray start` gives a raylet 30 s (fixed) to register; on a loaded machine a
                # worker can miss that once. Its leftovers go, then it tries again.
                node.kill()
                node.start()
                continue
            if exited:
                tail = node.tail()  # before stop removes the log with the temp dirs
                self.stop()
                raise RuntimeError(f"ray node {node.name} exited: {tail}")
        if time.monotonic() > deadline:
            tails = "\n".join(f"== {n.name}\n{n.tail()}" for n in self.nodes)
            self.stop()
            raise RuntimeError(f"the Ray cluster did not come up in time:\n{tails}")

    def list_nodes(self) -> list[dict[str, Any]]:
        """Every node the GCS knows, from Ray's state API (the dashboard's ``/api/v0/nodes``):
        ``node_id``, ``ip``, ``alive`` and ``resources`` each. Over HTTP with the token, so
        polling it costs no driver process."""
        response = httpx.get(
            f"{self.dashboard_url}/api/v0/nodes",
            params={"detail": "true", "limit": "1000"},
            headers={"Authorization": f"Bearer {self.token_path.read_text().strip()}"},
            timeout=10,
        )
        response.raise_for_status()
        return [
            {
                "node_id": n["node_id"],
                "ip": n["node_ip"],
                "alive": n["state"] == "ALIVE",
                "resources": n["resources_total"],
            }
            for n in response.json()["data"]["result"]["result"]
        ]

    def driver(self, code: str) -> tuple[list[str], dict[str, str]]:
        """argv and env of a driver joined to this cluster: ``ray.init`` first, then ``code``.

        Joined from the head's address: a driver attaches to the raylet of its own node, and
        without ``_node_ip_address`` Ray would look for one on 127.0.0.1.
        """
        prelude = (
            "import json, ray\n"
            f"def report(value): print({RESULT_MARK!r} + json.dumps(value), flush=True)\n"
            f"ray.init(address={self.address!r}, _node_ip_address={self.head.ip!r},"
            " log_to_driver=False)\n"
        )
        env = {k: v for k, v in os.environ.items() if k not in _DROPPED_ENV}
        env.update(self.client_env)
        return [sys.executable, "-c", prelude + code], env

    def run_driver(self, code: str, timeout: float = 60.0) -> Any:
        """Run ``code`` as a driver (see ``driver``); what it printed with ``report``."""
        argv, env = self.driver(code)
        done = subprocess.run(
            argv, env=env, capture_output=True, text=True, timeout=timeout, check=False
        )
        if done.returncode != 0:
            raise RuntimeError(f"driver failed ({done.returncode}): {done.stderr[-3000:]}")
        return driver_result(done.stdout)

    def pids(self) -> list[int]:
        return [pid for node in self.nodes for pid in node.pids()]

    def stop(self) -> None:
        # Workers first: a raylet whose GCS is gone waits for it before exiting.
        for node in reversed(self.nodes):
            node.stop()
        shutil.rmtree(self.root, ignore_errors=True)


def driver_result(stdout: str) -> Any:
    """The value a driver printed with ``report``: Ray prints its own lines (the raylet's
    messages) on the driver's stdout too."""
    for line in reversed(stdout.splitlines()):
        if line.startswith(RESULT_MARK):
            return json.loads(line.removeprefix(RESULT_MARK))
    raise RuntimeError(f"the driver reported nothing: {stdout[-3000:]}")


def write_token(path: Path) -> Path:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(secrets.token_hex(32))
    return path


def new_root() -> Path:
    # Short, under /tmp: Ray's Unix socket paths must stay below ~107 characters.
    return Path(tempfile.mkdtemp(prefix="l3ray-"))


def node_env(token_path: Path, extra: Mapping[str, str] | None = None) -> dict[str, str]:
    return {"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN_PATH": str(token_path), **(extra or {})}


def local_cluster(worker_ips: Sequence[str] = ("127.0.0.3", "127.0.0.4")) -> RayCluster:
    """The test tier's cluster: head on 127.0.0.2, one worker per address, one CPU each, a
    custom resource per node (``head``, ``worker1``, ``worker2``, ...) to pin tasks."""
    root = new_root()
    token = write_token(root / "auth_token")
    cluster = RayCluster(root=root, token_path=token, gcs_port=free_port("127.0.0.2"))
    cluster.dashboard_port = free_port("127.0.0.2")
    common = [
        "--num-cpus=1",
        "--num-gpus=0",
        f"--object-store-memory={OBJECT_STORE_BYTES}",
        "--disable-usage-stats",
        "--log-style=record",
        "--log-color=false",
    ]
    head_argv = [
        "--head",
        "--node-ip-address=127.0.0.2",
        f"--port={cluster.gcs_port}",
        # The state API (which node ran a task) is served by the dashboard's head process.
        "--include-dashboard=true",
        "--dashboard-host=127.0.0.2",
        f"--dashboard-port={cluster.dashboard_port}",
        f"--ray-client-server-port={free_port()}",
        f"--resources={json.dumps({'head': 1})}",
        *common,
        *as_flags(node_port_params()),
    ]
    cluster.nodes.append(
        RayNode("head", "127.0.0.2", head_argv, node_env(token, HEALTH_CHECK_ENV), root / "head")
    )
    for i, ip in enumerate(worker_ips, start=1):
        name = f"worker{i}"
        argv = [
            f"--address={cluster.address}",
            f"--node-ip-address={ip}",
            f"--resources={json.dumps({name: 1})}",
            *common,
            *as_flags(node_port_params()),
        ]
        cluster.nodes.append(RayNode(name, ip, argv, node_env(token), root / name))
    return cluster
