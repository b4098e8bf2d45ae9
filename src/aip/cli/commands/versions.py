"""``aip datasets|models versions|tags|tag|untag|restore``: the same for both kinds."""

from __future__ import annotations

from aip.cli.context import Context
from aip.cli.exits import EXIT_OK
from aip.versions import VersionedAPI


def _api(ctx: Context) -> VersionedAPI:
    return ctx.client.datasets if ctx.args.kind == "datasets" else ctx.client.models


def _version(value: str) -> int | str:
    return int(value) if value.isdigit() else value


def cmd_tags(ctx: Context) -> int:
    tags = _api(ctx).tags(ctx.args.id)
    if ctx.out.json_mode:
        ctx.out.json([t.raw for t in tags])
        return EXIT_OK
    ctx.out.table(("TAG", "VERSION", "UPDATED"), [(t.name, t.version, t.updated_at) for t in tags])
    return EXIT_OK


def cmd_tag(ctx: Context) -> int:
    args = ctx.args
    tag = _api(ctx).tag(args.id, args.tag, _version(args.version), move=not args.create)
    if ctx.out.json_mode:
        ctx.out.json(tag.raw)
        return EXIT_OK
    ctx.out.text(f"{args.id}@{tag.name} -> version {tag.version}")
    return EXIT_OK


def cmd_untag(ctx: Context) -> int:
    _api(ctx).untag(ctx.args.id, ctx.args.tag)
    if ctx.out.json_mode:
        ctx.out.json({"untagged": ctx.args.tag})
        return EXIT_OK
    ctx.out.text(f"untagged {ctx.args.id}@{ctx.args.tag}")
    return EXIT_OK


def cmd_restore(ctx: Context) -> int:
    restored = _api(ctx).restore(ctx.args.id, _version(ctx.args.version))
    if ctx.out.json_mode:
        ctx.out.json(restored.raw)
        return EXIT_OK
    ctx.out.text(
        f"{ctx.args.id}: version {restored.version} holds version {restored.restored_from}"
    )
    return EXIT_OK


def cmd_model_versions(ctx: Context) -> int:
    versions = ctx.client.models.versions(ctx.args.id)
    if ctx.out.json_mode:
        ctx.out.json([v.raw for v in versions])
        return EXIT_OK
    rows = [
        (
            v.version,
            ",".join(v.tags) or "-",
            v.source.get("name"),
            v.source.get("version"),
            v.provenance.get("task_id"),
            (v.provenance.get("script_sha256") or "")[:12] or None,
            v.created_at,
        )
        for v in versions
    ]
    columns = ("VERSION", "TAGS", "DATASET", "DATASET_V", "TASK", "SCRIPT_SHA256", "CREATED")
    ctx.out.table(columns, rows)
    return EXIT_OK
