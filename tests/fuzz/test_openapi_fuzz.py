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
from schemathesis.core.parameters import ParameterLocation

from tests.fuzz.conftest import FUZZ_COLLECTION, FUZZ_TENANT, FuzzAccount, load_live_schema

# ~800 cases take 70 s on the loaded 2-CPU machine. Past pytest-timeout's default 120 s its
# Failed lands inside a Hypothesis case, which reports it as "unreliable results" for whatever
# operation was running: a false finding (seen once, on POST .../collections).
pytestmark = [pytest.mark.e2e, pytest.mark.fuzz, pytest.mark.timeout(600)]

# Per operation and mode: ~100 operations make the quick run (make test) ~1,000 cases; make fuzz
# raises it.
MAX_EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "6"))
SEED = int(os.environ["FUZZ_SEED"]) if os.environ.get("FUZZ_SEED") else None
# Replaying one finding: only operations whose label contains this text (e.g. "access-review").
ONLY = os.environ.get("FUZZ_ONLY", "")
PROBLEM_MEMBERS = {"type", "title", "status", "detail", "code", "request_id"}
PROBLEM_MEDIA_TYPE = "application/problem+json"
SETTINGS_PATH = "/api/v1/tenants/{tenant}/settings"
COLLECTION_PATH = "/api/v1/tenants/{tenant}/collections/{name}"
RECORD_PATH = COLLECTION_PATH + "/records/{record_id}"


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
        aim_at_own_objects(case, account)
        response = case.call_and_validate(
            session=session,
            headers=account.auth_headers(),
            additional_checks=[errors_are_problem_json],
        )
        tally.statuses[response.status_code] = tally.statuses.get(response.status_code, 0) + 1
        account.answered(case.method, case.formatted_path, response.status_code)
        if case.method == "DELETE" and response.status_code < 300:
            restore_own_objects(case, account)

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
        causes = [exc, *getattr(exc, "exceptions", ())]
        tally.failures.append(f"{operation.label} [{mode}]: " + "\n".join(map(repr, causes)))


def aim_at_own_objects(case: Case, account: FuzzAccount) -> None:
    """Point a case's path at the account's own tenant, collection and record.

    Random path values never name an object the account may use, so every tenant route would
    stop at its 404 before reading the input: the handlers and their validation would go
    unfuzzed. Path parameters generated as negative data are left alone (the case must stay
    negative); other operations' ids (roles, users, keys) stay random, and answer 404.
    """
    if case.path == SETTINGS_PATH and isinstance(case.body, dict) and not _negative(case, "BODY"):
        # A policy the account cannot meet (MFA required, an allowlist without 127.0.0.1) is a
        # 409 unless confirmed; confirmed, it would shut every later case out of the tenant.
        case.body["confirm_lockout"] = False
    if case.path_parameters is None or _negative(case, "PATH"):
        return
    if "tenant" in case.path_parameters:
        case.path_parameters["tenant"] = FUZZ_TENANT
    if case.path.startswith(COLLECTION_PATH):
        case.path_parameters["name"] = FUZZ_COLLECTION
    if case.path == RECORD_PATH and account.record_id is not None:
        case.path_parameters["record_id"] = account.record_id


def _negative(case: Case, location: str) -> bool:
    return case.meta is not None and case.meta.is_negative_at(ParameterLocation[location])


def restore_own_objects(case: Case, account: FuzzAccount) -> None:
    """A fuzzed DELETE that removed the collection or the record: put one back for the rest."""
    if case.path == COLLECTION_PATH:
        account.ensure_collection()
    elif case.path == RECORD_PATH:
        account.ensure_record()


def test_every_operation_answers_within_its_documented_contract(fuzz_account: FuzzAccount):
    schema = load_live_schema(fuzz_account.server)
    tally = Tally()
    labels = []
    # One connection pool for the run: a TLS handshake per case would dominate the time.
    with requests.Session() as session:
        session.verify = str(fuzz_account.server.cert_file)
        for result in schema.get_all_operations():
            operation = result.ok()
            if ONLY not in operation.label:
                continue
            labels.append(operation.label)
            for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
                _fuzz(operation, mode, fuzz_account, tally, session)
    print(
        f"\nfuzz: {tally.cases} cases over {len(labels)} operations, "
        f"statuses {dict(sorted(tally.statuses.items()))}, seed {SEED or 'derandomized'}, "
        f"{'as ' + fuzz_account.email if fuzz_account.email else 'UNAUTHENTICATED (no sign-up)'}"
    )
    assert ONLY or len(labels) >= 10, labels  # the document was really read
    # The run reached the tenant's handlers, not only their 404s: records were written.
    assert ONLY or tally.statuses.get(201, 0) > 0, tally.statuses
    # Test servers have generous per-address limits: a 429 would hide the answer under test.
    assert 429 not in tally.statuses, tally.statuses
    assert not tally.failures, "\n\n".join(tally.failures)
