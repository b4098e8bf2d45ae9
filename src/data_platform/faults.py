"""Crash points for the fault-injection tests, and nothing else.

``DP_TEST_CRASH_AT=<point>`` makes the Data Platform kill itself with SIGKILL when it reaches
that point, so a test can prove what a restart finds after a crash at each step of a task's
end. Unset (always, outside those tests) it costs one dictionary lookup.
"""

from __future__ import annotations

import logging
import os
import signal

CRASH_ENV = "DP_TEST_CRASH_AT"
POINTS = ("end:before-marker", "end:after-marker", "end:after-record")

log = logging.getLogger(__name__)


def crash_point(name: str) -> None:
    if os.environ.get(CRASH_ENV) == name:
        log.critical("%s=%s: killing the Data Platform here", CRASH_ENV, name)
        os.kill(os.getpid(), signal.SIGKILL)
