"""The one settings object.

Built once at the edge (CLI callback, ``create_app``) and passed down; nothing else in Bastion
reads the environment. Sources, strongest first: explicit arguments, ``BASTION_*`` environment
variables (``__`` separates nested keys, e.g. ``BASTION_HTTP__MAX_BODY_BYTES``), then an optional
TOML file named by ``BASTION_CONFIG``. Unknown keys are refused everywhere, so a typo never silently
falls back to a default.
"""

from __future__ import annotations

import json
import os
import tomllib
from collections.abc import Mapping
from datetime import time
from ipaddress import IPv4Network, IPv6Network, ip_address
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    model_validator,
)
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    SettingsError,
    TomlConfigSettingsSource,
)

from bastion.errors import ConfigError

ENV_PREFIX = "BASTION_"
NESTED_DELIMITER = "__"
CONFIG_FILE_VARIABLE = f"{ENV_PREFIX}CONFIG"
MIB = 1024 * 1024
# Alert webhook keys: 32 random characters carry well over 128 bits.
MIN_WEBHOOK_SECRET_CHARS = 32


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _network_as_text(value: object) -> object:
    """CIDR text (or an ipaddress network) only: pydantic hands anything to ``ipaddress``, which
    reads an integer as an address and warns about (and will refuse) a boolean."""
    if isinstance(value, IPv4Network | IPv6Network | str):
        return value
    raise ValueError("a network must be written as text, e.g. 10.0.0.0/8 or fd00::/8")


Network = Annotated[IPv4Network | IPv6Network, BeforeValidator(_network_as_text)]


class HttpSettings(_Section):
    """The HTTP edge: body limit and which peers may speak for the client address."""

    max_body_bytes: int = Field(default=MIB, ge=1024, le=64 * MIB)
    # X-Forwarded-For is believed only when the direct peer is one of these networks.
    trusted_proxies: tuple[Network, ...] = ()
    hsts_max_age_seconds: int = Field(default=63_072_000, ge=0)


class TlsSettings(_Section):
    """Certificate and key paths; default to the self-signed pair `bastion init` writes."""

    cert_file: Path | None = None
    key_file: Path | None = None


class Pkcs11Settings(_Section):
    """The PKCS#11 token holding the master key, when ``crypto.provider`` is ``pkcs11``."""

    # Debian's softhsm2 package installs this path; an HSM vendor's library goes here instead.
    module_path: Path = Path("/usr/lib/softhsm/libsofthsm2.so")
    token_label: str = Field(default="bastion", min_length=1, max_length=32)
    key_label: str = Field(default="bastion-kek", min_length=1)
    user_pin: SecretStr | None = None


class CryptoSettings(_Section):
    """Where the master key (KEK) lives."""

    provider: Literal["local", "pkcs11"] = "local"
    key_file: Path | None = None
    # For containers: the 32-byte key as base64, instead of a file.
    key_base64: SecretStr | None = None
    pkcs11: Pkcs11Settings = Pkcs11Settings()

    @model_validator(mode="after")
    def _pkcs11_has_a_pin(self) -> CryptoSettings:
        # Refused at start-up rather than at the first wrap: a token without a PIN is unusable.
        pin = self.pkcs11.user_pin
        if self.provider == "pkcs11" and (pin is None or not pin.get_secret_value()):
            raise ValueError("crypto.pkcs11.user_pin is required when crypto.provider is pkcs11")
        return self


class JobsSettings(_Section):
    """The in-process scheduler (docs/operations.md, "Jobs"). Off: run `bastion jobs run` from
    cron instead; either way a database lease keeps one run at a time across instances."""

    enabled: bool = True
    audit_checkpoint_interval_seconds: int = Field(default=60, ge=5, le=86_400)
    audit_verify_interval_seconds: int = Field(default=3_600, ge=60, le=7 * 86_400)
    daily_backup: bool = True


class DatabaseSettings(_Section):
    """PostgreSQL's second connection (docs/operations.md, "PostgreSQL roles").

    ``database_url`` is the owner: migrations, jobs and the CLI use it. ``app_url``, when set,
    is what the HTTP server's requests connect as: a role that owns no table and has neither
    SUPERUSER nor BYPASSRLS, so row-level security binds it (checked at start-up).
    """

    app_url: SecretStr | None = None


class LogSettings(_Section):
    level: Literal["debug", "info", "warning", "error"] = "info"
    json_output: bool = True


class AuditSettings(_Section):
    """Audit checkpoints: how often, where they are exported, and an optional webhook."""

    # A checkpoint is due after this many new events or this many minutes, whichever comes first.
    checkpoint_every_events: int = Field(default=1000, ge=1, le=1_000_000)
    checkpoint_every_minutes: int = Field(default=10, ge=1, le=24 * 60)
    # Default: <data_dir>/audit-checkpoints. Point it at storage the database admin cannot write.
    checkpoint_dir: Path | None = None
    webhook_url: str | None = None
    webhook_timeout_seconds: float = Field(default=5.0, gt=0, le=60)
    max_details_bytes: int = Field(default=4096, ge=256, le=64 * 1024)
    # Read events share group commits (audit/batcher.py): up to this many events a commit, a
    # batch waits at most this long for latecomers, and a read fails (503) if its event is not
    # durable within the timeout.
    read_batch_max_events: int = Field(default=256, ge=1, le=10_000)
    read_batch_max_wait_ms: float = Field(default=2.0, ge=0, le=100)
    read_timeout_seconds: float = Field(default=5.0, gt=0, le=60)

    @model_validator(mode="after")
    def _webhook_is_http(self) -> AuditSettings:
        if self.webhook_url is not None and not self.webhook_url.startswith(
            ("https://", "http://")
        ):
            raise ValueError("webhook_url must be an http(s) URL")
        return self


class DetectionSettings(_Section):
    """Login-failure tracking, lockout, credential-stuffing blocks, new-device e-mails
    (docs/detection.md). Counters live where ``rate_limits.storage_url`` says."""

    enabled: bool = True
    # Failed logins of one account inside the window that lock it (OWASP: 3-10 before a lock).
    account_failure_limit: int = Field(default=10, ge=2, le=1000)
    account_window_seconds: int = Field(default=15 * 60, ge=10, le=86_400)
    lockout_seconds: int = Field(default=15 * 60, ge=1, le=7 * 86_400)
    # Failed logins from one source inside the window, whatever the accounts, that block it.
    source_failure_limit: int = Field(default=100, ge=2, le=100_000)
    source_window_seconds: int = Field(default=15 * 60, ge=10, le=86_400)
    # Credential stuffing: this many distinct accounts failing from one source inside the window.
    stuffing_account_limit: int = Field(default=20, ge=2, le=10_000)
    stuffing_window_seconds: int = Field(default=10 * 60, ge=10, le=86_400)
    block_seconds: int = Field(default=60 * 60, ge=1, le=30 * 86_400)
    # Progressive delay from an account's second failure on: base * 2^(failures - 2), capped.
    delay_base_ms: int = Field(default=100, ge=0, le=10_000)
    delay_max_ms: int = Field(default=1_600, ge=0, le=30_000)
    new_device_email: bool = True
    # Lifetime of the e-mailed unlock and "this wasn't me" links.
    unlock_link_seconds: int = Field(default=24 * 3600, ge=60, le=7 * 86_400)
    report_link_seconds: int = Field(default=7 * 86_400, ge=60, le=30 * 86_400)


class RateLimitSettings(_Section):
    """Per-endpoint-class request limits (``limits`` notation, e.g. ``20/minute``), per client
    address and, with a credential, per credential too. ``storage_url``: None keeps counters in
    this process; ``redis://host:port/db`` shares them (and detection's) between processes."""

    enabled: bool = True
    storage_url: SecretStr | None = None
    # Sliding window counter: O(1) memory per key, the moving window's accuracy within ~1 bucket.
    strategy: Literal["sliding-window-counter", "moving-window"] = "sliding-window-counter"
    # Redis must answer within this, or the call counts as "storage down" (fail closed on auth).
    storage_timeout_seconds: float = Field(default=0.5, gt=0, le=10)
    # Prefix of every counter key in a shared Redis (several installations, or tests, in one).
    key_prefix: str = Field(default="bastion", pattern=r"^[A-Za-z0-9_.:-]{1,64}$")
    # Per client address (and per credential): generous for API clients behind one address,
    # strict for the brute-force target.
    auth: str = "30/minute"
    write: str = "1200/minute"
    read: str = "6000/minute"
    default: str = "1200/minute"

    @model_validator(mode="after")
    def _parseable(self) -> RateLimitSettings:
        from limits import parse  # noqa: PLC0415 - only the validator needs the parser

        for name in ("auth", "write", "read", "default"):
            try:
                parse(getattr(self, name))
            except ValueError:
                raise ValueError(f"rate_limits.{name}: not a limit like '30/minute'") from None
        url = self.storage_url.get_secret_value() if self.storage_url else None
        if url is not None and not url.startswith(("redis://", "rediss://", "memory://")):
            raise ValueError("rate_limits.storage_url must be redis://, rediss:// or memory://")
        return self


class IdentitySettings(_Section):
    """Accounts, passwords and sessions (see docs/identity.md for the reasoning behind each)."""

    # "invitation": sign-up is refused until invitations (access issue) exist.
    signup: Literal["open", "invitation"] = "open"
    # argon2id, OWASP Password Storage Cheat Sheet minimum: m=19 MiB, t=2, p=1 (~30 ms here).
    argon2_memory_kib: int = Field(default=19_456, ge=8, le=4 * 1024 * 1024)
    argon2_time_cost: int = Field(default=2, ge=1, le=50)
    argon2_parallelism: int = Field(default=1, ge=1, le=16)
    password_min_length: int = Field(default=12, ge=8, le=64)
    password_max_length: int = Field(default=256, ge=64, le=1024)
    # zxcvbn score (0-4) a new password must reach.
    password_min_score: int = Field(default=3, ge=0, le=4)
    password_history: int = Field(default=5, ge=0, le=24)
    # Context words (ASVS V6.2.11) a password must not be built from, besides the user's own data.
    password_context_words: tuple[str, ...] = ("bastion",)
    # NIST SP 800-63B AAL2 reauthentication: 30 min idle, 12 h absolute (docs/identity.md).
    session_idle_timeout_seconds: int = Field(default=30 * 60, ge=1, le=7 * 24 * 3600)
    session_absolute_lifetime_seconds: int = Field(default=12 * 3600, ge=60, le=30 * 24 * 3600)
    email_verification_lifetime_seconds: int = Field(default=24 * 3600, ge=60, le=7 * 24 * 3600)
    password_reset_lifetime_seconds: int = Field(default=30 * 60, ge=60, le=30 * 60)
    # Sensitive actions (turning a second factor off...) need one proved this recently.
    step_up_seconds: int = Field(default=5 * 60, ge=30, le=3600)
    # WebAuthn relying party: passkeys are bound to this domain (the site's host name, or a
    # registrable suffix of it) and accepted only from this origin (default: "https://" +
    # rp_id + ":" + port, i.e. public_url's scheme and host in production).
    webauthn_rp_id: str = Field(default="localhost", min_length=1, max_length=253)
    webauthn_rp_name: str = Field(default="Bastion", min_length=1, max_length=64)
    webauthn_origin: str | None = None

    @model_validator(mode="after")
    def _coherent(self) -> IdentitySettings:
        if self.session_idle_timeout_seconds > self.session_absolute_lifetime_seconds:
            raise ValueError("session_idle_timeout_seconds exceeds the absolute lifetime")
        if self.password_min_length > self.password_max_length:
            raise ValueError("password_min_length exceeds password_max_length")
        return self


class MailSettings(_Section):
    """Outgoing e-mail. ``directory`` writes .eml files (dev/test default); ``smtp`` sends."""

    # None: "directory" in dev and test unless smtp_host is set, "smtp" in prod.
    transport: Literal["directory", "smtp"] | None = None
    sender: str = "Bastion <bastion@localhost>"
    directory: Path | None = None
    smtp_host: str | None = None
    smtp_port: int = Field(default=587, ge=1, le=65535)
    # "starttls" (port 587), "tls" (implicit, port 465); "none" only for loopback relays.
    smtp_security: Literal["starttls", "tls", "none"] = "starttls"
    smtp_username: str | None = None
    smtp_password: SecretStr | None = None
    smtp_timeout_seconds: float = Field(default=10.0, gt=0, le=120)
    # The durable outbox (docs/identity.md, "Mail"): requests only queue; a worker in each
    # `bastion serve` process delivers (woken at once by a commit in the same process, else
    # every outbox_poll_seconds), or `bastion jobs run mail.deliver` from cron.
    deliver_in_process: bool = True
    outbox_poll_seconds: float = Field(default=5.0, ge=0.1, le=300)
    outbox_max_attempts: int = Field(default=12, ge=1, le=100)
    # Retry n waits retry_base * 2^(n-1), at most retry_max: ~6 h in all with the defaults.
    outbox_retry_base_seconds: float = Field(default=30.0, gt=0, le=3600)
    outbox_retry_max_seconds: float = Field(default=3600.0, gt=0, le=86_400)


class RecordsSettings(_Section):
    """Collections and encrypted records (docs/records.md)."""

    # A record is its compact JSON encoding (UTF-8); larger ones are refused with 413.
    max_record_bytes: int = Field(default=256 * 1024, ge=1024, le=16 * MIB)
    # Deleted records stay (sealed, unreadable through the API) this long, then the
    # records.purge job removes them for good.
    purge_grace_seconds: int = Field(default=30 * 86_400, ge=0, le=366 * 86_400)
    default_page_size: int = Field(default=50, ge=1, le=200)
    max_page_size: int = Field(default=200, ge=1, le=1000)
    purge_interval_seconds: int = Field(default=3_600, ge=60, le=86_400)


class BackupSettings(_Section):
    """Encrypted backups (docs/backups.md): where they go, when, and how long they are kept."""

    target: Literal["local", "s3"] = "local"
    # local target; default <data_dir>/backups. Put it on another disk (or use s3) in production.
    directory: Path | None = None
    s3_bucket: str | None = None
    s3_prefix: str = Field(default="bastion/", max_length=512)
    # Any S3-compatible service (MinIO, Ceph, R2...); None is AWS itself.
    s3_endpoint_url: str | None = None
    s3_region: str | None = None
    # None: boto3's own credential chain (instance role, shared config).
    s3_access_key_id: SecretStr | None = None
    s3_secret_access_key: SecretStr | None = None
    s3_timeout_seconds: float = Field(default=60.0, gt=0, le=600)
    # The daily job's time of day (UTC), for the scheduler or a cron entry.
    daily_at: time = time(3, 0)
    keep_daily: int = Field(default=7, ge=1, le=366)
    keep_weekly: int = Field(default=4, ge=0, le=520)
    keep_monthly: int = Field(default=12, ge=0, le=1200)
    # P18: no good backup newer than this raises the backup.stale alert (24 h plus slack).
    alert_after_hours: int = Field(default=26, ge=1, le=24 * 31)
    # A backup without a manifest this old is an interrupted run: prune deletes it.
    incomplete_after_hours: int = Field(default=6, ge=1, le=24 * 7)
    # Level 1: on Bastion's data (half sealed, incompressible) it stores within 1 % of level 3
    # at twice the speed (bench/bench_backup.py); raise it to trade speed for size.
    zstd_level: int = Field(default=1, ge=1, le=19)
    # 0: one compression thread per CPU.
    zstd_threads: int = Field(default=0, ge=0, le=64)
    # Scratch space for the snapshot file and restores; default <data_dir>/backup-staging.
    staging_dir: Path | None = None
    # Where pg_dump/pg_restore live; default /usr/lib/postgresql/<server major>/bin.
    pg_bin_dir: Path | None = None
    # PostgreSQL installations: an expendable database the restore drill restores into.
    drill_database_url: SecretStr | None = None

    @model_validator(mode="after")
    def _s3_is_complete(self) -> BackupSettings:
        if self.target == "s3" and not self.s3_bucket:
            raise ValueError("backup.s3_bucket is required when backup.target is s3")
        if (self.s3_access_key_id is None) != (self.s3_secret_access_key is None):
            raise ValueError("set both backup.s3_access_key_id and backup.s3_secret_access_key")
        return self


SeverityName = Literal["info", "low", "medium", "high", "critical"]


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ip_address(host).is_loopback
    except ValueError:
        return False


class _AlertSink(_Section):
    """What every alert sink has: a unique name and the lowest severity it receives."""

    name: str = Field(pattern=r"^[a-z0-9][a-z0-9_-]{0,31}$")
    min_severity: SeverityName = "high"


class WebhookSinkSettings(_AlertSink):
    """POST of each event as JSON, signed with HMAC-SHA256 (docs/alerts.md, "Webhooks").

    https:// only; http:// is accepted for a loopback host alone (a local relay, tests), where
    the traffic never leaves the machine."""

    kind: Literal["webhook"] = "webhook"
    url: str = Field(max_length=2048)
    # The key shared with the receiver; random, at least 32 characters.
    secret: SecretStr
    timeout_seconds: float = Field(default=5.0, gt=0, le=30)

    @model_validator(mode="after")
    def _safe_url_and_secret(self) -> WebhookSinkSettings:
        parts = urlsplit(self.url)
        if parts.scheme not in ("https", "http") or not parts.hostname:
            raise ValueError("alert webhook url must be an https:// URL")
        if parts.scheme == "http" and not _is_loopback(parts.hostname):
            raise ValueError("alert webhook url must be https:// (http:// only to loopback)")
        if len(self.secret.get_secret_value()) < MIN_WEBHOOK_SECRET_CHARS:
            raise ValueError("alert webhook secret must be at least 32 characters")
        return self


class EmailSinkSettings(_AlertSink):
    """An e-mail per event to these addresses, through the mail transport (``mail``)."""

    kind: Literal["email"] = "email"
    recipients: tuple[str, ...] = Field(min_length=1, max_length=20)


class StdoutSinkSettings(_AlertSink):
    """One JSON line per event on standard output (logs go to standard error)."""

    kind: Literal["stdout"] = "stdout"


class SyslogSinkSettings(_AlertSink):
    """One JSON line per event to a syslog daemon (RFC 3164 framing, as the stdlib sends it)."""

    kind: Literal["syslog"] = "syslog"
    host: str = "127.0.0.1"
    port: int = Field(default=514, ge=1, le=65535)
    protocol: Literal["udp", "tcp"] = "udp"
    facility: Literal["auth", "authpriv", "daemon", "user", "local0", "local7"] = "authpriv"


AlertSinkSettings = Annotated[
    WebhookSinkSettings | EmailSinkSettings | StdoutSinkSettings | SyslogSinkSettings,
    Field(discriminator="kind"),
]


class AlertsSettings(_Section):
    """Alert sinks, routed by severity, and how failed deliveries are retried (docs/alerts.md).

    Sinks are a JSON list in the environment, e.g. ``BASTION_ALERTS__SINKS='[{"kind": "stdout",
    "name": "console", "min_severity": "medium"}]'``."""

    sinks: tuple[AlertSinkSettings, ...] = ()
    # Attempt n waits retry_base * 2^(n-1) seconds (capped at retry_max) after failure n.
    max_attempts: int = Field(default=10, ge=1, le=50)
    retry_base_seconds: float = Field(default=30.0, gt=0, le=3600)
    retry_max_seconds: float = Field(default=3600.0, gt=0, le=86_400)
    # `bastion serve` runs the delivery worker; off: `bastion jobs run alerts.deliver` from cron.
    deliver_in_process: bool = True
    # How often that worker looks for due deliveries.
    poll_seconds: float = Field(default=2.0, gt=0, le=300)
    batch_size: int = Field(default=50, ge=1, le=1000)

    @model_validator(mode="after")
    def _coherent(self) -> AlertsSettings:
        names = [sink.name for sink in self.sinks]
        if len(names) != len(set(names)):
            raise ValueError("alert sink names must be unique")
        if self.retry_base_seconds > self.retry_max_seconds:
            raise ValueError("alerts.retry_base_seconds exceeds alerts.retry_max_seconds")
        return self


class MetricsSettings(_Section):
    """The Prometheus listener (plain HTTP, GET /metrics), apart from the API port. Off by
    default; keep it on loopback or a private network (docs/alerts.md, "Metrics")."""

    enabled: bool = False
    host: str = "127.0.0.1"
    port: int = Field(default=9464, ge=1, le=65535)


class Settings(BaseSettings):
    """Everything Bastion can be told. Paths default to places under ``data_dir``."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        env_nested_delimiter=NESTED_DELIMITER,
        extra="forbid",
        frozen=True,
        validate_default=True,
    )

    env: Literal["dev", "test", "prod"] = "dev"
    data_dir: Path = Path("var")
    host: str = "127.0.0.1"
    port: int = Field(default=8443, ge=1, le=65535)
    public_url: str | None = None
    database_url: SecretStr | None = None
    database: DatabaseSettings = DatabaseSettings()
    http: HttpSettings = HttpSettings()
    tls: TlsSettings = TlsSettings()
    crypto: CryptoSettings = CryptoSettings()
    log: LogSettings = LogSettings()
    jobs: JobsSettings = JobsSettings()
    identity: IdentitySettings = IdentitySettings()
    mail: MailSettings = MailSettings()
    audit: AuditSettings = AuditSettings()
    detection: DetectionSettings = DetectionSettings()
    rate_limits: RateLimitSettings = RateLimitSettings()
    backup: BackupSettings = BackupSettings()
    alerts: AlertsSettings = AlertsSettings()
    metrics: MetricsSettings = MetricsSettings()
    records: RecordsSettings = RecordsSettings()

    @model_validator(mode="after")
    def _refuse_insecure_production(self) -> Settings:
        if self.env == "prod" and self.public_url and not self.public_url.startswith("https://"):
            raise ValueError("public_url must be https:// in prod")
        webhook = self.audit.webhook_url
        if self.env == "prod" and webhook and not webhook.startswith("https://"):
            raise ValueError("audit.webhook_url must be https:// in prod")
        return self

    @model_validator(mode="after")
    def _app_role_is_postgresql(self) -> Settings:
        app_url = self.database.app_url
        if app_url is None:
            return self
        owner = self.database_url.get_secret_value() if self.database_url else ""
        if not owner.startswith("postgres") or not app_url.get_secret_value().startswith(
            "postgres"
        ):
            raise ValueError("database.app_url needs a PostgreSQL database_url and app_url")
        return self

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,  # noqa: ARG003 - no .env files: one source of truth
        file_secret_settings: PydanticBaseSettingsSource,  # noqa: ARG003 - not used
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        toml_file = _config_file_from(os.environ)
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        if toml_file is not None:
            sources.append(TomlConfigSettingsSource(settings_cls, toml_file=toml_file))
        return tuple(sources)

    # Derived locations: one place decides where each file lives.
    @property
    def resolved_database_url(self) -> str:
        if self.database_url is not None:
            return self.database_url.get_secret_value()
        return f"sqlite:///{self.data_dir / 'bastion.db'}"

    @property
    def key_file(self) -> Path:
        return self.crypto.key_file or self.data_dir / "master.key"

    @property
    def cert_file(self) -> Path:
        return self.tls.cert_file or self.data_dir / "tls" / "cert.pem"

    @property
    def cert_key_file(self) -> Path:
        return self.tls.key_file or self.data_dir / "tls" / "key.pem"

    @property
    def audit_checkpoint_dir(self) -> Path:
        return self.audit.checkpoint_dir or self.data_dir / "audit-checkpoints"

    @property
    def mail_transport(self) -> Literal["directory", "smtp"]:
        if self.mail.transport is not None:
            return self.mail.transport
        if self.env in ("dev", "test") and self.mail.smtp_host is None:
            return "directory"
        return "smtp"

    @property
    def mail_dir(self) -> Path:
        return self.mail.directory or self.data_dir / "mail"

    @property
    def backup_dir(self) -> Path:
        return self.backup.directory or self.data_dir / "backups"

    @property
    def backup_staging_dir(self) -> Path:
        return self.backup.staging_dir or self.data_dir / "backup-staging"

    @property
    def webauthn_origin(self) -> str:
        """The one origin passkey ceremonies are accepted from."""
        configured = self.identity.webauthn_origin
        if configured:
            return configured.rstrip("/")
        if self.public_url:
            scheme, _, rest = self.public_url.partition("://")
            return f"{scheme}://{rest.split('/', 1)[0]}"
        return f"https://{self.identity.webauthn_rp_id}:{self.port}"

    @property
    def base_url(self) -> str:
        if self.public_url:
            return self.public_url.rstrip("/")
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"https://{host}:{self.port}"


def _config_file_from(environ: Mapping[str, str]) -> Path | None:
    value = environ.get(CONFIG_FILE_VARIABLE)
    if not value:
        return None
    path = Path(value)
    if not path.is_file():
        raise ConfigError(f"{CONFIG_FILE_VARIABLE}: no such file: {path}")
    return path


def _unknown_environment_keys(environ: Mapping[str, str]) -> list[str]:
    """Names of BASTION_* variables that match no setting (pydantic-settings ignores them)."""
    unknown = []
    for name in environ:
        if not name.startswith(ENV_PREFIX) or name == CONFIG_FILE_VARIABLE:
            continue
        path = name[len(ENV_PREFIX) :].lower().split(NESTED_DELIMITER)
        model: type[BaseModel] | None = Settings
        for part in path:
            field = model.model_fields.get(part) if model is not None else None
            if field is None:
                unknown.append(name)
                break
            annotation = field.annotation
            model = (
                annotation
                if isinstance(annotation, type) and issubclass(annotation, BaseModel)
                else None
            )
    return sorted(unknown)


def _describe(error: Mapping[str, Any], *, from_env: Mapping[str, str]) -> str:
    location = [str(part) for part in error["loc"]]
    dotted = ".".join(location) or "settings"
    env_name = ENV_PREFIX + NESTED_DELIMITER.join(location).upper()
    name = env_name if env_name in from_env else dotted
    if error["type"] == "extra_forbidden":
        return f"{name}: unknown setting"
    return f"{name}: {error['msg']}"


def load_settings(**overrides: Any) -> Settings:
    """Build the settings from the environment (and TOML file), or raise ConfigError.

    The error message names every offending key; the CLI turns it into exit status 2.
    """
    environ = dict(os.environ)
    unknown = _unknown_environment_keys(environ)
    if unknown:
        raise ConfigError("; ".join(f"{name}: unknown setting" for name in unknown))
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        problems = [_describe(e, from_env=environ) for e in exc.errors()]
        raise ConfigError("; ".join(problems)) from None
    except SettingsError as exc:
        # pydantic-settings only names the top-level field; find the variable that is not JSON.
        culprits = _malformed_json_variables(environ) or [str(exc).split("\n", 1)[0]]
        raise ConfigError("; ".join(culprits)) from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(
            f"{CONFIG_FILE_VARIABLE}: {environ.get(CONFIG_FILE_VARIABLE)} is not valid TOML: {exc}"
        ) from None


def _malformed_json_variables(environ: Mapping[str, str]) -> list[str]:
    culprits = []
    for name, value in sorted(environ.items()):
        if name.startswith(ENV_PREFIX) and value.lstrip()[:1] in ("[", "{"):
            try:
                json.loads(value)
            except ValueError:
                culprits.append(f"{name}: not valid JSON")
    return culprits
