"""A writer process for the concurrent-commit test: ``N`` commits to one table on S3.

``python -m tests.level3.writer URI append|merge WHO N GO_FILE``, the storage options as JSON in
``LEVEL3_STORAGE_OPTIONS``. Once imported it creates ``ready-WHO`` beside ``GO_FILE``, then
waits for ``GO_FILE``, so that both writers start together and
their commits race; each commit adds 5 rows keyed ``WHO-i-j``. It prints, as JSON, when its
first commit began and its last one ended (wall clock), to show the two really overlapped.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

import lance
import pyarrow as pa


def main(uri: str, mode: str, who: str, n: int, go_file: Path) -> None:
    options = json.loads(os.environ["LEVEL3_STORAGE_OPTIONS"])
    go_file.with_name(f"ready-{who}").touch()
    deadline = time.monotonic() + 60
    while not go_file.exists():
        if time.monotonic() > deadline:
            sys.exit("no go signal")
        time.sleep(0.01)
    began = time.time()
    for i in range(n):
        rows = pa.table({"k": [f"{who}-{i}-{j}" for j in range(5)], "writer": [who] * 5})
        if mode == "append":
            lance.write_dataset(rows, uri, mode="append", storage_options=options)
        else:
            table = lance.dataset(uri, storage_options=options)
            (
                table.merge_insert("k")
                .when_matched_update_all()
                .when_not_matched_insert_all()
                .execute(rows)
            )
    print(json.dumps({"began": began, "ended": time.time()}))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), Path(sys.argv[5]))
