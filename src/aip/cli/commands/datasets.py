"""``aip datasets``: list, show, versions, rm."""

from __future__ import annotations

from typing import Any

from aip.cli.context import Context
from aip.cli.exits import EXIT_OK
from aip.cli.output import size
from aip.records import Dataset


def cmd_datasets_ls(ctx: Context) -> int:
    datasets = ctx.client.datasets.list()
    if ctx.out.json_mode:
        ctx.out.json([d.raw for d in datasets])
        return EXIT_OK
    rows = [
        (d.id, d.num_rows, size(d.size_bytes), d.version, d.updated_at or d.created_at)
        for d in sorted(datasets, key=lambda d: d.id)
    ]
    ctx.out.table(("ID", "ROWS", "SIZE", "VERSION", "UPDATED"), rows)
    if not rows:
        ctx.out.note("no datasets yet: `aip ingest ...` makes one")
    return EXIT_OK


def _dataset_fields(d: Dataset) -> list[tuple[str, Any]]:
    return [
        ("id", d.id),
        ("path", d.path),
        ("rows", d.num_rows),
        ("size", size(d.size_bytes)),
        ("version", d.version),
        ("created", d.created_at),
        ("updated", d.updated_at),
    ]


def cmd_datasets_show(ctx: Context) -> int:
    d = ctx.client.datasets.get(ctx.args.id)
    if ctx.out.json_mode:
        ctx.out.json(d.raw)
        return EXIT_OK
    ctx.out.fields(_dataset_fields(d))
    ctx.out.table(("COLUMN", "TYPE"), d.schema_.items(), title="schema")
    if d.metadata:
        ctx.out.table(("KEY", "VALUE"), d.metadata.items(), title="metadata")
    return EXIT_OK


def cmd_datasets_versions(ctx: Context) -> int:
    versions = ctx.client.datasets.versions(ctx.args.id)
    if ctx.out.json_mode:
        ctx.out.json([v.raw for v in versions])
        return EXIT_OK
    rows = [(v.version, v.num_rows, ",".join(v.tags) or "-", v.timestamp) for v in versions]
    ctx.out.table(("VERSION", "ROWS", "TAGS", "TIMESTAMP"), rows)
    return EXIT_OK


def cmd_datasets_rm(ctx: Context) -> int:
    ctx.client.datasets.delete(ctx.args.id, force=ctx.args.force)
    return ctx.deleted("dataset", ctx.args.id)
