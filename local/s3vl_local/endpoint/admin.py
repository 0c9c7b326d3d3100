"""A small client for the endpoint's admin routes (``/_s3vl/...``), for tests and ``s3vl dev``.

Standard library only (no boto3): ``AdminClient("http://127.0.0.1:45660").counters()``.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any


class AdminError(Exception):
    """The admin route answered with an error or could not be reached."""


class AdminClient:
    def __init__(self, url: str, timeout: float = 5.0) -> None:
        self.url = url.rstrip("/")
        self.timeout = timeout

    def _request(self, method: str, path: str, body: Any = None) -> Any:
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(  # noqa: S310 - http(s) URL given by the caller
            f"{self.url}/_s3vl/{path}", data=data, method=method, headers={"Content-Type": "application/json"}
        )
        try:
            with urllib.request.urlopen(req, timeout=self.timeout) as resp:  # noqa: S310
                return json.loads(resp.read() or b"null")
        except urllib.error.HTTPError as exc:
            raise AdminError(f"{method} /_s3vl/{path}: HTTP {exc.code}: {exc.read().decode(errors='replace')}") from exc
        except (urllib.error.URLError, OSError) as exc:
            raise AdminError(f"{method} /_s3vl/{path}: {exc}") from exc

    def health(self) -> dict[str, Any]:
        """``{"status": "ok", "pid": ..., "services": [...]}``; raises AdminError when down."""
        result: dict[str, Any] = self._request("GET", "health")
        return result

    def is_healthy(self) -> bool:
        try:
            return self.health().get("status") == "ok"
        except AdminError:
            return False

    def counters(self) -> dict[str, dict[str, dict[str, int]]]:
        result: dict[str, dict[str, dict[str, int]]] = self._request("GET", "counters")
        return result

    def reset(self) -> None:
        self._request("POST", "reset", {})

    def faults(self) -> dict[str, Any]:
        result: dict[str, Any] = self._request("GET", "faults")
        return result

    def set_faults(self, config: dict[str, Any] | None = None, **shorthand: Any) -> dict[str, Any]:
        """Replace the fault configuration: ``set_faults({"rules": [...]})`` or
        ``set_faults(throttle_fraction=0.5)``; ``set_faults()`` turns faults off."""
        body = dict(config or {})
        body.update(shorthand)
        result: dict[str, Any] = self._request("PUT", "faults", body)
        return result

    def clear_faults(self) -> None:
        self.set_faults({})
