"""Schema-driven fuzzing of the HTTP API: schemathesis generates requests from
``/openapi.json`` and checks the live daemon's answers against it.

Bounded: a few examples per operation and a time budget for the whole run.  It
must find no 500 and no answer that the schema does not describe (status code,
content type, body, headers).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from schemathesis import GenerationMode, checks

from gateway.web.auth import Scope

pytestmark = pytest.mark.timeout(150)

POSITIVE, NEGATIVE = GenerationMode.POSITIVE, GenerationMode.NEGATIVE
BUDGET = 60.0  # seconds for the whole run
EXAMPLES = 25  # per operation and caller
#: A synthetic camera, so its routes are fuzzed too.
CAMERA = {"enabled": True, "backend": "synthetic", "fps": 5}
CHECKS = [
    checks.not_a_server_error,
    checks.status_code_conformance,
    checks.content_type_conformance,
    checks.response_schema_conformance,
    checks.response_headers_conformance,
]


def fuzz(
    operation: Any,
    mode: Any,
    url: str,
    headers: dict[str, str],
    deadline: float,
    statuses: list[int],
) -> Any:
    """A hypothesis test calling ``operation`` with requests generated in ``mode``."""

    @given(case=operation.as_strategy(generation_mode=mode))
    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        database=None,
        derandomize=True,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    def run(case: Any) -> None:
        if time.monotonic() > deadline:
            return
        response = case.call(base_url=url, headers=headers, timeout=10)
        statuses.append(response.status_code)
        case.validate_response(response, checks=CHECKS)

    return run


def test_fuzzed_requests_get_answers_the_schema_describes(tmp_path: Path, kit: Any) -> None:
    # Loopback is not the kiosk here, so requests without a token are anonymous.
    # Generated requests carry made-up tokens too; the failed-auth limit must not hide
    # the other answers behind 429s.
    config = kit.make_config(
        tmp_path / "s",
        web={"kiosk_addresses": ["192.0.2.1"], "auth_failures_per_minute": 10_000},
        camera=CAMERA,
    )
    with kit.gateway_thread(config) as g:
        assert g.gw is not None
        admin = {"Authorization": f"Bearer {kit.new_token(g.gw, 'fuzz-admin-7f3a', Scope.ADMIN)}"}
        schema = schemathesis.openapi.from_url(f"{g.url}/openapi.json")
        # The live stream never ends by design; it is tested in test_api.py.
        schema = schema.exclude(path="/api/events").exclude(path="/api/camera/stream.mjpg")
        deadline = time.monotonic() + BUDGET
        failures: list[str] = []
        operations = 0
        statuses: list[int] = []
        for result in schema.get_all_operations():
            operation = result.ok()
            operations += 1
            for headers, mode in ((admin, POSITIVE), (admin, NEGATIVE), ({}, POSITIVE)):
                if time.monotonic() > deadline:
                    break

                run = fuzz(operation, mode, g.url, headers, deadline, statuses)
                try:
                    run()
                except (Exception, BaseExceptionGroup) as err:
                    who = "token" if headers else "anonymous"
                    failures.append(f"{operation.label} ({who}, {mode.value}): {err}")
        assert operations >= 20
        assert len(statuses) > operations * 10, len(statuses)
        assert 500 not in statuses
        assert {200, 401, 422} <= set(statuses), sorted(set(statuses))
        assert not failures, "\n\n".join(failures)


async def test_every_json_answer_is_a_typed_model_and_errors_are_declared(
    tmp_path: Path, kit: Any
) -> None:
    """Clients learn from /openapi.json what each route answers, failures included."""
    config = kit.make_config(tmp_path / "s", camera=CAMERA)
    async with kit.running_gateway(config) as gw, kit.client(gw) as c:
        spec = (await c.get("/openapi.json")).json()
    assert any(p.startswith("/api/camera/") for p in spec["paths"])
    schemas = spec["components"]["schemas"]
    untyped, undeclared = [], []
    for path, ops in spec["paths"].items():
        for method, op in ops.items():
            where = f"{method.upper()} {path}"
            for status, answer in op["responses"].items():
                schema = answer.get("content", {}).get("application/json", {}).get("schema")
                if schema is None:
                    continue
                if status.startswith("2"):
                    ref = schema.get("$ref", "").rsplit("/", 1)[-1]
                    typed = ref in schemas and schemas[ref].get("properties")
                    typed = typed or schema.get("type") == "array" or "anyOf" in schema
                    if not typed:
                        untyped.append(f"{where} {status}")
                elif schema.get("$ref", "").rsplit("/", 1)[-1] != "ErrorBody":
                    undeclared.append(f"{where} {status} is not the error model")
            # Every route is behind the token guard, so every one can answer 401 and 429.
            for status in ("401", "429"):
                if status not in op["responses"]:
                    undeclared.append(f"{where} does not declare {status}")
    assert not untyped, untyped
    assert not undeclared, undeclared
