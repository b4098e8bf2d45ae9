"""``aip serve``, ``aip services`` and ``aip predict``."""

from __future__ import annotations

from typing import Any

from rich.text import Text

from aip.cli.context import Context, UsageError
from aip.cli.exits import EXIT_OK
from aip.cli.output import status
from aip.records import Service


def _service_fields(s: Service) -> list[tuple[str, Any]]:
    return [
        ("id", s.id),
        ("name", s.name),
        ("model", f"{s.model} v{s.model_version}" if s.model_version is not None else s.model),
        ("status", status(s.status)),
        ("endpoint", s.endpoint),
        ("device", s.device),
        ("created", s.created_at),
        ("started", s.started_at),
        ("error", Text(s.error, style="red") if s.error else None),
    ]


def cmd_serve(ctx: Context) -> int:
    args = ctx.args
    ctx.out.note(f"starting {args.name} with model {args.model} (waits for the model to load)")
    handle = ctx.client.services.create(args.name, args.model, device=args.device, port=args.port)
    if ctx.out.json_mode:
        ctx.out.json(handle.record.raw)
        return EXIT_OK
    ctx.out.fields(_service_fields(handle.record))
    ctx.out.note(f"aip predict {handle.name} IMAGE...")
    return EXIT_OK


def cmd_services_ls(ctx: Context) -> int:
    services = ctx.client.services.list()
    if ctx.out.json_mode:
        ctx.out.json([s.raw for s in services])
        return EXIT_OK
    rows = [
        (s.id, s.name, s.model, s.model_version, status(s.status), s.endpoint, s.device)
        for s in services
    ]
    ctx.out.table(("ID", "NAME", "MODEL", "VERSION", "STATUS", "ENDPOINT", "DEVICE"), rows)
    return EXIT_OK


def cmd_services_show(ctx: Context) -> int:
    s = ctx.client.services.get(ctx.args.service).record
    if ctx.out.json_mode:
        ctx.out.json(s.raw)
        return EXIT_OK
    ctx.out.fields(_service_fields(s))
    return EXIT_OK


def cmd_services_rm(ctx: Context) -> int:
    handle = ctx.client.services.get(ctx.args.service)
    handle.delete()
    return ctx.deleted("service", handle.id)


def cmd_services_logs(ctx: Context) -> int:
    handle = ctx.client.services.get(ctx.args.service)
    return ctx.logs(handle.id, handle.logs(tail_bytes=ctx.args.tail_bytes))


def cmd_predict(ctx: Context) -> int:
    images: list[bytes] = []
    for path in ctx.args.images:
        try:
            with open(path, "rb") as fh:
                images.append(fh.read())
        except OSError as exc:
            raise UsageError(f"cannot read image {path}: {exc.strerror or exc}") from None
    handle = ctx.client.services.get(ctx.args.service)
    predictions = handle.predict_batch(images)
    pairs = list(zip(ctx.args.images, predictions, strict=True))
    if ctx.out.json_mode:
        ctx.out.json([{"image": path, **p.raw} for path, p in pairs])
        return EXIT_OK
    rows = [(path, p.prediction, f"{p.confidence:.3f}") for path, p in pairs]
    ctx.out.table(("IMAGE", "DIGIT", "CONFIDENCE"), rows)
    return EXIT_OK
