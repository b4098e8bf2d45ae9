"""Health probes of running model servers, each with a deadline.

A model server that is alive but does not answer (stopped, deadlocked, swapping) looks
``running`` to a process check, and every prediction sent to it waits for its deadline. The
prober asks each running server's ``/health`` every ``interval`` seconds, with ``timeout``;
``failures`` misses in a row make the service ``unhealthy``: predict then fails at once (503),
and the requests in flight to it are ended. One answer makes it ``running`` again.

The verdicts are kept here, in memory, because predict reads them on every request; the
service record follows them (through the manager's hook) so that the API shows them.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass

from lakeapi.schemas import Service, ServiceStatus
from serverkit.upstream import UpstreamError, UpstreamPool, split_endpoint

log = logging.getLogger(__name__)

# The record's status for a hung server; until lakeapi has it, the record stays ``running``
# with the reason in ``error``, and predict still fails fast from the verdict kept here.
UNHEALTHY = ServiceStatus.UNHEALTHY
PROBED = frozenset((ServiceStatus.RUNNING, UNHEALTHY))


@dataclass(frozen=True)
class ProbePolicy:
    """How often, with what deadline, and after how many misses in a row.

    The defaults notice a hung server within about ``interval + failures * timeout`` (2.5 s).
    """

    interval: float = 0.5
    timeout: float = 1.0
    failures: int = 2


class HealthProber:
    """Probes services; tells ``on_verdict(service, problem)`` when one turns unhealthy
    (``problem`` says why) or recovers (``problem`` is None)."""

    def __init__(
        self,
        policy: ProbePolicy,
        services: Callable[[], list[Service]],
        on_verdict: Callable[[Service, str | None], None],
    ) -> None:
        self.policy = policy
        self._services = services
        self._on_verdict = on_verdict
        self._misses: dict[str, int] = {}
        self._problems: dict[str, str] = {}
        # The lean client of the predict path (a probe through httpx cost 5x its CPU), a pool
        # of its own: aborting a hung server's predictions leaves the probes be.
        self._http = UpstreamPool(timeout=policy.timeout)
        self._task: asyncio.Task[None] | None = None

    def problem(self, service_id: str) -> str | None:
        """Why the service is unhealthy; None while it answers its probes."""
        return self._problems.get(service_id)

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="health-probes")

    async def aclose(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        await self._http.close()

    async def _run(self) -> None:
        while True:
            probed = [s for s in self._services() if s.status in PROBED]
            if probed:
                await asyncio.gather(*(self._check(s) for s in probed))
            live = {s.id for s in probed}
            for gone in set(self._misses) - live:  # deleted, or failed: no verdict to keep
                self._misses.pop(gone, None)
                self._problems.pop(gone, None)
            await asyncio.sleep(self.policy.interval)

    async def _check(self, service: Service) -> None:
        problem = await self._probe(service)
        if problem is None:
            self._misses[service.id] = 0
            if self._problems.pop(service.id, None) is not None:
                log.warning("%s answers its health probe again", service.id)
                self._verdict(service, None)
            return
        misses = self._misses.get(service.id, 0) + 1
        self._misses[service.id] = misses
        if misses >= self.policy.failures and service.id not in self._problems:
            self._problems[service.id] = problem
            log.warning("%s is unhealthy: %s", service.id, problem)
            self._verdict(service, problem)

    async def _probe(self, service: Service) -> str | None:
        host, port, base = split_endpoint(service.endpoint or "")
        try:
            status, _, _ = await self._http.request("GET", host, port, base + "/health")
        except UpstreamError as exc:
            if exc.timed_out:
                return f"no answer to its health probe within {self.policy.timeout:g} s"
            return f"health probe failed: {exc}"
        if status != 200:
            return f"health probe answered HTTP {status}"
        return None

    def _verdict(self, service: Service, problem: str | None) -> None:
        try:
            self._on_verdict(service, problem)
        except Exception:  # the probes must go on whatever a verdict's handler does
            log.exception("recording the health of %s failed", service.id)
