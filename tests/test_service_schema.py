"""schemathesis against the service's own OpenAPI schema, on a real server: no 5xx, and every
answer (status, content type, body, headers) as the schema says.

The server judges with an OpenAI-compatible stub on 127.0.0.1, so generated judge and rank
requests reach a real LM path; one user is seeded so that some generated requests find a
persona. ``SCHEMA_EXAMPLES`` sets the examples per operation (default 25).
"""

from __future__ import annotations

import os
import zlib
from collections import Counter

import pytest

pytest.importorskip("fastapi")
schemathesis = pytest.importorskip("schemathesis")

from hypothesis import HealthCheck, Phase, settings  # noqa: E402
from schemathesis import GenerationMode  # noqa: E402
from schemathesis.checks import not_a_server_error  # noqa: E402
from schemathesis.specs.openapi.checks import (  # noqa: E402
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from helpers import stub_answer  # noqa: E402
from personae.client import PersonaeClient  # noqa: E402
from personae.testing import (  # noqa: E402
    create_token,
    serve_api,
    stub_server,  # noqa: E402
)

EXAMPLES = int(os.environ.get("SCHEMA_EXAMPLES", "25"))


_answer = stub_answer


@pytest.fixture(scope="module")
def service(tmp_path_factory):
    db = tmp_path_factory.mktemp("schema") / "s.db"
    token = create_token(db, "acme")
    with stub_server(_answer) as stub, serve_api(db, [
            "--judge", "openai/stub-model", "--api-base", stub.api_base, "--api-key", "sk-schema-test-0000",
            "--no-cache", "--lm-retries", "0", "--max-attempts", "1", "--debounce", "0"]) as server:
        with PersonaeClient(server.url, token=token) as client:
            added = client.add_preferences("u1", [{"id": f"p{i}", "prompt": f"q{i}", "chosen": "ok",
                                                   "rejected": "a longer answer"} for i in range(4)])
            assert client.wait_job(added.job_id, timeout=60).status == "done"
        server.token = token
        yield server
    assert "Traceback" not in server.log, server.log[-3000:]


def test_the_service_conforms_to_its_schema(service, capsys) -> None:
    """Every operation of /openapi.json, ``EXAMPLES`` generated requests each (schemathesis's
    strategies driven by Hypothesis here, not its pytest plugin, which this pytest outgrew)."""
    from hypothesis import given

    api = schemathesis.openapi.from_url(f"{service.url}/openapi.json")
    checks = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance,
              response_headers_conformance]
    sent: Counter[str] = Counter()
    statuses: Counter[int] = Counter()
    operations = [result.ok() for result in api.get_all_operations()]

    def exercise(operation, mode: GenerationMode, key: str) -> None:
        @given(case=operation.as_strategy(mode))
        @settings(max_examples=EXAMPLES, deadline=None, derandomize=True, database=None,
                  phases=[Phase.explicit, Phase.generate], suppress_health_check=list(HealthCheck))
        def run(case) -> None:
            params = case.path_parameters or {}
            if "user_id" in params and case.method != "DELETE" and zlib.crc32(str(params).encode()) % 2 == 0:
                params["user_id"] = "u1"   # half of them reach the seeded user (a valid id either way)
            response = case.call_and_validate(base_url=service.url, timeout=60, checks=checks,
                                              headers={"Authorization": f"Bearer {service.token}"})
            sent[key] += 1
            statuses[response.status_code] += 1

        run()

    assert len(operations) >= 13
    for operation, mode in [(op, mode) for op in operations for mode in (GenerationMode.POSITIVE,
                                                                         GenerationMode.NEGATIVE)]:
        name = f"{operation.method.upper()} {operation.path}"
        if mode is GenerationMode.NEGATIVE and not operation.path.startswith("/v1"):
            continue   # /healthz, /readyz and /metrics take no input to get wrong

        exercise(operation, mode, f"{name} {mode.value}")
    assert {key.rsplit(" ", 1)[0] for key in sent} == {f"{op.method.upper()} {op.path}" for op in operations}
    assert not any(status >= 500 for status in statuses)
    with capsys.disabled():
        print(f"\nschemathesis: {sum(sent.values())} generated requests over {len(sent)} operations; "
              f"statuses {dict(sorted(statuses.items()))}")
