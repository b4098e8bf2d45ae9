"""The model server: one process serving one model from the lake over HTTP.

``python -m ai_platform.serving.model_server --model-path P --host 127.0.0.1 --port N``

Any saved model: tensors in, tensors out, checked against its signature. Routes:

- the platform's (``protocol/rest/v1_endpoints``): ``GET /health``, ``GET /v1/model`` (the
  record's metadata and signature), ``GET /v1/stats``, ``POST /predict`` (images for image
  models; ``{"inputs": ...}`` for any model); errors ``{"error": {"code", "message"}}``;
- the Open Inference Protocol v2 (``protocol/rest/v2_endpoints``): ``/v2/health/live``,
  ``/v2/health/ready``, ``/v2/models/{name}[/versions/{v}][/ready|/infer]``, JSON and binary
  tensors; errors ``{"error": "..."}``;
- ``GET /metrics`` (Prometheus): requests and latency per route and status, rows per forward
  pass, rows queued, model load time.

Concurrent predictions on every route share forward passes (``batching.Batcher``).

``--api-key-file PATH``: every route but the liveness probes (``/health``, ``/v2/health/*``)
needs ``Authorization: Bearer <key>``; the platform that starts the server writes that file.
"""

from __future__ import annotations

import argparse
import logging
import os
import re
import sys
import threading
import time
from dataclasses import asdict
from importlib import metadata as package_metadata
from typing import Any

import torch
import uvicorn
from fastapi import FastAPI
from prometheus_client import Gauge, Histogram

from ai_platform.serving.batching import Batcher
from ai_platform.serving.predictor import Runner, Signature
from ai_platform.serving.protocol.dataplane import DataPlane, RequestLimits
from ai_platform.serving.protocol.rest.fast_path import HotRoutes
from ai_platform.serving.protocol.rest.v1_endpoints import MAX_BATCH, v1_router
from ai_platform.serving.protocol.rest.v2_endpoints import v2_router
from lakeapi.errors import PlatformError
from serverkit.http import Guard, install_error_handlers, trusted_hosts
from serverkit.metrics import install_metrics
from serverkit.procs import PARENT_ENV

log = logging.getLogger(__name__)

__all__ = ["MAX_BATCH", "MAX_BODY_BYTES", "create_model_app", "main"]

# The whole request body; far above a full batch of raw images (1024 * ~1.1 KB of base64).
MAX_BODY_BYTES = 64 * 1024 * 1024
_ROW_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 4096)
LIVENESS_PATHS = ("/health", "/v2/health/live", "/v2/health/ready")
OIP_PATHS = re.compile(r"/v2(?:/|$)")  # what the Guard answers in OIP's error shape


def _server_version() -> str:
    try:
        return package_metadata.version("lance-ai-platform")
    except package_metadata.PackageNotFoundError:
        return "0"


def _signature_json(signature: Signature) -> dict[str, Any]:
    return {
        "inputs": [asdict(s) | {"shape": list(s.shape)} for s in signature.inputs],
        "outputs": [asdict(s) | {"shape": list(s.shape)} for s in signature.outputs],
    }


def _install_model_metrics(app: FastAPI, runner: Runner, batcher: Batcher, name: str) -> None:
    metrics = install_metrics(app, namespace="model_server")
    registry = metrics.registry
    load = Gauge(
        "model_load_seconds",
        "Seconds to load the model and run its trial passes",
        ["model"],
        namespace="model_server",
        registry=registry,
    )
    load.labels(name).set(runner.load_seconds)
    queued = Gauge(
        "queue_rows", "Rows waiting for a forward pass", namespace="model_server", registry=registry
    )
    queued.set_function(lambda: batcher.queued)
    rows = Histogram(
        "batch_rows",
        "Rows (images, or batch rows of the inputs) per forward pass",
        namespace="model_server",
        registry=registry,
        buckets=_ROW_BUCKETS,
    )
    batcher.on_pass = rows.observe


def create_model_app(
    model_path: str,
    device: str = "cpu",
    max_body_bytes: int = MAX_BODY_BYTES,
    model_name: str | None = None,
    limits: RequestLimits | None = None,
    api_key: str | None = None,
    allowed_hosts: tuple[str, ...] | None = None,
) -> FastAPI:
    """The model server's app, with the model loaded (so a bad path fails here, at start).

    Args:
        model_path: the model record's Lance path.
        device: torch device, e.g. "cpu".
        max_body_bytes: larger request bodies are refused with 413 before they are read.
        model_name: the name OIP clients address the model by (default: the record's name).
        limits: what one request may ask (images or rows, pixels to decode); the defaults
            are ``RequestLimits()``'s.
        api_key: when set, every route but the liveness probes needs it.
        allowed_hosts: Host names requests may carry (None: any).

    Raises:
        ModelNotFound: nothing at ``model_path``.
        InvalidRequest: not a model record this server can serve.
    """
    runner = Runner(model_path, device=device)
    info = runner.info
    name = info.get("name") or os.path.basename(model_path)
    app = FastAPI(title=f"model server: {name}", version=str(info.get("version")))
    install_error_handlers(app)
    batcher = Batcher(runner.forward, max_images=MAX_BATCH)
    app.state.batcher = batcher
    app.router.on_shutdown.append(batcher.close)
    plane = DataPlane(runner, batcher, model_name or name, _server_version(), limits)
    app.state.dataplane = plane
    # Predictions skip the router (see fast_path); Guard, added after, still wraps them.
    app.add_middleware(HotRoutes, plane=plane)
    app.add_middleware(
        Guard,
        api_key=api_key,
        max_body_bytes=max_body_bytes,
        open_paths=LIVENESS_PATHS,
        allowed_hosts=allowed_hosts,
        binary_suffixes=("/infer",),  # the Open Inference Protocol's binary tensors
        oip_paths=OIP_PATHS,
    )
    metadata = {**info, "device": device, "signature": _signature_json(runner.signature)}
    app.include_router(v1_router(plane, name, metadata))
    app.include_router(v2_router(plane))
    _install_model_metrics(app, runner, batcher, plane.name)
    return app


def _exit_with_parent(parent: int) -> None:
    """Exit when the platform that started us is gone (we are re-parented).

    Polling rather than PR_SET_PDEATHSIG: that signal fires when the *thread* that spawned us
    ends, and the platform may spawn from a short-lived worker thread.
    """

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(1.0)
        log.warning("parent process %d is gone; exiting", parent)
        os._exit(0)

    threading.Thread(target=watch, name="parent-watch", daemon=True).start()


def main(argv: list[str] | None = None) -> None:
    """Parse arguments, load the model and serve it with uvicorn until stopped."""
    parser = argparse.ArgumentParser(description="Serve one model from the lake over HTTP.")
    parser.add_argument("--model-path", required=True, help="the model record's Lance path")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8080)
    parser.add_argument("--device", default="cpu", help='torch device, e.g. "cpu", "cuda"')
    parser.add_argument(
        "--model-name", default=None, help="the name OIP clients use (default: the record's)"
    )
    parser.add_argument(
        "--threads",
        type=int,
        default=1,
        help="torch threads per forward pass; requests already run in parallel threads",
    )
    defaults = RequestLimits()
    parser.add_argument(
        "--max-request-images",
        type=int,
        default=defaults.max_rows,
        help="images (or batch rows of the inputs) one request may send; more is 400",
    )
    parser.add_argument(
        "--max-request-pixels",
        type=int,
        default=defaults.max_pixels,
        help="pixels of all of one request's images together, read from their headers "
        "before decoding; more is 413",
    )
    parser.add_argument(
        "--api-key-file",
        default=None,
        help="a file holding the key every request but /health needs",
    )
    parser.add_argument("--log-level", default="info")
    parser.add_argument("--access-log", action="store_true", help="log every request")
    args = parser.parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(name)s %(message)s")
    parent = os.environ.get(PARENT_ENV)
    if parent and parent.isdigit():
        if os.getppid() != int(parent):
            sys.exit("the process that started this model server is gone")
        _exit_with_parent(int(parent))
    torch.set_num_threads(max(1, args.threads))
    api_key = None
    if args.api_key_file:
        with open(args.api_key_file, encoding="utf-8") as fh:
            api_key = fh.read().strip() or None
    try:
        limits = RequestLimits(args.max_request_images, args.max_request_pixels)
        app = create_model_app(
            args.model_path,
            device=args.device,
            model_name=args.model_name,
            limits=limits,
            api_key=api_key,
            allowed_hosts=trusted_hosts(args.host),
        )
    except PlatformError as exc:
        # A clear one-line reason in the service's log, not a traceback.
        sys.exit(f"cannot serve {args.model_path}: {exc.code}: {exc.message}")
    log.info("serving %s on http://%s:%d", args.model_path, args.host, args.port)
    uvicorn.run(
        app,
        host=args.host,
        port=args.port,
        log_level=args.log_level,
        access_log=args.access_log,
        proxy_headers=False,  # see serverkit.http.serve
    )


if __name__ == "__main__":
    main()
