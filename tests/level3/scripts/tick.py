"""Writes ``rows`` rows to the output on the lake (with the storage options the platform hands
over), writes its PID to ``pid_file``, then prints and reports a tick every 0.2 s for
``seconds`` (forever when unset) and returns."""

import os
import time

import lance
import pyarrow as pa

from lakekit.datasets import storage_options
from lakekit.progress import report


def run(input_path, output_path, params):
    rows = int(params.get("rows", 3))
    table = pa.table({"x": list(range(rows))})
    lance.write_dataset(table, output_path, mode="create", storage_options=storage_options())
    with open(params["pid_file"], "w") as fh:
        fh.write(str(os.getpid()))
    seconds = params.get("seconds")
    started, tick = time.monotonic(), 0
    while seconds is None or time.monotonic() - started < float(seconds):
        tick += 1
        print(f"tick {tick}", flush=True)
        report(tick=tick)
        time.sleep(0.2)
    print("done ticking", flush=True)
    return {"ticks": tick}
