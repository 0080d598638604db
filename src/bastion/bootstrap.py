"""Composition root: Settings in, wired services out. Used by the API and the CLI alike."""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import TypeVar

import httpx
from sqlalchemy import Engine, text
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.orm import Session

from bastion.access import SqlAccess, SqlApiKeys, SqlInvitations
from bastion.access import invitations as access_invitations
from bastion.access.governance import Governance, build_governance
from bastion.alerts import SecurityEvent, Severity, SqlSecurityEvents
from bastion.alerts.delivery import AlertDelivery, DeliveryReport
from bastion.alerts.sinks import build_sinks
from bastion.audit import (
    SYSTEM_CHAIN,
    AuditEvent,
    AuditLog,
    AuditVerifier,
    Checkpointer,
    Keys,
    ReadAuditBatcher,
    VerifyReport,
    run_scheduled_verification,
)
from bastion.audit.canonical import key_id_for
from bastion.backup import BackupService, BackupTarget, LocalTarget, S3Target, s3_client
from bastion.crypto import (
    Keyring,
    LocalKeyProvider,
    SystemSealedColumn,
    create_key_file,
    verify_signature,
    write_self_signed_certificate,
)
from bastion.crypto.errors import CryptoError
from bastion.crypto.kms.base import KeyProvider
from bastion.crypto.kms.pkcs11 import Pkcs11KeyProvider
from bastion.crypto.types import KeyEventRecorder
from bastion.db import UnitOfWork, assert_schema_current, make_engine, upgrade_to_head
from bastion.db.engine import sqlite_path
from bastion.db.roles import app_role_problems
from bastion.detection import Counters, Detection, SqlLoginGuard
from bastion.errors import StartupError
from bastion.identity import FirstOperatorBootstrap, IssuedLink
from bastion.identity import keys as identity_keys
from bastion.identity import mfa as identity_mfa
from bastion.identity.directory import SqlUserDirectory
from bastion.identity.events import AuditLogTrail, AuditTrail
from bastion.identity.guard import LoginGuard
from bastion.identity.keys import SystemKeys
from bastion.identity.passwords import Argon2Parameters, PasswordHasher
from bastion.identity.revocation import CredentialRevoker
from bastion.identity.service import Identity, SqlIdentity
from bastion.kernel.clock import Clock, SystemClock
from bastion.mail import (
    DirectoryOutbox,
    MailDispatcher,
    Outbox,
    RetryPolicy,
    SmtpOutbox,
    SqlMailQueue,
)
from bastion.mail import queue as mail_queue_module
from bastion.records import RecordsReencryptionTarget, SqlRecords, TamperAlarm
from bastion.settings import Settings

T = TypeVar("T")
# Every column holding values sealed with the system data key, as each domain declares it
# (ORM column, purpose). A unit test checks that each ``seal_system`` call's purpose is here.
SYSTEM_SEALED_COLUMNS = (
    *identity_keys.SYSTEM_SEALED,
    *identity_mfa.SYSTEM_SEALED,
    *mail_queue_module.SYSTEM_SEALED,
    *access_invitations.SYSTEM_SEALED,
)
DATA_DIR_MODE = 0o700
DATABASE_FILE_MODE = 0o600
READINESS_TIMEOUT_SECONDS = 2


@dataclass
class Container:
    """Everything a request or a command needs, built once."""

    settings: Settings
    engine: Engine
    uow: UnitOfWork
    # The HTTP request path's transactions: the application role when database.app_url is set
    # (row-level security binds it), else the same engine as ``uow``. Jobs, the CLI and the
    # keyring keep the owner's ``uow``: they are the system context that spans tenants.
    request_engine: Engine
    request_uow: UnitOfWork
    clock: Clock
    key_provider: KeyProvider
    first_operator: FirstOperatorBootstrap
    keyring: Keyring
    audit_log: AuditLog
    # Read events in group commits; `record` blocks until durable (audit/batcher.py).
    read_audit: ReadAuditBatcher
    identity: Identity
    # The transport (SMTP or .eml files); requests queue mail in ``mail_queue`` instead, and
    # ``mail_dispatcher(container, holder)`` delivers it.
    outbox: Outbox
    mail_queue: SqlMailQueue
    backup: BackupService
    access: SqlAccess
    invitations: SqlInvitations
    # Tenant-bound API keys; identity revokes a user's keys through it (CredentialRevoker).
    api_keys: SqlApiKeys
    # Tenant settings, custom roles, break-glass grants, access reviews (issue 6).
    governance: Governance
    records: SqlRecords
    # Detection, audit verification and key management record security events here.
    security_events: SqlSecurityEvents
    # Lockout, blocked sources, new-device mail (issue 8); identity calls the guard at login.
    login_guard: SqlLoginGuard
    # The unlock and "this wasn't me" link flows (needs identity, so it is set after it).
    detection: Detection = field(init=False)


def build(settings: Settings, *, clock: Clock | None = None, create: bool = False) -> Container:
    clock = clock or SystemClock()
    engine = make_engine(settings.resolved_database_url, create=create)
    uow = UnitOfWork(engine)
    request_engine = _request_engine(settings, engine)
    key_provider = _key_provider(settings)
    # The keyring keeps its own short transactions on the same engine (see Keyring).
    keyring = Keyring(uow=uow, provider=key_provider, clock=clock)
    first_operator = FirstOperatorBootstrap(clock=clock)
    audit_log = AuditLog(pseudonymizer=keyring, clock=clock, settings=settings.audit)
    keyring.record_events_with(_key_event_recorder(audit_log))
    outbox = build_outbox(settings)
    mail_queue = SqlMailQueue(sealer=keyring)
    # Identity's read-only answers for access governance (second factors, review facts).
    directory = SqlUserDirectory(keys=keyring)
    security_events = SqlSecurityEvents(settings=settings.alerts, clock=clock)
    access = SqlAccess(
        keys=keyring,
        audit_log=audit_log,
        clock=clock,
        second_factors=directory,
        signals=security_events,
    )
    api_keys = SqlApiKeys(audit_log=audit_log, clock=clock)
    # Records are sealed under tenant data keys: rotation re-encrypts them, retirement counts them.
    keyring.register_target(RecordsReencryptionTarget(engine=engine))
    # System-sealed columns: system data-key rotation re-encrypts them, retirement counts them.
    for column, purpose in SYSTEM_SEALED_COLUMNS:
        keyring.register_system_column(
            SystemSealedColumn.of(column, purpose=purpose, engine=engine)
        )
    login_guard = SqlLoginGuard(
        settings=settings.detection,
        counters=Counters.from_settings(settings.rate_limits),
        keys=keyring,
        clock=clock,
        mail=mail_queue,
        events=SqlSecurityEvents(settings=settings.alerts, clock=clock),
        base_url=settings.base_url,
    )
    container = Container(
        login_guard=login_guard,
        settings=settings,
        engine=engine,
        uow=uow,
        request_engine=request_engine,
        # The owner is not bound by RLS: binding a context for it would only cost round trips.
        request_uow=UnitOfWork(request_engine, tenant_context=request_engine is not engine),
        clock=clock,
        key_provider=key_provider,
        first_operator=first_operator,
        keyring=keyring,
        audit_log=audit_log,
        read_audit=build_read_audit(settings, uow=uow, audit_log=audit_log),
        outbox=outbox,
        mail_queue=mail_queue,
        backup=build_backup(
            settings, engine=engine, uow=uow, keyring=keyring, audit_log=audit_log, clock=clock
        ),
        access=access,
        api_keys=api_keys,
        governance=build_governance(
            access=access, directory=directory, audit_log=audit_log, clock=clock
        ),
        records=SqlRecords(
            keys=keyring,
            audit_log=audit_log,
            clock=clock,
            settings=settings.records,
            # A record that fails to open was tampered with: alert, on the owner's connection.
            on_tamper=TamperAlarm(uow=uow, events=security_events),
        ),
        security_events=security_events,
        invitations=SqlInvitations(
            access=access,
            keys=keyring,
            outbox=mail_queue,
            clock=clock,
            base_url=settings.base_url,
        ),
        identity=build_identity(
            settings,
            keys=keyring,
            clock=clock,
            outbox=mail_queue,
            first_operator=first_operator,
            audit=AuditLogTrail(audit_log),
            credential_revokers=(api_keys,),
            guard=login_guard,
        ),
    )
    container.detection = Detection(
        accounts=container.identity,
        events=container.security_events,
        audit_log=audit_log,
        clock=clock,
    )
    return container


def _request_engine(settings: Settings, owner: Engine) -> Engine:
    app_url = settings.database.app_url
    if app_url is None:
        return owner
    return make_engine(app_url.get_secret_value())


def _key_provider(settings: Settings) -> KeyProvider:
    crypto = settings.crypto
    if crypto.provider == "pkcs11":
        pkcs11 = crypto.pkcs11
        if pkcs11.user_pin is None:  # settings refuse this; kept for the type checker
            raise StartupError("BASTION_CRYPTO__PKCS11__USER_PIN is required for provider pkcs11")
        return Pkcs11KeyProvider(
            module_path=pkcs11.module_path,
            token_label=pkcs11.token_label,
            key_label=pkcs11.key_label,
            user_pin=pkcs11.user_pin,
        )
    key_base64 = crypto.key_base64
    return LocalKeyProvider(
        key_file=settings.key_file,
        key_base64=key_base64.get_secret_value() if key_base64 else None,
    )


def build_read_audit(
    settings: Settings, *, uow: UnitOfWork, audit_log: AuditLog
) -> ReadAuditBatcher:
    """The read-audit batcher. It writes on the owner's ``uow``, not the request path's: one
    batch holds many tenants' events, which no single tenant context may write."""
    audit = settings.audit
    return ReadAuditBatcher(
        uow=uow,
        audit_log=audit_log,
        max_events=audit.read_batch_max_events,
        max_wait_seconds=audit.read_batch_max_wait_ms / 1000,
        timeout_seconds=audit.read_timeout_seconds,
    )


def build_backup(
    settings: Settings,
    *,
    engine: Engine,
    uow: UnitOfWork,
    keyring: Keyring,
    audit_log: AuditLog,
    clock: Clock,
) -> BackupService:
    """The backup service over the target the settings name (built on first use)."""
    backup = settings.backup

    def target() -> BackupTarget:
        if backup.target == "local":
            return LocalTarget(settings.backup_dir)
        access_key = backup.s3_access_key_id
        secret_key = backup.s3_secret_access_key
        client = s3_client(
            endpoint_url=backup.s3_endpoint_url,
            region=backup.s3_region,
            access_key_id=access_key.get_secret_value() if access_key else None,
            secret_access_key=secret_key.get_secret_value() if secret_key else None,
            timeout_seconds=backup.s3_timeout_seconds,
        )
        return S3Target(client, bucket=backup.s3_bucket or "", prefix=backup.s3_prefix)

    return BackupService(
        settings=backup,
        database_url=settings.resolved_database_url,
        staging_dir=settings.backup_staging_dir,
        target=target,
        engine=engine,
        uow=uow,
        keyring=keyring,
        audit_log=audit_log,
        clock=clock,
    )


def build_outbox(settings: Settings) -> Outbox:
    """The mail transport the settings name: .eml files in dev/test, SMTP otherwise."""
    mail = settings.mail
    if settings.mail_transport == "directory":
        return DirectoryOutbox(directory=settings.mail_dir, sender=mail.sender)
    if mail.smtp_host is None:
        raise StartupError("BASTION_MAIL__SMTP_HOST is required to send e-mail over SMTP")
    return SmtpOutbox(
        host=mail.smtp_host,
        port=mail.smtp_port,
        sender=mail.sender,
        security=mail.smtp_security,
        timeout_seconds=mail.smtp_timeout_seconds,
        username=mail.smtp_username,
        password=mail.smtp_password.get_secret_value() if mail.smtp_password else None,
    )


def mail_dispatcher(container: Container, *, holder: str) -> MailDispatcher:
    """Delivers ``container.mail_queue`` through the configured transport (see mail.delivery)."""
    mail = container.settings.mail
    return MailDispatcher(
        uow=container.uow,
        sealer=container.keyring,
        transport=container.outbox,
        clock=container.clock,
        holder=holder,
        retry=RetryPolicy(
            max_attempts=mail.outbox_max_attempts,
            base=timedelta(seconds=mail.outbox_retry_base_seconds),
            cap=timedelta(seconds=mail.outbox_retry_max_seconds),
        ),
    )


def build_identity(
    settings: Settings,
    *,
    keys: SystemKeys,
    clock: Clock,
    outbox: SqlMailQueue,
    first_operator: FirstOperatorBootstrap,
    audit: AuditTrail,
    credential_revokers: Sequence[CredentialRevoker] = (),
    guard: LoginGuard | None = None,
) -> SqlIdentity:
    identity = settings.identity
    hasher = PasswordHasher(
        Argon2Parameters(
            memory_kib=identity.argon2_memory_kib,
            time_cost=identity.argon2_time_cost,
            parallelism=identity.argon2_parallelism,
        )
    )
    return SqlIdentity(
        settings=identity,
        hasher=hasher,
        keys=keys,
        clock=clock,
        outbox=outbox,
        audit=audit,
        bootstrap=first_operator,
        base_url=settings.base_url,
        credential_revokers=credential_revokers,
        guard=guard,
        webauthn_origin=settings.webauthn_origin,
    )


@dataclass(frozen=True, slots=True)
class InitReport:
    created_key: bool
    created_certificate: bool
    revision_before: str | None
    revision_after: str


def initialise(settings: Settings) -> InitReport:
    """Create the data directory, master key, TLS certificate and schema; never overwrites."""
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    os.chmod(settings.data_dir, DATA_DIR_MODE)
    created_key = False
    if settings.crypto.provider == "local" and settings.crypto.key_base64 is None:
        created_key = create_key_file(settings.key_file)
    created_certificate = False
    if settings.tls.cert_file is None and settings.tls.key_file is None:
        created_certificate = write_self_signed_certificate(
            settings.cert_file, settings.cert_key_file
        )
    container = build(settings, create=True)
    try:
        container.key_provider.check()
        before, after = _guard_database(lambda: migrate(container), settings)
        # First run: system data key, MAC root and signing key. Later runs: prove the configured
        # master key is the keyring's before anything else happens.
        created_keys = _guard_database(container.keyring.initialise, settings)
        if created_keys:
            with container.uow.begin() as session:
                record_system_event(
                    container, session, "system.initialised", data_dir=str(settings.data_dir)
                )
        database_file = sqlite_path(settings.resolved_database_url)
        if database_file is not None:
            os.chmod(database_file, DATABASE_FILE_MODE)
    finally:
        container.engine.dispose()
    return InitReport(created_key, created_certificate, before, after)


def record_system_event(
    container: Container, session: Session, action: str, **details: str | int
) -> None:
    """Append an operator-level action (init, migration, bootstrap link) to the system chain."""
    container.audit_log.append(session, AuditEvent(action=action, details=details))


def migrate(container: Container) -> tuple[str | None, str]:
    """Apply pending migrations; a migration that changed the schema is audited once it exists."""
    before, after = upgrade_to_head(container.engine)
    if before != after:
        with container.uow.begin() as session:
            record_system_event(
                container, session, "schema.migrated", before=before or "empty", after=after
            )
    return before, after


def issue_bootstrap_link(container: Container) -> IssuedLink:
    """A new first-operator link (earlier ones stop working), audited."""
    with container.uow.begin() as session:
        issued = container.first_operator.issue(session)
        _record_link(container, session, issued)
    return issued


def issue_first_start_link(container: Container) -> IssuedLink | None:
    """The first-operator link, only if none was ever issued (the very first start), audited."""
    with container.uow.begin() as session:
        issued = container.first_operator.issue_if_first_start(session)
        if issued is not None:
            _record_link(container, session, issued)
    return issued


def _record_link(container: Container, session: Session, issued: IssuedLink) -> None:
    record_system_event(
        container, session, "bootstrap.link_issued", expires_at=issued.expires_at.isoformat()
    )


def audit_keys_for(public_key: bytes) -> Keys:
    """Verification keys for audit checkpoints signed by ``public_key`` (raw Ed25519)."""
    return Keys(public_keys={key_id_for(public_key): public_key}, verify_signature=_verify_ed25519)


def _verify_ed25519(key: bytes, message: bytes, signature: bytes) -> bool:
    # The one Ed25519 verification in Bastion lives in crypto (the only hazmat importer).
    return verify_signature(key, message=message, signature=signature)


def checkpointer(container: Container) -> Checkpointer:
    settings = container.settings
    return Checkpointer(
        engine=container.engine,
        signer=container.keyring,
        clock=container.clock,
        settings=settings.audit,
        checkpoint_dir=settings.audit_checkpoint_dir,
    )


def alert_delivery(container: Container) -> AlertDelivery:
    """The alert outbox worker's engine: the sinks the settings name, over an HTTP client that
    follows no redirects and ignores proxy variables (only settings read the environment)."""
    alerts = container.settings.alerts
    client = httpx.Client(follow_redirects=False, trust_env=False)
    sinks = build_sinks(alerts.sinks, outbox=container.outbox, client=client, clock=container.clock)
    return AlertDelivery(
        uow=container.uow,
        settings=alerts,
        sinks=sinks,
        clock=container.clock,
        on_close=client.close,
    )


def deliver_alerts(container: Container) -> DeliveryReport:
    """One pass over the due alert deliveries (the ``alerts.deliver`` job)."""
    delivery = alert_delivery(container)
    try:
        return delivery.run()
    finally:
        delivery.close()


def verify_audit_and_alert(container: Container) -> VerifyReport:
    """The scheduled audit verification; each damaged chain also becomes a CRITICAL
    ``audit.chain_damaged`` security event (a tenant's chain: visible to that tenant too)."""
    report = run_scheduled_verification(audit_verifier(container))
    if report.damaged:
        with container.uow.begin() as session:
            for chain in report.damaged:
                damage = chain.damage
                container.security_events.record(
                    session,
                    SecurityEvent(
                        type="audit.chain_damaged",
                        severity=Severity.CRITICAL,
                        subject=f"audit-chain:{chain.chain}",
                        tenant_id=None if chain.chain == SYSTEM_CHAIN else chain.chain,
                        details={
                            "chain": chain.chain,
                            "first_bad_seq": damage.seq if damage else None,
                            "kind": damage.kind.value if damage else None,
                        },
                    ),
                )
    return report


def audit_verifier(container: Container) -> AuditVerifier:
    """Checks every chain against the installation's own signing key (derived under the master
    key, not read from the database, which an administrator could swap)."""
    return AuditVerifier(
        engine=container.engine,
        keys=audit_keys_for(container.keyring.signing_public_key()),
        checkpoint_dir=container.settings.audit_checkpoint_dir,
    )


def _key_event_recorder(audit_log: AuditLog) -> KeyEventRecorder:
    def record(
        session: Session, *, action: str, tenant: str | None, details: Mapping[str, str | int]
    ) -> None:
        audit_log.append(session, AuditEvent(action=action, tenant_id=tenant, details=details))

    return record


def _describe_database_failure(exc: Exception, settings: Settings) -> str:
    path = sqlite_path(settings.resolved_database_url)
    original = getattr(exc, "orig", exc)
    if path is not None:
        if isinstance(original, sqlite3.DatabaseError) and "not a database" in str(original):
            return f"database file {path} is not a SQLite database (corrupt or overwritten)"
        if not path.exists():
            return f"database file {path} does not exist; run `bastion init`"
        return f"database file {path} cannot be opened: {original}"
    return f"database unreachable: {str(original).strip().splitlines()[0]}"


def _guard_database(action: Callable[[], T], settings: Settings) -> T:
    try:
        return action()
    except (OperationalError, DBAPIError, sqlite3.DatabaseError) as exc:
        raise StartupError(_describe_database_failure(exc, settings)) from None


def preflight(container: Container) -> None:
    """Refuse to serve unless keys, certificate and schema are usable (one-line StartupError)."""
    settings = container.settings
    container.key_provider.check()
    for label, path in (("certificate", settings.cert_file), ("key", settings.cert_key_file)):
        if not path.is_file():
            raise StartupError(
                f"TLS {label} file {path} is missing; run `bastion init`, or set "
                f"BASTION_TLS__CERT_FILE and BASTION_TLS__KEY_FILE"
            )
    _guard_database(lambda: assert_schema_current(container.engine), settings)
    # A wrong master key must stop the process here, before it writes anything with it.
    _guard_database(container.keyring.verify_master_key, settings)
    if settings.database.app_url is not None:
        # Fail closed: an application role that RLS would not bind is refused, not trusted.
        problems = _guard_database(lambda: app_role_problems(container.request_engine), settings)
        if problems:
            raise StartupError("database.app_url: " + "; ".join(problems))


def readiness_problems(container: Container) -> dict[str, str]:
    """What stops this process from serving right now; empty when ready."""
    problems: dict[str, str] = {}
    try:
        container.key_provider.check()
        # The key this process holds must still be the keyring's: after a master-key rotation
        # run against a live server, say so here rather than fail on the next cache miss.
        _guard_database(container.keyring.verify_master_key, container.settings)
    except CryptoError as exc:
        problems["keys"] = str(exc)
    except StartupError:
        pass  # the database itself is unusable: the probe below reports that
    try:
        _probe_database(container)
    except StartupError as exc:
        problems["database"] = str(exc)
    return problems


def _probe_database(container: Container) -> None:
    settings = container.settings
    path = sqlite_path(settings.resolved_database_url)
    if path is not None:
        # A fresh connection each probe: a pooled one keeps a deleted or unreadable file open.
        def probe_sqlite() -> None:
            connection = sqlite3.connect(
                f"file:{path}?mode=rw", uri=True, timeout=READINESS_TIMEOUT_SECONDS
            )
            try:
                connection.execute("SELECT version_num FROM alembic_version").fetchall()
            finally:
                connection.close()

        _guard_database(probe_sqlite, settings)
        return

    # Requests also need the application role's connection (database.app_url), when it is set.
    engines = {id(engine): engine for engine in (container.engine, container.request_engine)}

    def probe_server() -> None:
        for engine in engines.values():
            with engine.connect() as connection:
                connection.execute(text("SELECT version_num FROM alembic_version")).all()

    _guard_database(probe_server, settings)
