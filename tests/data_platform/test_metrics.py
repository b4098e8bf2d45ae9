"""The Data Platform's Prometheus metrics, scraped and parsed as Prometheus would."""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families

from tests.data_platform.test_tasks import submit, wait_done


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def test_metrics_count_tasks_by_state_and_requests_by_route(dp):
    wait_done(dp, submit(dp, "exit_ok.py")["id"])
    wait_done(dp, submit(dp, "raise_error.py")["id"])
    r = dp.get("/metrics")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain")
    found = samples(r.text)
    assert found[("data_platform_tasks", (("state", "completed"),))] == 1
    assert found[("data_platform_tasks", (("state", "failed"),))] == 1
    assert found[("data_platform_tasks", (("state", "pending"),))] == 0
    submits = [
        value
        for (name, labels), value in found.items()
        if name == "data_platform_http_requests_total"
        and dict(labels).get("route") == "/api/v1/tasks"
        and dict(labels).get("method") == "POST"
    ]
    assert submits == [2.0]
