"""Schemathesis against the live server's OpenAPI document, as a real, logged-in user.

Every operation in ``/api/openapi.json`` gets generated requests, valid and invalid (schemathesis'
positive and negative modes), each sent over TLS with a fresh session token. Every response must:
not be a 5xx; match the documented status codes, content type, headers and body schema; and, when it
is an error (4xx/5xx), be an RFC 9457 ``application/problem+json`` body with Bastion's members.

Schemathesis' own pytest integration (``schemathesis.pytest.from_fixture``) reads a private pytest
attribute that pytest 9 removed, so the test drives its strategies with Hypothesis directly: the
same generators and checks, one ``@given`` per operation and mode.

The run in ``make test`` is small and derandomized, so CI sees the same cases every time; ``make
fuzz`` runs many more examples with a random seed (docs/testing.md).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field

import pytest
import requests
from hypothesis import HealthCheck, Phase, given, seed, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import Case, CheckContext, GenerationMode, Response

from tests.fuzz.conftest import FuzzAccount, load_live_schema

pytestmark = [pytest.mark.e2e, pytest.mark.fuzz]

# Per operation and mode. The quick run (make test) stays well under a minute; make fuzz raises it.
MAX_EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "12"))
SEED = int(os.environ["FUZZ_SEED"]) if os.environ.get("FUZZ_SEED") else None
PROBLEM_MEMBERS = {"type", "title", "status", "detail", "code", "request_id"}
PROBLEM_MEDIA_TYPE = "application/problem+json"


def errors_are_problem_json(ctx: CheckContext, response: Response, case: Case) -> bool | None:
    """Every 4xx/5xx is RFC 9457 problem+json carrying Bastion's stable members."""
    del ctx, case  # only the response matters
    if response.status_code < 400:
        return None
    content_type = response.headers.get("content-type", [""])[0]
    if content_type.split(";")[0].strip() != PROBLEM_MEDIA_TYPE:
        raise AssertionError(f"{response.status_code} answered {content_type!r}, not problem+json")
    body = json.loads(response.content)
    missing = PROBLEM_MEMBERS - set(body)
    if missing:
        raise AssertionError(f"problem body lacks {sorted(missing)}")
    if body["status"] != response.status_code:
        raise AssertionError(f"problem status {body['status']} != HTTP {response.status_code}")
    return True


@dataclass
class Tally:
    cases: int = 0
    statuses: dict[int, int] = field(default_factory=dict)
    failures: list[str] = field(default_factory=list)
    nothing_to_negate: list[str] = field(default_factory=list)


def _fuzz(
    operation, mode: GenerationMode, account: FuzzAccount, tally: Tally, session: requests.Session
) -> None:
    @settings(
        max_examples=MAX_EXAMPLES,
        derandomize=SEED is None,
        database=None,
        deadline=None,
        # Shrinking replays requests against a server whose state moved on; the failing case
        # as generated, with its curl line, is the useful report.
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(case=operation.as_strategy(generation_mode=mode))
    def run(case: Case) -> None:
        tally.cases += 1
        response = case.call_and_validate(
            session=session,
            headers=account.auth_headers(),
            additional_checks=[errors_are_problem_json],
        )
        tally.statuses[response.status_code] = tally.statuses.get(response.status_code, 0) + 1

    if SEED is not None:
        run = seed(SEED)(run)
    try:
        run()
    except Unsatisfiable:
        # Negative mode on an operation with no parameters and no body: nothing can be made
        # invalid, so there is no case to send.
        tally.nothing_to_negate.append(operation.label)
    # Schemathesis raises its FailureGroup (a BaseExceptionGroup); collect every operation's
    # failures and report them together rather than stopping at the first.
    except (Exception, BaseExceptionGroup) as exc:
        tally.failures.append(f"{operation.label} [{mode}]: {exc}")


def test_every_operation_answers_within_its_documented_contract(fuzz_account: FuzzAccount):
    schema = load_live_schema(fuzz_account.server)
    tally = Tally()
    labels = []
    # One connection pool for the run: a TLS handshake per case would dominate the time.
    with requests.Session() as session:
        session.verify = str(fuzz_account.server.cert_file)
        for result in schema.get_all_operations():
            operation = result.ok()
            labels.append(operation.label)
            for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
                _fuzz(operation, mode, fuzz_account, tally, session)
    print(
        f"\nfuzz: {tally.cases} cases over {len(labels)} operations, "
        f"statuses {dict(sorted(tally.statuses.items()))}, seed {SEED or 'derandomized'}, "
        f"{'as ' + fuzz_account.email if fuzz_account.email else 'UNAUTHENTICATED (no sign-up)'}"
    )
    assert len(labels) >= 10, labels  # the document was really read
    assert not tally.failures, "\n\n".join(tally.failures)
