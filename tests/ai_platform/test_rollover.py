"""A service runs one exact model version: pinned at create, kept across a restart, and
rolled with no failed request when the alias it follows moves."""

from __future__ import annotations

import threading

import httpx

from tests.data_platform.test_errors import assert_error
from tests.serving.small_model import MODEL, raw_digits
from tests.support import pid_alive, wait_until

SERVICES = "/api/v1/inference-services"
MODELS = f"/api/v1/models/{MODEL}"


def loaded_version(service: dict) -> str:
    """The model version the model server itself loaded (its app's version)."""
    return httpx.get(f"{service['endpoint']}/openapi.json", timeout=10).json()["info"]["version"]


def new_version(api: httpx.Client) -> int:
    """A new model version (the latest's content again: restore rewrites nothing)."""
    latest = api.get(MODELS).json()["version"]
    r = api.post(f"{MODELS}/restore", json={"version": latest})
    assert r.status_code == 200, r.text
    return r.json()["version"]


def test_a_service_runs_the_exact_version_asked_and_a_revived_one_keeps_it(sapi, serving):
    first = sapi.get(MODELS).json()["version"]
    plain = sapi.post(SERVICES, json={"name": "plain", "model": MODEL}).json()
    assert plain["model"] == MODEL and plain["model_version"] == first
    assert plain["model_path"].endswith(f"?version={first}")
    newer = new_version(sapi)
    pinned = sapi.post(SERVICES, json={"name": "pinned", "model": f"{MODEL}@{first}"}).json()
    assert pinned["status"] == "running" and pinned["model_version"] == first
    assert loaded_version(pinned) == str(first)
    # Each service tags the version it runs: housekeeping keeps it, deletion is refused.
    tags = sapi.get(f"{MODELS}/tags").json()
    assert {t["name"]: t["version"] for t in tags} == {
        "service-plain": first,
        "service-pinned": first,
    }
    msg = assert_error(sapi.delete(MODELS), 409, "IN_USE")["message"]
    assert "service pinned (version 1)" in msg and "service plain (version 1)" in msg

    serving.aip.stop()
    serving.aip.start()

    def running(name: str) -> dict | None:
        s = sapi.get(f"{SERVICES}/{name}").json()
        return s if s["status"] == "running" else None

    for name in ("plain", "pinned"):
        revived = wait_until(lambda n=name: running(n), timeout=60, interval=0.2)
        assert revived["restarts"] == 1 and revived["model_version"] == first
        assert loaded_version(revived) == str(first) != str(newer)  # not the latest
        assert sapi.delete(f"{SERVICES}/{name}").status_code == 204
    assert sapi.get(f"{MODELS}/tags").json() == []


def test_missing_versions_and_aliases_are_404(sapi):
    body = {"name": "ghost"}
    r = sapi.post(SERVICES, json={**body, "model": f"{MODEL}@999"})
    assert_error(r, 404, "VERSION_NOT_FOUND")
    assert_error(sapi.post(SERVICES, json={**body, "model": f"{MODEL}@nope"}), 404, "TAG_NOT_FOUND")
    r = sapi.put(f"{MODELS}/tags/prod", json={"version": 999})
    assert_error(r, 404, "VERSION_NOT_FOUND")


def test_moving_the_alias_rolls_the_service_with_no_failed_request(sapi):
    old_version = sapi.get(MODELS).json()["version"]
    assert sapi.put(f"{MODELS}/tags/prod", json={"version": old_version}).status_code == 200
    old = sapi.post(SERVICES, json={"name": "web", "model": f"{MODEL}@prod"}).json()
    assert old["follows"] == "prod" and old["model_version"] == old_version
    target = new_version(sapi)

    images, _ = raw_digits(1)
    results: list[tuple[int, str]] = []
    stop = threading.Event()

    def predict_throughout() -> None:
        with httpx.Client(base_url=str(sapi.base_url), timeout=30) as client:
            while not stop.is_set():
                r = client.post(f"{SERVICES}/web/predict", json={"image": images[0]})
                results.append((r.status_code, r.text[:200]))

    worker = threading.Thread(target=predict_throughout)
    worker.start()
    try:
        wait_until(lambda: len(results) >= 20, timeout=30)
        r = sapi.put(f"{MODELS}/tags/prod", json={"version": target})
        assert r.status_code == 200, r.text
        switched_at = len(results)
        wait_until(lambda: len(results) >= switched_at + 20, timeout=30)
    finally:
        stop.set()
        worker.join(30)
    failures = [res for res in results if res[0] != 200]
    assert failures == [] and len(results) >= 40

    now = sapi.get(f"{SERVICES}/web").json()
    assert now["status"] == "running" and now["model_version"] == target
    assert now["id"] != old["id"] and now["follows"] == "prod"
    assert loaded_version(now) == str(target)
    assert not pid_alive(old["pid"])
    assert_error(sapi.get(f"{SERVICES}/{old['id']}"), 404, "SERVICE_NOT_FOUND")
    assert [s["name"] for s in sapi.get(SERVICES).json()].count("web") == 1
    tags = {t["name"]: t["version"] for t in sapi.get(f"{MODELS}/tags").json()}
    assert tags == {"prod": target, "service-web": target}
    assert sapi.delete(f"{SERVICES}/web").status_code == 204
