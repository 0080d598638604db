"""``BastionClient``: a typed, synchronous client for Bastion's HTTP API, built on httpx.

It holds one credential at a time (a session token from ``login`` or an API key given to the
constructor) and sends it as ``Authorization: Bearer``, so no cookie or CSRF token is involved.
Every refusal raises a ``ProblemError`` subclass carrying the server's problem+json fields.
"""

from __future__ import annotations

import json
import ssl
from collections.abc import Callable, Iterable, Iterator, Mapping
from datetime import datetime
from pathlib import Path
from types import TracebackType
from typing import IO, Any, Final, TypeVar
from urllib.parse import quote

import httpx

from bastion.client.errors import MfaRequired, TransportError, problem_from
from bastion.client.types import (
    Account,
    ApiKey,
    AuditEvent,
    Collection,
    CreatedApiKey,
    Invitation,
    Member,
    Page,
    Record,
    SessionInfo,
    SessionToken,
    Tenant,
    TotpEnrolment,
)

T = TypeVar("T")
DEFAULT_TIMEOUT: Final = 10.0
USER_AGENT: Final = "bastion-client/1"


def _segment(value: str) -> str:
    """One path segment, escaped so that an id can never change the route it names."""
    if not value:
        raise ValueError("path segments must not be empty")
    return quote(value, safe="")


def _query(params: Mapping[str, Any]) -> dict[str, str]:
    query: dict[str, str] = {}
    for key, value in params.items():
        if value is None:
            continue
        query[key] = value.isoformat() if isinstance(value, datetime) else str(value)
    return query


class BastionClient:
    """A client for one Bastion server.

    ``verify`` is passed to httpx: True (system CAs), a path to a CA bundle (the self-signed
    certificate ``bastion init`` writes), or an ``ssl.SSLContext``. ``token`` is a session token
    or an API key (``bst_...``); ``login`` replaces it.
    """

    def __init__(
        self,
        base_url: str,
        *,
        token: str | None = None,
        verify: bool | str | Path | ssl.SSLContext = True,
        timeout: float = DEFAULT_TIMEOUT,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        if isinstance(verify, str | Path) and not isinstance(verify, bool):
            verify = ssl.create_default_context(cafile=str(verify))
        self._http = httpx.Client(
            base_url=base_url.rstrip("/"),
            verify=verify,
            timeout=timeout,
            transport=transport,
            headers={"user-agent": USER_AGENT, "accept": "application/json"},
        )
        self._token = token

    # -- lifecycle -------------------------------------------------------------------------

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> BastionClient:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    @property
    def token(self) -> str | None:
        return self._token

    def use_token(self, token: str | None) -> None:
        """Switch credentials (a session token or an API key); None signs out locally."""
        self._token = token

    # -- transport -------------------------------------------------------------------------

    def request(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        content: bytes | None = None,
        params: Mapping[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> httpx.Response:
        """Send one call; return the response if it is 2xx, raise its ProblemError otherwise."""
        sent_headers = dict(headers or {})
        if self._token is not None:
            sent_headers["authorization"] = f"Bearer {self._token}"
        try:
            response = self._http.request(
                method,
                path,
                json=json,
                content=content,
                params=_query(params or {}),
                headers=sent_headers,
            )
        except httpx.HTTPError as exc:
            raise TransportError(f"{method} {path}: {exc}") from exc
        if response.is_success:
            return response
        try:
            body: object = response.json()
        except ValueError:
            body = None
        raise problem_from(response.status_code, body, response.headers)

    def _json(self, method: str, path: str, **kwargs: Any) -> Any:
        return self.request(method, path, **kwargs).json()

    @staticmethod
    def _page(data: Mapping[str, Any], parse: Callable[[Mapping[str, Any]], T]) -> Page[T]:
        return Page(
            items=[parse(item) for item in data["items"]], next_cursor=data.get("next_cursor")
        )

    @staticmethod
    def _all(fetch: Callable[[str | None], Page[T]]) -> Iterator[T]:
        cursor: str | None = None
        while True:
            page = fetch(cursor)
            yield from page.items
            if page.next_cursor is None:
                return
            cursor = page.next_cursor

    # -- authentication --------------------------------------------------------------------

    def signup(self, email: str, password: str, *, name: str | None = None) -> str:
        """Create an account; returns its id. Sign in with ``login`` afterwards."""
        body = {"email": email, "password": password, "name": name}
        return str(self._json("POST", "/api/v1/auth/signup", json=body)["id"])

    def login(
        self, email: str, password: str, *, mfa_code: str | Callable[[], str] | None = None
    ) -> SessionToken:
        """Sign in and use the new session for every later call.

        With a second factor enrolled the server answers ``mfa-required``: given ``mfa_code``
        (a code, or a function returning one, called only when needed) the login is finished
        here; otherwise ``MfaRequired`` is raised and its ``mfa_token`` goes to
        ``complete_mfa``.
        """
        try:
            data = self._json(
                "POST", "/api/v1/auth/login", json={"email": email, "password": password}
            )
        except MfaRequired as challenge:
            if mfa_code is None:
                raise
            code = mfa_code() if callable(mfa_code) else mfa_code
            return self.complete_mfa(challenge.mfa_token, code)
        return self._signed_in(data)

    def complete_mfa(self, mfa_token: str, code: str) -> SessionToken:
        """Finish a login with a TOTP or recovery code."""
        data = self._json("POST", "/api/v1/auth/mfa", json={"mfa_token": mfa_token, "code": code})
        return self._signed_in(data)

    def _signed_in(self, data: Mapping[str, Any]) -> SessionToken:
        session = SessionToken.from_json(data)
        self._token = session.token
        return session

    def step_up(self, code: str) -> None:
        """Prove a second factor now; sensitive actions are allowed for a few minutes."""
        self.request("POST", "/api/v1/auth/step-up", json={"code": code})

    def logout(self) -> None:
        """End the current session on the server and forget its token."""
        self.request("POST", "/api/v1/auth/logout")
        self._token = None

    def forgot_password(self, email: str) -> None:
        """Ask for a reset e-mail (the answer is the same whether the account exists or not)."""
        self.request("POST", "/api/v1/auth/password/forgot", json={"email": email})

    def reset_password(self, token: str, password: str) -> None:
        self.request(
            "POST", "/api/v1/auth/password/reset", json={"token": token, "password": password}
        )

    def verify_email(self, token: str) -> None:
        self.request("POST", "/api/v1/auth/email/verify", json={"token": token})

    # -- the signed-in account -------------------------------------------------------------

    def me(self) -> Account:
        return Account.from_json(self._json("GET", "/api/v1/me"))

    def change_password(self, current_password: str, new_password: str) -> None:
        body = {"current_password": current_password, "new_password": new_password}
        self.request("POST", "/api/v1/me/password", json=body)

    def sessions(self) -> list[SessionInfo]:
        return list(self._all(self._sessions_page))

    def _sessions_page(self, cursor: str | None) -> Page[SessionInfo]:
        data = self._json("GET", "/api/v1/me/sessions", params={"cursor": cursor})
        return self._page(data, SessionInfo.from_json)

    def revoke_session(self, session_id: str) -> None:
        self.request("DELETE", f"/api/v1/me/sessions/{_segment(session_id)}")

    def revoke_all_sessions(self) -> None:
        """Sign out everywhere (this client's token stops working too)."""
        self.request("DELETE", "/api/v1/me/sessions")
        self._token = None

    def begin_totp(self) -> TotpEnrolment:
        return TotpEnrolment.from_json(self._json("POST", "/api/v1/me/totp"))

    def confirm_totp(self, code: str) -> list[str]:
        """Confirm TOTP enrolment with a first code; returns the ten recovery codes (once)."""
        data = self._json("POST", "/api/v1/me/totp/confirm", json={"code": code})
        return [str(c) for c in data["recovery_codes"]]

    # -- tenants and members ---------------------------------------------------------------

    def create_tenant(self, name: str, slug: str) -> Tenant:
        data = self._json("POST", "/api/v1/tenants", json={"name": name, "slug": slug})
        return Tenant.from_json({**data, "role": "owner"})

    def tenants(self) -> list[Tenant]:
        """Every tenant the caller belongs to, with the caller's role."""
        return list(self._all(self._tenants_page))

    def _tenants_page(self, cursor: str | None) -> Page[Tenant]:
        data = self._json("GET", "/api/v1/tenants", params={"cursor": cursor, "limit": 200})
        return self._page(data, Tenant.from_json)

    def tenant(self, tenant: str) -> Tenant:
        """A tenant by id or slug."""
        return Tenant.from_json(self._json("GET", f"/api/v1/tenants/{_segment(tenant)}"))

    def members(self, tenant: str) -> list[Member]:
        return list(self._all(lambda cursor: self._members_page(tenant, cursor)))

    def _members_page(self, tenant: str, cursor: str | None) -> Page[Member]:
        path = f"/api/v1/tenants/{_segment(tenant)}/members"
        data = self._json("GET", path, params={"cursor": cursor, "limit": 200})
        return self._page(data, Member.from_json)

    def add_member(self, tenant: str, user_id: str, role: str) -> Member:
        path = f"/api/v1/tenants/{_segment(tenant)}/members"
        return Member.from_json(self._json("POST", path, json={"user_id": user_id, "role": role}))

    def change_role(self, tenant: str, user_id: str, role: str) -> Member:
        path = f"/api/v1/tenants/{_segment(tenant)}/members/{_segment(user_id)}"
        return Member.from_json(self._json("PATCH", path, json={"role": role}))

    def remove_member(self, tenant: str, user_id: str) -> None:
        self.request("DELETE", f"/api/v1/tenants/{_segment(tenant)}/members/{_segment(user_id)}")

    def invite(self, tenant: str, email: str, role: str) -> Invitation:
        """E-mail an invitation; the token travels by e-mail only."""
        path = f"/api/v1/tenants/{_segment(tenant)}/invitations"
        return Invitation.from_json(self._json("POST", path, json={"email": email, "role": role}))

    def accept_invitation(self, token: str) -> Tenant:
        data = self._json("POST", f"/api/v1/invitations/{_segment(token)}/accept")
        return Tenant.from_json({**data["tenant"], "role": data["role"]})

    # -- audit -----------------------------------------------------------------------------

    def audit_events(
        self,
        tenant: str,
        *,
        actor: str | None = None,
        action: str | None = None,
        target: str | None = None,
        outcome: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        limit: int = 50,
        cursor: str | None = None,
    ) -> Page[AuditEvent]:
        """One page of the tenant's audit events, newest first."""
        params = {
            "actor": actor,
            "action": action,
            "target": target,
            "outcome": outcome,
            "since": since,
            "until": until,
            "limit": limit,
            "cursor": cursor,
        }
        data = self._json("GET", f"/api/v1/tenants/{_segment(tenant)}/audit", params=params)
        return self._page(data, AuditEvent.from_json)

    def export_audit(self, tenant: str, into: IO[bytes]) -> int:
        """Stream the tenant's whole chain as JSON Lines into ``into``; returns bytes written.

        Verify it offline with ``bastion audit verify --file ... --public-key ...``.
        """
        headers: dict[str, str] = {}
        if self._token is not None:
            headers["authorization"] = f"Bearer {self._token}"
        written = 0
        path = f"/api/v1/tenants/{_segment(tenant)}/audit/export"
        try:
            with self._http.stream("GET", path, headers=headers) as response:
                if not response.is_success:
                    response.read()
                    raise problem_from(response.status_code, _safe_json(response), response.headers)
                for chunk in response.iter_bytes():
                    into.write(chunk)
                    written += len(chunk)
        except httpx.HTTPError as exc:
            raise TransportError(f"GET {path}: {exc}") from exc
        return written

    # -- API keys --------------------------------------------------------------------------

    def create_api_key(
        self,
        tenant: str,
        name: str,
        permissions: Iterable[str],
        *,
        expires_in_days: int | None = None,
        expires_at: datetime | None = None,
    ) -> CreatedApiKey:
        """A key for ``tenant`` with (a subset of) the caller's permissions. Needs a recent
        second factor (``step_up``). Keep ``secret``: it is shown this once."""
        body: dict[str, Any] = {"name": name, "permissions": list(permissions)}
        if expires_in_days is not None:
            body["expires_in_days"] = expires_in_days
        if expires_at is not None:
            body["expires_at"] = expires_at.isoformat()
        path = f"/api/v1/tenants/{_segment(tenant)}/api-keys"
        return CreatedApiKey.from_json(self._json("POST", path, json=body))

    def api_keys(self, tenant: str) -> list[ApiKey]:
        return list(self._all(lambda cursor: self._api_keys_page(tenant, cursor)))

    def _api_keys_page(self, tenant: str, cursor: str | None) -> Page[ApiKey]:
        path = f"/api/v1/tenants/{_segment(tenant)}/api-keys"
        data = self._json("GET", path, params={"cursor": cursor, "limit": 200})
        return self._page(data, ApiKey.from_json)

    def revoke_api_key(self, tenant: str, key_id: str) -> None:
        self.request("DELETE", f"/api/v1/tenants/{_segment(tenant)}/api-keys/{_segment(key_id)}")

    # -- collections -----------------------------------------------------------------------

    def _collections(self, tenant: str) -> str:
        return f"/api/v1/tenants/{_segment(tenant)}/collections"

    def create_collection(
        self,
        tenant: str,
        name: str,
        *,
        schema: Mapping[str, Any] | None = None,
        indexed: Iterable[str] = (),
        audit_reads: bool = True,
    ) -> Collection:
        """A collection; ``schema`` (JSON Schema 2020-12) checks every write, ``indexed``
        fields can be filtered on (through blind indexes), reads are audited by default."""
        body = {
            "name": name,
            "schema": schema,
            "indexed": list(indexed),
            "audit_reads": audit_reads,
        }
        return Collection.from_json(self._json("POST", self._collections(tenant), json=body))

    def collections(self, tenant: str) -> list[Collection]:
        return list(self._all(lambda cursor: self._collections_page(tenant, cursor)))

    def _collections_page(self, tenant: str, cursor: str | None) -> Page[Collection]:
        data = self._json("GET", self._collections(tenant), params={"cursor": cursor})
        return self._page(data, Collection.from_json)

    def collection(self, tenant: str, name: str) -> Collection:
        path = f"{self._collections(tenant)}/{_segment(name)}"
        return Collection.from_json(self._json("GET", path))

    def update_collection(self, tenant: str, name: str, **changes: Any) -> Collection:
        """Change ``schema`` (None removes it), ``indexed`` or ``audit_reads``."""
        unknown = set(changes) - {"schema", "indexed", "audit_reads"}
        if unknown:
            raise TypeError(f"unknown collection settings: {sorted(unknown)}")
        if "indexed" in changes:
            changes["indexed"] = list(changes["indexed"])
        path = f"{self._collections(tenant)}/{_segment(name)}"
        return Collection.from_json(self._json("PATCH", path, json=changes))

    def delete_collection(self, tenant: str, name: str) -> None:
        self.request("DELETE", f"{self._collections(tenant)}/{_segment(name)}")

    # -- records ---------------------------------------------------------------------------

    def _records(self, tenant: str, collection: str) -> str:
        return f"{self._collections(tenant)}/{_segment(collection)}/records"

    def create_record(self, tenant: str, collection: str, data: Mapping[str, Any]) -> Record:
        return Record.from_json(self._json("POST", self._records(tenant, collection), json=data))

    def record(self, tenant: str, collection: str, record_id: str) -> Record:
        path = f"{self._records(tenant, collection)}/{_segment(record_id)}"
        return Record.from_json(self._json("GET", path))

    def records(
        self,
        tenant: str,
        collection: str,
        *,
        where: Mapping[str, str] | None = None,
        limit: int | None = None,
        cursor: str | None = None,
    ) -> Page[Record]:
        """One page of live records; ``where`` matches indexed fields exactly."""
        params: dict[str, Any] = {"limit": limit, "cursor": cursor}
        params.update({f"filter[{field}]": value for field, value in (where or {}).items()})
        data = self._json("GET", self._records(tenant, collection), params=params)
        return self._page(data, Record.from_json)

    def iter_records(
        self, tenant: str, collection: str, *, where: Mapping[str, str] | None = None
    ) -> Iterator[Record]:
        """Every live record matching ``where``, page after page."""
        return self._all(
            lambda cursor: self.records(tenant, collection, where=where, cursor=cursor)
        )

    def replace_record(
        self,
        tenant: str,
        collection: str,
        record_id: str,
        data: Mapping[str, Any],
        *,
        if_match: str | None = None,
    ) -> Record:
        """Replace the whole document; with ``if_match`` only over that version (412 else)."""
        path = f"{self._records(tenant, collection)}/{_segment(record_id)}"
        headers = {"if-match": if_match} if if_match is not None else None
        return Record.from_json(self._json("PUT", path, json=data, headers=headers))

    def patch_record(
        self,
        tenant: str,
        collection: str,
        record_id: str,
        patch: Mapping[str, Any],
        *,
        if_match: str | None = None,
    ) -> Record:
        """Apply a JSON Merge Patch (RFC 7386: ``None`` removes a member)."""
        path = f"{self._records(tenant, collection)}/{_segment(record_id)}"
        headers = {"content-type": "application/merge-patch+json"}
        if if_match is not None:
            headers["if-match"] = if_match
        content = json.dumps(patch).encode()
        return Record.from_json(self._json("PATCH", path, content=content, headers=headers))

    def delete_record(
        self, tenant: str, collection: str, record_id: str, *, if_match: str | None = None
    ) -> None:
        path = f"{self._records(tenant, collection)}/{_segment(record_id)}"
        self.request("DELETE", path, headers={"if-match": if_match} if if_match else None)


def _safe_json(response: httpx.Response) -> object:
    try:
        return response.json()
    except ValueError:
        return None
