"""The ``aip`` argument tree: every command, its flags and help, and the exit codes' table."""

from __future__ import annotations

import argparse
from typing import Any

from aip.cli.commands.datasets import (
    cmd_datasets_ls,
    cmd_datasets_rm,
    cmd_datasets_show,
    cmd_datasets_versions,
)
from aip.cli.commands.lakeops import (
    cmd_batch_infer,
    cmd_datasets_index,
    cmd_models_lineage,
    cmd_models_reproduce,
    cmd_search,
)
from aip.cli.commands.models import cmd_models_ls, cmd_models_rm, cmd_models_show
from aip.cli.commands.services import (
    cmd_predict,
    cmd_serve,
    cmd_services_logs,
    cmd_services_ls,
    cmd_services_rm,
    cmd_services_show,
)
from aip.cli.commands.tasks import (
    cmd_ingest,
    cmd_tasks_cancel,
    cmd_tasks_logs,
    cmd_tasks_ls,
    cmd_tasks_show,
    cmd_tasks_wait,
    cmd_train,
)
from aip.cli.commands.up import cmd_up
from aip.cli.commands.versions import (
    cmd_model_versions,
    cmd_restore,
    cmd_tag,
    cmd_tags,
    cmd_untag,
)
from aip.cli.context import Command

NAME_RULE = "1-64 letters, digits, '_' or '-', starting with a letter or digit"

EPILOG = f"""\
exit codes:
  0    ok
  1    a task failed or was cancelled (--wait/--follow), or the server failed
  2    usage error: bad arguments, or a request the server refused as invalid or unauthorized
  3    not found: dataset, model, task or service
  4    conflict: a task with this name is running, the task already ended (tasks cancel),
       a service name or port is taken
  5    the platform is unreachable
  6    timed out waiting (--timeout); the task keeps running
  130  interrupted (Ctrl-C); a task being waited on keeps running
  141  the output was closed early (| head); a task being waited on keeps running

names of tasks, datasets, models and services:
  {NAME_RULE}
sizes are decimal: 1 kB = 1,000 bytes, 1 MB = 1,000,000 bytes, 1 GB = 10^9 bytes

environment:
  AIP_URL      the platform's URL (default http://127.0.0.1:8000); --url overrides it
  AIP_API_KEY  API key sent as 'Authorization: Bearer KEY'; --api-key overrides it

examples:
  aip up
  aip ingest --name mnist --input raw/mnist --script pipelines/mnist_clean.py \\
      --output mnist --param limit=2000 --wait
  aip train --name cnn --input mnist --script training/mnist_cnn.py --output mnist_cnn \\
      --param epochs=1 --follow
  aip serve --name digits --model mnist_cnn
  aip predict digits seven.png two.jpg
  aip --json tasks ls --status failed
"""


def _global_options(parser: argparse.ArgumentParser, suppress: bool) -> None:
    # On the top parser with real defaults; on every subcommand with SUPPRESS, so that
    # `aip --json tasks ls` and `aip tasks ls --json` both work and neither resets the other.
    default: Any = argparse.SUPPRESS if suppress else None
    parser.add_argument(
        "--url", default=default, help="platform URL (env AIP_URL, default http://127.0.0.1:8000)"
    )
    parser.add_argument("--api-key", default=default, help="API key (env AIP_API_KEY)")
    parser.add_argument(
        "--json",
        action="store_true",
        default=argparse.SUPPRESS if suppress else False,
        help="machine-readable JSON on stdout (errors as JSON on stderr)",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="aip",
        description="The AI Platform from a shell: datasets, models, ingestion and training "
        "tasks, inference services.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _global_options(parser, suppress=False)
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    def command(
        group: Any, name: str, func: Command, help: str, **kwargs: Any
    ) -> argparse.ArgumentParser:
        sub = group.add_parser(name, help=help, description=help, **kwargs)
        _global_options(sub, suppress=True)
        sub.set_defaults(func=func)
        return sub

    def group(name: str, help: str) -> Any:
        sub = commands.add_parser(name, help=help, description=help)
        _global_options(sub, suppress=True)
        return sub.add_subparsers(dest="action", metavar="ACTION", required=True)

    command(
        commands,
        "up",
        cmd_up,
        "start the Data Platform and the AI Platform in the foreground (Ctrl-C stops both, "
        "exit 0); settings from the DP_* and AIP_* environment variables",
    )

    datasets = group("datasets", "datasets in the lake")
    command(datasets, "ls", cmd_datasets_ls, "list datasets")
    command(datasets, "show", cmd_datasets_show, "one dataset and its schema").add_argument("id")
    command(datasets, "versions", cmd_datasets_versions, "a dataset's Lance versions").add_argument(
        "id"
    )
    rm = command(datasets, "rm", cmd_datasets_rm, "delete a dataset and all its versions")
    rm.add_argument("id")
    rm.add_argument("--force", action="store_true", help="even if a model was trained on it")
    _tag_commands(command, datasets, "datasets")

    models = group("models", "trained models in the lake")
    command(models, "ls", cmd_models_ls, "list models")
    command(models, "show", cmd_models_show, "one model: metrics, params, history").add_argument(
        "id"
    )
    command(
        models, "versions", cmd_model_versions, "a model's versions and where each came from"
    ).add_argument("id")
    rm = command(models, "rm", cmd_models_rm, "delete a model and all its versions")
    rm.add_argument("id")
    rm.add_argument("--force", action="store_true", help="even if a service runs it")
    _tag_commands(command, models, "models")
    _lakeops(commands, datasets, models, command)

    for name, func, what, input_help, output_help in (
        (
            "ingest",
            cmd_ingest,
            "an ingestion task",
            "raw data path under the data root",
            "dataset name",
        ),
        (
            "train",
            cmd_train,
            "a training task",
            "dataset name; NAME@12 or NAME@tag for an exact version",
            "model name",
        ),
    ):
        sub = command(commands, name, func, f"submit {what}")
        sub.add_argument(
            "--name", required=True, help=f"task name ({NAME_RULE}); one active task per name"
        )
        sub.add_argument("--input", required=True, help=input_help)
        sub.add_argument("--script", required=True, help="script path under the scripts root")
        sub.add_argument("--output", required=True, help=output_help)
        sub.add_argument(
            "--mode",
            choices=("create", "overwrite", "append"),
            help="create (refused if the output exists), overwrite (default: a new version) "
            "or append (datasets)",
        )
        _task_params(sub)
        _wait_options(sub)

    tasks = group("tasks", "ingestion and training tasks")
    ls = command(tasks, "ls", cmd_tasks_ls, "list tasks, newest first")
    ls.add_argument("--kind", choices=("ingestion", "training"))
    ls.add_argument("--status", choices=("pending", "running", "completed", "failed"))
    command(
        tasks, "show", cmd_tasks_show, "one task: status, progress, error, result"
    ).add_argument("id")
    command(
        tasks, "cancel", cmd_tasks_cancel, "cancel a task (exit 4 if it had already ended)"
    ).add_argument("id")
    logs = command(tasks, "logs", cmd_tasks_logs, "a task's log")
    logs.add_argument("id")
    logs.add_argument("--tail", type=_non_negative_int, metavar="N", help="only the last N lines")
    logs.add_argument(
        "--follow",
        "-f",
        action="store_true",
        help="stream until the task ends, with its progress (a live line on a terminal, "
        "else on stderr)",
    )
    wait = command(tasks, "wait", cmd_tasks_wait, "wait for a task to end, showing its progress")
    wait.add_argument("id")
    wait.add_argument("--timeout", type=float, metavar="S", help="give up after S seconds (exit 6)")
    wait.add_argument("--follow", "-f", action="store_true", help="also stream its log")

    serve = command(commands, "serve", cmd_serve, "start an inference service for a model")
    serve.add_argument("--name", required=True, help=f"service name ({NAME_RULE})")
    serve.add_argument(
        "--model",
        required=True,
        help="model name in the lake; NAME@3 for a version, NAME@alias to follow an alias",
    )
    serve.add_argument("--port", type=int, help="model server port (default: a free one)")
    serve.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N (default cpu)")

    services = group("services", "inference services")
    command(services, "ls", cmd_services_ls, "list services")
    command(services, "show", cmd_services_show, "one service (by id or name)").add_argument(
        "service"
    )
    command(services, "rm", cmd_services_rm, "stop a service (by id or name)").add_argument(
        "service"
    )
    slogs = command(services, "logs", cmd_services_logs, "a service's model-server log")
    slogs.add_argument("service")
    slogs.add_argument("--tail-bytes", type=_non_negative_int, metavar="N")

    predict = command(commands, "predict", cmd_predict, "classify images with a service")
    predict.add_argument("service", help="service id or name")
    predict.add_argument("images", nargs="+", metavar="IMAGE", help="PNG/JPEG files (any size)")
    return parser


def _tag_commands(command: Any, group: Any, kind: str) -> None:
    what = kind[:-1]
    tags = command(group, "tags", cmd_tags, f"a {what}'s tags")
    tags.add_argument("id")
    tag = command(group, "tag", cmd_tag, f"put a tag on a {what} version (moves it if it exists)")
    tag.add_argument("id")
    tag.add_argument("tag")
    tag.add_argument("version", help="a version number, or another tag")
    tag.add_argument("--create", action="store_true", help="refuse if the tag exists")
    untag = command(group, "untag", cmd_untag, "remove a tag (the version stays)")
    untag.add_argument("id")
    untag.add_argument("tag")
    restore = command(
        group, "restore", cmd_restore, "make an earlier version the latest (a new version)"
    )
    restore.add_argument("id")
    restore.add_argument("version", help="a version number or a tag")
    for sub in (tags, tag, untag, restore):
        sub.set_defaults(kind=kind)


def _lakeops(commands: Any, datasets: Any, models: Any, command: Any) -> None:
    """Batch inference, search, indexes, lineage and reproduce."""
    command(
        models, "lineage", cmd_models_lineage, "model -> training -> dataset -> raw"
    ).add_argument("id")
    rep = command(models, "reproduce", cmd_models_reproduce, "retrain from the exact inputs")
    rep.add_argument("id")
    rep.add_argument("--use-current-script", action="store_true", help="even if it changed")
    rep.add_argument("--wait", action="store_true", help="wait and compare both metrics")
    rep.add_argument("--timeout", type=float, metavar="S", help="with --wait: give up after S s")
    index = command(datasets, "index", cmd_datasets_index, "build a vector index on a column")
    index.add_argument("id")
    index.add_argument("--column", default="embedding")
    index.add_argument("--type", default="IVF_FLAT", choices=("IVF_FLAT", "IVF_PQ", "IVF_HNSW_SQ"))
    index.add_argument("--partitions", type=int, metavar="N")

    batch = command(
        commands, "batch-infer", cmd_batch_infer, "add a model's outputs to a dataset as columns"
    )
    batch.add_argument("--model", required=True, help="model name")
    batch.add_argument("--dataset", required=True, help="dataset that gets the columns")
    batch.add_argument("--model-version", type=int, metavar="V")
    batch.add_argument("--filter", help="SQL; other rows get nulls")
    batch.add_argument("--layer", help="embedding layer (default: the penultimate)")
    batch.add_argument("--input-column", default="image")
    batch.add_argument("--prefix", default="", help="prefix of the new columns")
    batch.add_argument("--batch-size", type=int, default=1024)
    batch.add_argument("--name", help="task name (default: the dataset's)")
    batch.add_argument("--retries", type=_non_negative_int, default=0)
    batch.add_argument("--wait", action="store_true", help="wait for the end, with progress")
    batch.add_argument("--timeout", type=float, metavar="S", help="with --wait: give up after S s")

    search = command(commands, "search", cmd_search, "nearest rows of a dataset")
    search.add_argument("dataset")
    search.add_argument("--image", metavar="FILE", help="a PNG/JPEG the --model embeds")
    search.add_argument("--model", help="the model that embeds --image")
    search.add_argument("--vector", metavar="JSON", help="a JSON list of numbers")
    search.add_argument("--row-id", type=int, metavar="ID", help="a row's own vector")
    search.add_argument("-k", type=int, default=10)
    search.add_argument("--filter", help="SQL filter on the rows")
    search.add_argument("--columns", help="comma-separated columns to show")
    search.add_argument("--column", default="embedding", help="the vector column")


def _task_params(sub: argparse.ArgumentParser) -> None:
    sub.add_argument(
        "--param",
        action="append",
        metavar="K=V",
        help="a script parameter; V is read as JSON if it parses (2, true, [1,2]), else a "
        "string; repeatable",
    )
    sub.add_argument("--params-json", metavar="JSON", help="all parameters as a JSON object")


def _wait_options(sub: argparse.ArgumentParser) -> None:
    sub.add_argument("--wait", action="store_true", help="wait for the end, with a progress bar")
    sub.add_argument("--follow", "-f", action="store_true", help="like --wait, and stream the log")
    sub.add_argument(
        "--timeout",
        type=float,
        metavar="S",
        help="with --wait/--follow: give up after S s (exit 6)",
    )


def _non_negative_int(value: str) -> int:
    number = int(value)
    if number < 0:
        raise argparse.ArgumentTypeError(f"{value} is negative")
    return number
