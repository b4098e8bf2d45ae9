"""A service runs one exact model version: pinned at create, kept across a restart, and
rolled with no failed request when the alias it follows moves."""

from __future__ import annotations

import threading

import httpx

from serverkit.recordstore import RecordTable
from tests.data_platform.test_errors import assert_error
from tests.serving.small_model import MODEL, raw_digits
from tests.support import pid_alive, wait_until

SERVICES = "/api/v1/inference-services"
MODELS = f"/api/v1/models/{MODEL}"


def loaded_version(service: dict) -> str:
    """The model version the model server itself loaded (its app's version)."""
    return httpx.get(f"{service['endpoint']}/openapi.json", timeout=10).json()["info"]["version"]


def running_on(api: httpx.Client, name: str, version: int) -> dict | None:
    """The service if it runs ``version`` now, else None."""
    s = api.get(f"{SERVICES}/{name}").json()
    return s if s["model_version"] == version and s["status"] == "running" else None


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


def test_an_alias_moved_at_the_data_platform_rolls_the_service(sapi, serving):
    """Moved behind the AI Platform's back: its alias watch (every 5 s by default) rolls it."""
    first = sapi.get(MODELS).json()["version"]
    assert sapi.put(f"{MODELS}/tags/edge", json={"version": first}).status_code == 200
    old = sapi.post(SERVICES, json={"name": "edge", "model": f"{MODEL}@edge"}).json()
    target = new_version(sapi)
    dp_models = f"{serving.dp.url}/api/v1/models/{MODEL}"
    assert httpx.put(f"{dp_models}/tags/edge", json={"version": target}).status_code == 200

    now = wait_until(lambda: running_on(sapi, "edge", target), timeout=60, interval=0.2)
    assert now["id"] != old["id"] and loaded_version(now) == str(target)
    wait_until(lambda: not pid_alive(old["pid"]), timeout=30)
    assert [s["name"] for s in sapi.get(SERVICES).json()].count("edge") == 1
    assert sapi.delete(f"{SERVICES}/edge").status_code == 204


def test_a_restart_after_a_rollover_half_done_keeps_one_service_of_the_name(sapi, serving):
    """The AI Platform died while a rollover's new half was starting: both records are in its
    state. The restart keeps one service per name (the running one), and the alias watch rolls
    it to where the alias is now."""
    first = sapi.get(MODELS).json()["version"]
    assert sapi.put(f"{MODELS}/tags/half", json={"version": first}).status_code == 200
    old = sapi.post(SERVICES, json={"name": "half", "model": f"{MODEL}@half"}).json()
    target = new_version(sapi)
    serving.aip.stop()
    # The state a kill -9 mid-rollover leaves: the alias moved, the new half recorded
    # `starting` under a new id (its server never answered).
    dp_models = f"{serving.dp.url}/api/v1/models/{MODEL}"
    assert httpx.put(f"{dp_models}/tags/half", json={"version": target}).status_code == 200
    table = RecordTable(f"{serving.aip.env['AIP_STATE_DIR']}/services.lance")
    stored = next(r for r in table.load_all() if r["id"] == old["id"])
    half = {**stored, "id": "serve-halfdone", "status": "starting", "started_at": None}
    table.upsert({**half, "model_version": target})
    serving.aip.start()

    now = wait_until(lambda: running_on(sapi, "half", target), timeout=90, interval=0.2)
    assert loaded_version(now) == str(target)

    def names() -> list[str]:
        return [s["name"] for s in sapi.get(SERVICES).json()]

    # The old half drains for a moment after the switch, then one service of the name is left.
    wait_until(lambda: names().count("half") == 1, timeout=30, interval=0.2)
    assert_error(sapi.get(f"{SERVICES}/serve-halfdone"), 404, "SERVICE_NOT_FOUND")
    assert sapi.delete(f"{SERVICES}/half").status_code == 204
