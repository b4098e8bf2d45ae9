"""Dependencies the routers take: the manager and the lake, from the app's state.

Async, so that resolving them never takes a pool thread (an async route stays thread-free).
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from data_platform.manager import TaskManager
from data_platform.store import Lake


async def _manager(request: Request) -> TaskManager:
    return request.app.state.manager


async def _lake(request: Request) -> Lake:
    return request.app.state.lake


Manager = Annotated[TaskManager, Depends(_manager)]
LakeDep = Annotated[Lake, Depends(_lake)]
