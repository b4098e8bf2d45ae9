"""Hostile requests against both services: each is answered 4xx in the error envelope (OIP
routes: OIP's own shape), and none leaves a task, a dataset or a broken list behind.

The table is what an attacker or a careless client sends: non-finite and out-of-range numbers,
deep nesting, bodies that are not JSON objects, wrong content types, traversal and odd names,
missing versions and tags, a rebinding Host, oversized bodies. The README's Reliability section
quotes its size (checked below). Model-server budgets (pixels, images, decode) are in
``tests/serving/test_request_limits.py``; schemathesis fuzzes both specs in
``tests/test_fuzz_openapi.py``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest

from tests.support import REPO, PlatformServers

JSON = {"content-type": "application/json"}
INGEST = {
    "name": "h",
    "input": "raw/mnist",
    "script": "pipelines/mnist_clean.py",
    "params": {},
    "output": "mnist",
}
TRAIN = {**INGEST, "input": "mnist", "script": "training/mnist_mlp.py", "output": "m"}
DP_TASK = {
    "script": "pipelines/mnist_clean.py",
    "input": "raw/mnist",
    "output": "datasets/mnist",
    "params": {},
}
SUBMITS = [
    ("aip", "/api/v1/ingestion-tasks", INGEST),
    ("aip", "/api/v1/training-tasks", TRAIN),
    ("dp", "/api/v1/tasks", DP_TASK),
]


@dataclass(frozen=True)
class Case:
    name: str
    service: str  # "dp" or "aip"
    method: str
    path: str
    status: int
    code: str  # the envelope's code; "" for OIP's own shape {"error": "..."}
    request: dict[str, Any] = field(default_factory=dict)  # httpx.request's keywords


def nested(depth: int, open_: str = "[", close: str = "]") -> str:
    return open_ * depth + "1" + close * depth


def with_params(body: dict[str, Any], params_text: str) -> str:
    """``body`` as JSON text with raw ``params_text`` (what json.dumps would never write)."""
    return json.dumps({**body, "params": "\0"}).replace('"\\u0000"', params_text)


def submit_cases() -> Iterator[Case]:
    params = {
        "NaN": '{"lr": NaN}',
        "Infinity": '{"lr": Infinity}',
        "-Infinity": '{"lr": -Infinity}',
        "1e400": '{"lr": 1e400}',
        "a 400-digit integer": '{"n": ' + "9" * 400 + "}",
        "300 levels deep": nested(300, '{"a":', "}"),
        "a list": "[1, 2]",
        "a string": '"x"',
    }
    bodies = {
        "JSON 100k levels deep": nested(100_000),
        "malformed JSON": "{",
        "an array": "[]",
        "a number": "3",
        "empty": "",
        "not UTF-8": b"\xff\xfe{",
        "null": "null",
    }
    content_types = ["text/plain", "application/x-www-form-urlencoded", "multipart/form-data"]
    for service, path, body in SUBMITS:
        dp = service == "dp"
        training = path.endswith("training-tasks")

        def case(
            what: str,
            status: int,
            code: str,
            service: str = service,
            path: str = path,
            **request: Any,
        ) -> Case:
            return Case(f"{service} {path} {what}", service, "POST", path, status, code, request)

        for what, text in params.items():
            content = with_params(body, text)
            yield case(f"params {what}", 400, "INVALID_REQUEST", content=content, headers=JSON)
        for what, content in bodies.items():
            yield case(f"body {what}", 400, "INVALID_REQUEST", content=content, headers=JSON)
        for ctype in content_types:
            headers = {"content-type": ctype}
            yield case(
                ctype, 415, "UNSUPPORTED_MEDIA_TYPE", content=json.dumps(body), headers=headers
            )
        yield case("no content type", 415, "UNSUPPORTED_MEDIA_TYPE", content=json.dumps(body))
        huge = b'{"a": "' + b"x" * (17 * 1024 * 1024) + b'"}'
        yield case("a 17 MB body", 413, "PAYLOAD_TOO_LARGE", content=huge, headers=JSON)
        changes: list[tuple[str, dict[str, Any], int, str]] = [
            ("an unknown field", {"evil": 1}, 400, "INVALID_REQUEST"),
            ("mode bogus", {"mode": "bogus"}, 400, "INVALID_REQUEST"),
            ("resources negative", {"resources": {"cpus": -1}}, 400, "INVALID_REQUEST"),
            ("input traversal", {"input": "../../etc"}, 400, "INVALID_REQUEST"),
            ("input at nothing", {"input": "datasets/mnist@"}, 400, "INVALID_REQUEST"),
            ("input with NUL", {"input": "raw/mn\0ist"}, 400, "INVALID_REQUEST"),
            ("input version of nothing", {"input": "datasets/mnist@999"}, 404, "DATASET_NOT_FOUND"),
            ("input tag of nothing", {"input": "datasets/mnist@nope"}, 404, "DATASET_NOT_FOUND"),
            ("output traversal", {"output": "../x"}, 400, "INVALID_REQUEST"),
            ("output 1000 long", {"output": "a" * 1000}, 400, "INVALID_REQUEST"),
            (
                "output nested",
                {"output": "datasets/../../x" if dp else "a/b"},
                400,
                "INVALID_REQUEST",
            ),
            ("name with a space", {"name": "a b"}, 400, "INVALID_REQUEST"),
        ]
        # Training checks its dataset before its script: with no dataset, a bad script or a
        # memory beyond the machine is a 404 on the input, still before anything starts.
        unreadable = (404, "DATASET_NOT_FOUND") if training else (400, "INVALID_REQUEST")
        changes += [
            ("script traversal", {"script": "../../../etc/passwd"}, *unreadable),
            ("script absolute", {"script": "/etc/passwd"}, *unreadable),
            ("script missing", {"script": "pipelines/nope.py"}, *unreadable),
            ("memory 1e308 MB", {"resources": {"memory_mb": 1e308}}, *unreadable),
        ]
        for what, change, status, code in changes:
            yield case(what, status, code, json={**body, **change})


def read_cases() -> Iterator[Case]:
    for service in ("dp", "aip"):
        gets = [
            ("dataset %2F traversal", "/api/v1/datasets/..%2F..%2Fetc", 404, "NOT_FOUND"),
            ("dataset ..", "/api/v1/datasets/..", 404, "NOT_FOUND"),
            ("dataset 5000 long", "/api/v1/datasets/" + "a" * 5000, 400, "INVALID_REQUEST"),
            ("dataset x@@", "/api/v1/datasets/x@@", 400, "INVALID_REQUEST"),
            ("limit -1", "/api/v1/datasets?limit=-1", 400, "INVALID_REQUEST"),
            ("limit abc", "/api/v1/datasets?limit=abc", 400, "INVALID_REQUEST"),
            ("limit 1e20", "/api/v1/datasets?limit=99999999999999999999", 400, "INVALID_REQUEST"),
            ("versions of nothing", "/api/v1/models/nope/versions", 404, "MODEL_NOT_FOUND"),
        ]
        for what, path, status, code in gets:
            yield Case(f"{service} GET {what}", service, "GET", path, status, code)
        yield Case(
            f"{service} Host rebinding",
            service,
            "GET",
            "/api/v1/datasets",
            400,
            "INVALID_REQUEST",
            {"headers": {"host": "evil.example.com"}},
        )
        search = {"json": {"vector": [1.0, 2.0, 3.0], "k": -1}}
        yield Case(
            f"{service} search k -1",
            service,
            "POST",
            "/api/v1/datasets/nope/search",
            400,
            "INVALID_REQUEST",
            search,
        )
    services = "/api/v1/inference-services"
    posts = [
        (
            "predict 100k deep",
            f"{services}/nope/predict",
            nested(100_000),
            404,
            "SERVICE_NOT_FOUND",
        ),
        (
            "service of model ../x",
            services,
            '{"name": "s", "model": "../x"}',
            400,
            "INVALID_REQUEST",
        ),
        (
            "service on port 70000",
            services,
            '{"name": "s", "model": "m", "port": 70000}',
            400,
            "INVALID_REQUEST",
        ),
        (
            "OIP infer of nothing",
            f"{services}/nope/v2/models/nope/infer",
            '{"inputs": []}',
            404,
            "",
        ),
    ]
    for what, path, content, status, code in posts:
        yield Case(
            f"aip {what}", "aip", "POST", path, status, code, {"content": content, "headers": JSON}
        )


CASES = [*submit_cases(), *read_cases()]


@pytest.fixture(scope="module")
def servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PlatformServers]:
    platform = PlatformServers(tmp_path_factory.mktemp("hostile")).start()
    yield platform
    platform.stop()


def test_every_hostile_request_is_4xx_in_the_envelope_and_leaves_nothing(servers):
    urls = {"dp": servers.dp.url, "aip": servers.aip.url}
    wrong = []
    with httpx.Client(timeout=60) as client:
        for case in CASES:
            r = client.request(case.method, urls[case.service] + case.path, **case.request)
            body = r.json()
            if case.code:
                ok = set(body) == {"error"} and body["error"]["code"] == case.code
                ok = ok and isinstance(body["error"]["message"], str) and body["error"]["message"]
            else:  # OIP: {"error": "<message>"}
                ok = set(body) == {"error"} and isinstance(body["error"], str) and body["error"]
            if r.status_code != case.status or not ok:
                wrong.append(f"{case.name}: {r.status_code} {r.text[:200]}")
        assert wrong == [], "\n".join(wrong)
        # No phantom: nothing was accepted, and every list still answers.
        for url, path in [
            (urls["dp"], "/api/v1/tasks"),
            (urls["dp"], "/api/v1/datasets"),
            (urls["aip"], "/api/v1/ingestion-tasks"),
            (urls["aip"], "/api/v1/training-tasks"),
            (urls["aip"], "/api/v1/inference-services"),
        ]:
            r = client.get(url + path)
            assert r.status_code == 200 and r.json() == [], (path, r.text[:200])
        assert client.get(f"{urls['aip']}/health").json()["data_platform"] == "ok"
    print(f"\n{len(CASES)} hostile requests, each 4xx in the envelope")


def test_the_readme_quotes_the_number_of_hostile_requests():
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    quoted = re.search(r"(\d+) hostile requests", readme)
    assert quoted is not None and int(quoted.group(1)) == len(CASES)


def test_cases_are_distinct():
    assert len({c.name for c in CASES}) == len(CASES)
