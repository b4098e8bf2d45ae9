"""Fills the disk the output is on (a file ``params.filler`` grown until a write fails) and
writes ``params.rows`` rows to the output, in the order ``params.order`` says:
"write-fill" (default: the platform's own commits at the task's end meet a full disk) or
"fill-write" (the task's own write meets it)."""

import os

import lance
import pyarrow as pa


def fill(path):
    chunk = b"\0" * 65536
    try:
        with open(path, "wb") as fh:
            while True:
                fh.write(chunk)
                fh.flush()
    except OSError:
        pass


def write(output_path, params):
    rows = int(params.get("rows", 3))
    table = pa.table({"x": list(range(rows)), "tag": [params.get("tag", "new")] * rows})
    mode = "overwrite" if os.path.isdir(os.path.join(output_path, "_versions")) else "create"
    lance.write_dataset(table, output_path, mode=mode)
    return rows


def run(input_path, output_path, params):
    if params.get("order", "write-fill") == "fill-write":
        fill(params["filler"])
        return {"rows": write(output_path, params)}
    rows = write(output_path, params)
    fill(params["filler"])
    return {"rows": rows}
