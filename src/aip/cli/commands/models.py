"""``aip models``: list, show, rm."""

from __future__ import annotations

import json
from typing import Any

from aip.cli.context import Context
from aip.cli.exits import EXIT_OK
from aip.cli.output import history_table, size
from aip.records import Model


def _accuracy(m: Model) -> Any:
    return m.metrics.get("test_accuracy", m.metrics.get("accuracy"))


def cmd_models_ls(ctx: Context) -> int:
    models = ctx.client.models.list()
    if ctx.out.json_mode:
        ctx.out.json([m.raw for m in models])
        return EXIT_OK
    rows = [
        (
            m.id,
            m.version,
            (m.architecture or "-").split(":")[0],
            _accuracy(m),
            size(m.weights_bytes),
            (m.source or {}).get("name"),
            m.created_at,
        )
        for m in sorted(models, key=lambda m: m.id)
    ]
    columns = ("ID", "VERSION", "ARCHITECTURE", "ACCURACY", "WEIGHTS", "DATASET", "CREATED")
    ctx.out.table(columns, rows)
    if not rows:
        ctx.out.note("no models yet: `aip train ...` makes one")
    return EXIT_OK


def cmd_models_show(ctx: Context) -> int:
    m = ctx.client.models.get(ctx.args.id)
    if ctx.out.json_mode:
        ctx.out.json(m.raw)
        return EXIT_OK
    source = m.source or {}
    trained_on = f"{source.get('name')} v{source.get('version')}" if source else None
    ctx.out.fields(
        [
            ("id", m.id),
            ("path", m.path),
            ("version", m.version),
            ("architecture", m.architecture),
            ("weights", size(m.weights_bytes)),
            ("size", size(m.size_bytes)),
            ("created", m.created_at),
            ("dataset", trained_on),
            ("aliases", ", ".join(f"{t}={v}" for t, v in sorted(m.tags.items())) or None),
            ("task", m.provenance.get("task_id")),
            ("script", m.provenance.get("script")),
            ("script sha256", m.provenance.get("script_sha256")),
            ("input", m.input_spec),
        ]
    )
    if m.metrics:
        ctx.out.table(("METRIC", "VALUE"), m.metrics.items(), title="metrics")
    if m.params:
        # As JSON: values to copy into --param, not numbers to read (no "2,000").
        params = [(k, json.dumps(v)) for k, v in m.params.items()]
        ctx.out.table(("PARAM", "VALUE"), params, title="params")
    history_table(ctx.out, m.history, "history")
    return EXIT_OK


def cmd_models_rm(ctx: Context) -> int:
    ctx.client.models.delete(ctx.args.id, force=ctx.args.force)
    return ctx.deleted("model", ctx.args.id)
