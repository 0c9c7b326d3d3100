"""The endpoint's registration API, error serialisation, faults and counters, with a fake service
driven through werkzeug's test client (no network)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

from werkzeug.test import Client
from werkzeug.wrappers import Response

from s3vl_local.endpoint.app import AwsError, Call, EndpointApp, EndpointContext, Route, json_response, load_services
from s3vl_local.endpoint.faults import FaultConfig, Faults


class FakeService:
    name = "fake"
    throttle_error = (429, "ThrottlingException")
    unavailable_error = (503, "ServiceUnavailableException")

    def __init__(self) -> None:
        self.closed = False

    def routes(self) -> Sequence[Route]:
        return [
            Route("/echo/<path:thing>", ("POST",), "Echo", self.echo),
            Route("/fail", ("POST",), "Fail", self.fail),
            Route("/boom", ("GET",), "Boom", self.boom),
        ]

    def echo(self, call: Call) -> Response:
        call.count("items", 2)
        return json_response({"thing": call.args["thing"], "body": call.json()})

    def fail(self, call: Call) -> Response:
        raise AwsError(400, "ValidationException", "bad thing", fieldList=[{"path": "/x", "message": "m"}])

    def boom(self, call: Call) -> Response:
        raise RuntimeError("unexpected")

    def close(self) -> None:
        self.closed = True


def make(tmp_path: Path, faults: FaultConfig | None = None) -> tuple[EndpointApp, Client, FakeService]:
    service = FakeService()
    app = EndpointApp(EndpointContext(tmp_path, "http://test"), [service], Faults(faults or FaultConfig()))
    return app, Client(app), service


def test_routes_errors_and_counters(tmp_path: Path) -> None:
    app, client, service = make(tmp_path)
    r = client.post("/echo/a/b", data=json.dumps({"x": 1}))
    assert r.status_code == 200
    assert r.json == {"thing": "a/b", "body": {"x": 1}}
    assert r.headers["x-amzn-RequestId"]
    r = client.post("/fail")
    assert r.status_code == 400
    assert r.headers["x-amzn-ErrorType"] == "ValidationException"
    assert r.json == {"message": "bad thing", "fieldList": [{"path": "/x", "message": "m"}]}
    r = client.get("/boom")
    assert (r.status_code, r.headers["x-amzn-ErrorType"]) == (500, "InternalServerException")
    r = client.post("/echo/x", data=b"{nope")
    assert (r.status_code, r.headers["x-amzn-ErrorType"]) == (400, "SerializationException")
    assert client.post("/nowhere").status_code == 404
    assert client.get("/fail").status_code == 405
    counters = client.get("/_s3vl/counters").json
    assert counters == {
        "fake": {
            "Echo": {"requests": 2, "items": 4, "errors": 1, "error:SerializationException": 1},
            "Fail": {"requests": 1, "errors": 1, "error:ValidationException": 1},
            "Boom": {"requests": 1, "errors": 1, "error:InternalServerException": 1},
        }
    }
    assert client.post("/_s3vl/reset").status_code == 200
    assert client.get("/_s3vl/counters").json == {}
    assert client.get("/_s3vl/health").json["services"] == ["fake"]
    app.close()
    assert service.closed


def test_faults_use_the_service_error_codes(tmp_path: Path) -> None:
    _, client, _ = make(tmp_path, FaultConfig.from_json({"rules": [{"operation": "Echo", "throttle_fraction": 1}]}))
    r = client.post("/echo/x")
    assert (r.status_code, r.headers["x-amzn-ErrorType"]) == (429, "ThrottlingException")
    assert client.post("/fail").headers["x-amzn-ErrorType"] == "ValidationException"
    r = client.put("/_s3vl/faults", data=json.dumps({"rules": [{"service": "fake", "unavailable_fraction": 1}]}))
    assert r.json["rules"][0]["unavailable_fraction"] == 1.0
    assert client.post("/fail").status_code == 503
    assert client.put("/_s3vl/faults", data=b'{"rules": 3}').status_code == 400
    assert client.put("/_s3vl/faults", data=b"{}").json == {"seed": None, "rules": []}
    assert client.post("/echo/x").status_code == 200


def test_load_services_skips_missing_modules(tmp_path: Path) -> None:
    ctx = EndpointContext(tmp_path, "http://test")
    assert load_services(ctx, ("s3vl_local.endpoint.no_such_service",)) == []
