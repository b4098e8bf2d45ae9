"""Writes ``params.rows`` rows to the output, then fills the disk the output is on (a file
``params.filler`` grown until the write fails), so the platform's own commits at the task's
end meet a full disk."""

import os

import lance
import pyarrow as pa


def run(input_path, output_path, params):
    rows = int(params.get("rows", 3))
    table = pa.table({"x": list(range(rows)), "tag": [params.get("tag", "new")] * rows})
    mode = "overwrite" if os.path.isdir(os.path.join(output_path, "_versions")) else "create"
    lance.write_dataset(table, output_path, mode=mode)
    chunk = b"\0" * 65536
    try:
        with open(params["filler"], "wb") as fh:
            while True:
                fh.write(chunk)
                fh.flush()
    except OSError:
        pass
    return {"rows": rows}
