"""The Data Platform as the AI Platform sees it: an HTTP API, nothing more."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import httpx

from lakeapi.errors import PlatformError, UpstreamUnavailable, error_from_response


class DataPlatformClient:
    """Thin synchronous client; errors come back as the ``PlatformError`` the server raised."""

    def __init__(self, base_url: str, api_key: str | None = None, timeout: float = 60.0) -> None:
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self.base_url = base_url.rstrip("/")
        self._http = httpx.Client(base_url=self.base_url, headers=headers, timeout=timeout)

    def close(self) -> None:
        self._http.close()

    def _call(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        return self._checked(lambda: self._http.request(method, path, **kwargs))

    def _checked(self, send: Callable[[], httpx.Response]) -> httpx.Response:
        """``send()``'s response, or the Data Platform's error raised as ours."""
        try:
            response = send()
        except httpx.HTTPError as exc:
            raise UpstreamUnavailable(
                f"the Data Platform at {self.base_url} is unreachable: {type(exc).__name__}"
            ) from exc
        if response.status_code >= 400:
            response.read()  # a streamed response: its error body
            response.close()
            try:
                body = response.json()
            except ValueError:
                body = response.text
            err = error_from_response(response.status_code, body)
            if type(err) is PlatformError and response.status_code >= 500:
                raise UpstreamUnavailable(f"the Data Platform failed: {err.message}")
            raise err
        return response

    def _json(self, method: str, path: str, **kwargs: Any) -> Any:
        return self._call(method, path, **kwargs).json()

    # datasets and models
    def list_datasets(self) -> list[dict[str, Any]]:
        return self._json("GET", "/api/v1/datasets")

    def get_dataset(self, name: str) -> dict[str, Any]:
        return self._json("GET", f"/api/v1/datasets/{name}")

    def dataset_versions(self, name: str) -> list[dict[str, Any]]:
        return self._json("GET", f"/api/v1/datasets/{name}/versions")

    def delete_dataset(self, name: str) -> None:
        self._call("DELETE", f"/api/v1/datasets/{name}")

    def list_models(self) -> list[dict[str, Any]]:
        return self._json("GET", "/api/v1/models")

    def get_model(self, name: str) -> dict[str, Any]:
        return self._json("GET", f"/api/v1/models/{name}")

    def delete_model(self, name: str) -> None:
        self._call("DELETE", f"/api/v1/models/{name}")

    # tasks
    def submit_task(self, body: dict[str, Any]) -> dict[str, Any]:
        return self._json("POST", "/api/v1/tasks", json=body)

    def list_tasks(self, **filters: Any) -> list[dict[str, Any]]:
        params = {k: v for k, v in filters.items() if v is not None}
        return self._json("GET", "/api/v1/tasks", params=params)

    def get_task(self, task_id: str) -> dict[str, Any]:
        return self._json("GET", f"/api/v1/tasks/{task_id}")

    def cancel_task(self, task_id: str) -> dict[str, Any]:
        return self._json("POST", f"/api/v1/tasks/{task_id}/cancel")

    def follow_task_logs(self, task_id: str, tail: int | None = None) -> Iterator[bytes]:
        """Open the Data Platform's log stream now (errors raise here); iterate for bytes."""
        params: dict[str, Any] = {"follow": True}
        if tail is not None:
            params["tail"] = tail
        request = self._http.build_request(
            "GET", f"/api/v1/tasks/{task_id}/logs", params=params, timeout=None
        )
        response = self._checked(lambda: self._http.send(request, stream=True))

        def chunks() -> Iterator[bytes]:
            try:
                yield from response.iter_bytes()
            finally:
                response.close()

        return chunks()

    def task_logs(self, task_id: str, tail: int | None = None) -> str:
        params = {"tail": tail} if tail is not None else {}
        return self._call("GET", f"/api/v1/tasks/{task_id}/logs", params=params).text
