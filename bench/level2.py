"""Level 2 (Ray): the trivial task and single-image predict with ``DP_RUNTIME=ray`` and
``AIP_RUNTIME=ray`` (tasks as Ray tasks, services as Ray Serve applications), measured the
same way as Level 1's rows and beside the same baselines; then 2 replicas against 1 at
c = 32, and Level 1's OIP and tabular rows (``bench.oip``, ``bench.tabular``) repeated on Ray
Serve.

Runs after Level 1's platform has stopped, on the same lake (the model trained there is
served here through Ray Serve); the launcher starts a private local Ray and stops it after.
Target: the Ray Serve endpoint at >= 0.5x the bare app (issue 14); the platform route's rows
are for comparison with Level 1.

The launcher's Ray has Serve's direct ingress (``serverkit.ray_runtime.DIRECT_INGRESS_ENV``):
the service's endpoint, what a user of it calls, is its replica's own port, and the platform
route forwards there.

2 replicas: the platform gives every service ``AIP_RAY_REPLICAS`` replicas, one number for
the whole AI Platform, so a second platform would be needed for a second count. Instead the
bench joins the launcher's Ray as a driver and deploys the same model with 2 replicas through
``RayServeBackend`` (the code the AI Platform runs) beside the platform's 1-replica service;
both are measured back to back through Serve's proxy, the one URL that spreads requests over
a service's replicas without the AI Platform (whose route does the same over their own
ports). Level 3's bench has the same row on
the S3 model; neither has a second node here, so the row shows what a second replica buys on
one 2-core machine.
"""

from __future__ import annotations

import importlib.util
import json
from typing import Any

from bench import oip, overhead, serving, tabular
from bench.context import AreaResult, Context
from bench.lab import RunningPlatform
from bench.level3 import SERVE_VS_BARE, replicas_row, wait_health
from bench.loadgen import run_load
from bench.report import Row, Target
from bench.stats import rotate

AREA = "level2"


def unavailable() -> str | None:
    """Why Level 2 cannot run here, or None if it can."""
    for module in ("ray", "data_platform.ray_executor", "ai_platform.serving.ray_backend"):
        try:
            if importlib.util.find_spec(module) is None:
                return f"{module} is not installed"
        except ImportError as exc:
            return f"{module}: {exc}"
    return None


def _two_replicas(ctx: Context, platform: RunningPlatform, model: str, one: str) -> Any:
    """The model with 2 replicas on the launcher's Ray and Serve; c = 32 runs against the
    platform's 1-replica service ``one`` (its id), both through Serve's proxy, rotated as
    every other target."""
    from serverkit.ray_runtime import use_loopback

    use_loopback()  # as the AI Platform does, before ray is imported
    from ai_platform.serving.ray_backend import RayServeBackend
    from ai_platform.settings import AIPlatformSettings
    from lakeapi.schemas import Service

    head = platform.platform.ray
    if head is None:
        raise RuntimeError("the launcher started no Ray")
    settings = AIPlatformSettings(
        _env_file=None,  # not the cwd .env file
        runtime="ray",
        ray_address=head.address,
        ray_auth_token_path=str(head.token_path),
        state_dir=str(ctx.lab.root / "level2-replicas"),
    )
    backend = RayServeBackend(settings, replicas=2)
    try:
        _, endpoint = backend.place("bench-2r", None, set())
        path = str(ctx.lab.model_path(model))
        service = Service(
            id="bench-2r",
            name=model,
            model=model,
            model_path=path,
            port=backend.port,
            endpoint=endpoint,
        )
        backend.start(service, ctx.lab.logs / "bench-2r.log")
        wait_health(endpoint)
        digits = serving.test_digits(200)
        # place() names the app's route on Serve's proxy, for either app.
        urls = {"1r": f"{backend.base_url}/{one}/predict", "2r": f"{endpoint}/predict"}
        serving.check_same_answers(urls, serving.b64(digits[0]))
        bodies = [json.dumps({"image": serving.b64(p)}).encode() for p in digits]
        quick = ctx.settings.quick
        top = max(serving.CONCURRENCY)
        total = (serving.QUICK_REQUESTS if quick else serving.FULL_REQUESTS)[top]
        runs: serving.Single = {name: {top: []} for name in urls}

        def round_(i: int) -> None:  # serving.measure_single's round, at c = top only
            for name in rotate(list(urls), i):
                result = run_load(urls[name], bodies, top, total, serving.max_seconds(quick))
                runs[name][top].append(result.json())

        return runs, ctx.settings.rounds(round_, full=3, least=2, budget_s=60)
    finally:
        backend.close()  # deletes its app, leaves the launcher's Ray and Serve


def _on_ray(result: AreaResult, targets: dict[str, Target | None]) -> list[Row]:
    """Level 1's rows of another area, measured here on Ray Serve: renamed, and re-judged
    by ``targets`` (the first key found in a row's name wins; none: the area's own)."""
    rows = []
    for row in result.rows:
        for key, target in targets.items():
            if key in row.name:
                row.target, row.status = target, ""
                break
        row.__post_init__()
        row.area, row.name = AREA, f"Ray Serve, {row.name}"
        rows.append(row)
    return rows


def run(ctx: Context) -> AreaResult:
    details: dict[str, Any] = {}
    with ctx.lab.platform("ray") as platform:
        ctx.platform = platform
        try:
            noop = overhead.measure(ctx, platform, full=5)
            details["overhead"] = noop
            rows = overhead.rows(AREA, noop, None)
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
            try:
                replicas, rounds = _two_replicas(ctx, platform, model, service["id"])
                details["replicas"] = {"runs": replicas, "rounds": rounds}
            finally:
                platform.delete_service(service["id"])
            on_ray = {
                "oip": oip.run(ctx),
                "tabular": tabular.run(ctx),
            }
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
    serving_rows = serving.single_rows(AREA, single, {"service": SERVE_VS_BARE, "platform": None})
    for row in serving_rows:
        for key, text in labels.items():
            row.name = row.name.replace(serving.LABELS[key], text)
        if "latency" in row.name or labels["platform"] in row.name:
            row.target, row.status = None, "INFO"
    note = "both replicas on this machine's one Ray node (2 cores), through Serve's proxy"
    rows += [*serving_rows, replicas_row(AREA, replicas["2r"], replicas["1r"], note)]
    # OIP binary against /predict is one server either way: Level 1's target holds. Against
    # the bare app, the Ray Serve endpoint's; the platform route's rows are for comparison.
    rows += _on_ray(on_ray["oip"], {"vs bare": SERVE_VS_BARE, "platform route": None})
    rows += _on_ray(on_ray["tabular"], {"service endpoint": SERVE_VS_BARE, "platform": None})
    for area, result in on_ray.items():
        details[area] = result.details
    method = (
        "the Level 1 measurements repeated with DP_RUNTIME=ray AIP_RUNTIME=ray (a private "
        "local Ray started by the launcher): trivial task as in 'overhead', single-image "
        "predict as in 'serving' against the same bare FastAPI app (the service endpoint: "
        "its replica's own port, Serve's direct ingress); 2 replicas: the same "
        "model deployed by the bench through RayServeBackend on the launcher's Ray with 2 "
        "replicas, against the platform's 1-replica service at c=32 (rotated), both through "
        "Serve's proxy; OIP and "
        "tabular rows as in 'oip' and 'tabular' (their code), on Ray Serve. "
        f"{on_ray['oip'].method} {on_ray['tabular'].method}"
    )
    return AreaResult(rows, details, method, notes)
