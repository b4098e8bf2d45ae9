"""Level 2 (Ray): the trivial task and single-image predict with ``DP_RUNTIME=ray`` and
``AIP_RUNTIME=ray`` (tasks as Ray tasks, services as Ray Serve applications), measured the
same way as Level 1's rows and beside the same baselines.

Runs after Level 1's platform has stopped, on the same lake (the model trained there is
served here through Ray Serve); the launcher starts a private local Ray and stops it after.
No targets: these rows are for comparison with Level 1.
"""

from __future__ import annotations

import importlib.util
import json
from typing import Any

from bench import overhead, serving
from bench.context import AreaResult, Context


def unavailable() -> str | None:
    """Why Level 2 cannot run here, or None if it can."""
    for module in ("ray", "data_platform.ray_executor", "ai_platform.serving.ray_backend"):
        try:
            if importlib.util.find_spec(module) is None:
                return f"{module} is not installed"
        except ImportError as exc:
            return f"{module}: {exc}"
    return None


def run(ctx: Context) -> AreaResult:
    details: dict[str, Any] = {}
    with ctx.lab.platform("ray") as platform:
        ctx.platform = platform
        try:
            noop = overhead.measure(ctx, platform, full=5)
            details["overhead"] = noop
            rows = overhead.rows("level2", noop, None)
            model = serving.ensure_model(ctx)
            service = platform.create_service("bench-svc-ray", model)
            bare = serving.BareServer(ctx.lab.model_path(model), ctx.lab.logs / "bare_l2.log")
            try:
                bare.wait_ready()
                urls = {
                    "service": f"{service['endpoint']}/predict",
                    "platform": platform.predict_url(service["id"]),
                    "bare": f"{bare.url}/predict",
                }
                digits = serving.test_digits(200)
                serving.check_same_answers(urls, serving.b64(digits[0]))
                bodies = [json.dumps({"image": serving.b64(p)}).encode() for p in digits]
                single, rounds = serving.measure_single(ctx, urls, bodies, full=2, budget_s=60)
                details["rounds"] = rounds
            finally:
                bare.stop()
                platform.delete_service(service["id"])
        finally:
            ctx.platform = None
    details["single"] = single
    notes = []
    if platform.leftovers:
        details["leftover_processes"] = platform.leftovers
        notes.append(
            f"Level 2: {len(platform.leftovers)} process(es) of the launcher's Ray outlived "
            f"Platform.stop() and were killed by the bench: {', '.join(platform.leftovers)}."
        )
    labels = {"service": "Ray Serve endpoint", "platform": "platform route (Ray Serve)"}
    serving_rows = serving.single_rows("level2", single, {"service": None, "platform": None})
    for row in serving_rows:
        for key, text in labels.items():
            row.name = row.name.replace(serving.LABELS[key], text)
        row.target = None
        row.status = "INFO"
    method = (
        "the Level 1 measurements repeated with DP_RUNTIME=ray AIP_RUNTIME=ray (a private "
        "local Ray started by the launcher): trivial task as in 'overhead', single-image "
        "predict as in 'serving' against the same bare FastAPI app; no targets."
    )
    return AreaResult(rows + serving_rows, details, method, notes)
