"""Inference services through the AI Platform: by id or by name, durable records, revival."""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path

import httpx
import lance

from tests.data_platform.test_errors import assert_error
from tests.serving.small_model import MODEL, raw_digits
from tests.support import PlatformServers, pid_alive, wait_until

SERVICES = "/api/v1/inference-services"
NAME_RULE = "use 1-64 letters, digits, '_' or '-', starting with a letter or digit"


def stored_services(platform: PlatformServers) -> dict[str, dict]:
    """The service records as committed in the AI Platform's Lance table (read from disk)."""
    state = platform.aip.env["AIP_STATE_DIR"].removeprefix("file://")
    rows = lance.dataset(f"{state}/services.lance").to_table().to_pylist()
    return {row["id"]: json.loads(row["data"]) for row in rows}


def create(api: httpx.Client, name: str) -> dict:
    r = api.post(SERVICES, json={"name": name, "model": MODEL})
    assert r.status_code == 201, r.text
    return r.json()


def test_a_service_answers_by_id_and_by_name_on_every_route(sapi, serving):
    service = create(sapi, "by_name")
    assert service["status"] == "running" and service["id"].startswith("serve-")
    # Durable before the answer: the committed record already says running.
    assert stored_services(serving)[service["id"]]["status"] == "running"

    assert sapi.get(f"{SERVICES}/by_name").json() == sapi.get(f"{SERVICES}/{service['id']}").json()
    images, labels = raw_digits(8)
    for key in ("by_name", service["id"]):
        r = sapi.post(f"{SERVICES}/{key}/predict", json={"images": images})
        assert r.status_code == 200, r.text
        predicted = [p["prediction"] for p in r.json()["predictions"]]
        assert sum(p == y for p, y in zip(predicted, labels, strict=True)) >= 6
    log = sapi.get(f"{SERVICES}/by_name/logs").text
    assert log and log == sapi.get(f"{SERVICES}/{service['id']}/logs").text
    # Model-server logs go to AIP_LOG_DIR, the records to the state URI.
    assert Path(serving.aip.env["AIP_LOG_DIR"], f"{service['id']}.log").read_text()

    assert sapi.delete(f"{SERVICES}/by_name").status_code == 204
    assert_error(sapi.get(f"{SERVICES}/{service['id']}"), 404, "SERVICE_NOT_FOUND")
    assert_error(sapi.post(f"{SERVICES}/by_name/predict", json={}), 404, "SERVICE_NOT_FOUND")
    assert service["id"] not in stored_services(serving)


def test_a_dead_model_server_is_503_at_once_by_name(sapi):
    service = create(sapi, "doomed")
    os.kill(service["pid"], signal.SIGKILL)
    wait_until(lambda: not pid_alive(service["pid"]))
    started = time.monotonic()
    r = sapi.post(f"{SERVICES}/doomed/predict", json={"images": raw_digits(1)[0]})
    assert_error(r, 503, "SERVICE_UNAVAILABLE")
    assert time.monotonic() - started < 2
    failed = wait_until(
        lambda: (s := sapi.get(f"{SERVICES}/doomed").json())["status"] == "failed" and s
    )
    assert "killed" in failed["error"] or "exited" in failed["error"]
    assert sapi.delete(f"{SERVICES}/doomed").status_code == 204


def test_a_restart_revives_the_service_on_its_port(sapi, serving):
    service = create(sapi, "phoenix")
    serving.aip.stop()
    assert not pid_alive(service["pid"])
    serving.aip.start()

    def running() -> dict | None:
        s = sapi.get(f"{SERVICES}/phoenix").json()
        return s if s["status"] == "running" else None

    revived = wait_until(running, timeout=60, interval=0.2)
    assert revived["id"] == service["id"] and revived["port"] == service["port"]
    assert revived["restarts"] == 1 and revived["pid"] != service["pid"]
    r = sapi.post(f"{SERVICES}/phoenix/predict", json={"image": raw_digits(1)[0][0]})
    assert r.status_code == 200 and "prediction" in r.json()
    assert sapi.delete(f"{SERVICES}/{service['id']}").status_code == 204


def test_a_taken_name_is_409_and_a_bad_name_says_the_rule(sapi):
    create(sapi, "taken")
    r = sapi.post(SERVICES, json={"name": "taken", "model": MODEL})
    assert_error(r, 409, "SERVICE_ALREADY_EXISTS")
    error = assert_error(
        sapi.post(SERVICES, json={"name": "a b", "model": MODEL}), 400, "INVALID_REQUEST"
    )
    assert NAME_RULE in error["message"] and "pattern" not in error["message"]
    error = assert_error(
        sapi.post(SERVICES, json={"name": "ok", "model": "../x"}), 400, "INVALID_REQUEST"
    )
    assert error["message"].startswith("model: ") and NAME_RULE in error["message"]
    assert_error(sapi.post(SERVICES, json={"name": "ok", "model": "ghost"}), 404, "MODEL_NOT_FOUND")
    assert sapi.delete(f"{SERVICES}/taken").status_code == 204
