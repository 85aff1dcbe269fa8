"""A schema-driven fuzzer (Schemathesis) against the service's own /openapi.json: every
operation called with generated requests, valid and invalid, with and without a key, and every
answer checked against the document: no 5xx, only documented status codes, bodies of the
documented schema, content types as declared, 405s that carry Allow."""

from __future__ import annotations

from pathlib import Path

import pytest
import schemathesis
import yaml
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import positive_data_acceptance

from cadenza.serve.app import create_app
from cadenza.serve.auth import key_entry, new_key
from cadenza.serve.settings import ServeSettings

KEY = new_key()
EXAMPLES = 12  # per operation: enough to reach each error path, cheap enough for CI


@pytest.fixture(scope="module")
def fuzzed_app(checkpoints: Path, tmp_path_factory: pytest.TempPathFactory):
    root = tmp_path_factory.mktemp("fuzz")
    (root / "keys.yaml").write_text(yaml.safe_dump({"keys": [
        key_entry("fuzzer", KEY, ["generate", "recommend"], "listener1")]}))  # fmt: skip
    app = create_app(ServeSettings.from_dict({
        "checkpoints": str(checkpoints), "work_dir": str(root / "work"),
        "keys_file": str(root / "keys.yaml"),
        # Small caps: a generated request that is valid stays cheap to answer.
        "limits": {"max_n": 2, "max_bars": 2, "max_steps": 64, "max_candidates": 2, "max_k": 5,
                   "max_interpolate_steps": 3, "max_upload_bytes": 20_000},
        "sample": {"n": 1, "bars": 2, "sample_rate": 8000},
    }))  # fmt: skip
    with TestClient(app):  # runs the app's start-up as the server would
        yield app


def operations(app) -> list:
    """Every operation of the app's own /openapi.json."""
    schema = schemathesis.openapi.from_asgi("/openapi.json", app)
    return [result.ok() for result in schema.get_all_operations()]


def test_every_answer_matches_the_openapi_document(fuzzed_app):
    """Each operation's generated requests (Schemathesis' strategies, valid and invalid, run
    by Hypothesis), every answer validated against the document. Every check runs but
    `positive_data_acceptance`, which wants any schema-valid request accepted: a schema cannot
    say what a readable MIDI file or a served model's name is, and those answers are 4xx the
    route documents (422 for a file that is not MIDI, 404 for a model not served)."""
    failures, every = [], operations(fuzzed_app)
    labels = {op.label for op in every}
    assert {"POST /api/generate", "POST /api/recommend", "POST /api/uploads",
            "GET /api/files/{job}/{name}", "DELETE /api/listeners/{listener}",
            "GET /metrics"} <= labels, labels  # fmt: skip
    for operation in every:

        @given(case=operation.as_strategy())
        @settings(max_examples=EXAMPLES, deadline=None, derandomize=True, database=None,
                  suppress_health_check=list(HealthCheck))  # fmt: skip
        def fuzz(case) -> None:
            case.call_and_validate(headers={"Authorization": f"Bearer {KEY}"},
                                   excluded_checks=[positive_data_acceptance])  # fmt: skip

        try:
            fuzz()
        except BaseException as e:  # noqa: BLE001 - every operation's failures, reported together
            if isinstance(e, KeyboardInterrupt):
                raise
            failures.append(f"{operation.label}: {e}")
    assert not failures, "\n\n".join(failures)
