"""PostgreSQL row-level security on every tenant-owned table (a no-op on SQLite).

The application's scoping (every repository query names its tenant) is the first wall; these
policies are the second. They bind only roles that neither own the tables nor have BYPASSRLS:
the *application role* the HTTP server connects as (``database.app_url``, docs/operations.md).
The owner (the role that runs migrations, ``bastion migrate``, the jobs and the CLI) is exempt,
as PostgreSQL exempts table owners unless FORCE ROW LEVEL SECURITY is set. FORCE is left off on
purpose: the owner is the system context that backups, audit checkpoints and verification,
purges, key re-encryption and alert delivery need across every tenant, and the application role
owns nothing, so FORCE would protect nobody further.

Context (``bastion.db.tenancy``): transaction-local settings ``bastion.tenant_id`` (bound once the
caller's membership resolved the tenant), ``bastion.user_id`` (bound once a principal is
authenticated) and ``bastion.token_hash`` (the digest of a bearer capability being looked up).
No context: ``current_setting(.., true)`` is NULL or empty, equal to no tenant, so a query run
without one sees no tenant row at all.

Generic: every table with a ``tenant_id`` column when this migration runs gets
``bastion_tenant_isolation`` (read and write only ``tenant_id = bastion.tenant_id``), so the
tables of migrations 0008-0013 are covered without naming them. A later migration that adds a
tenant-owned table must add the same policy; ``tests/integration/test_rls.py`` fails for any
table with a ``tenant_id`` column and no policy. Extra, narrower policies (OR'ed by PostgreSQL):

- a nullable ``tenant_id`` marks system rows (the system audit chain, system security events):
  the application may insert them (a login is recorded there) and only an operator, bound as
  ``bastion.user_id``, may read them;
- a ``token_hash`` column (invitations, API keys): the one row whose digest is bound may be read
  and updated, because a token is presented before its tenant is known;
- ``memberships``: also a user's own rows, so "my tenants" and ``{tenant}`` resolution work
  before a tenant is chosen; ``break_glass_grants``: also an operator's own requests;
  ``security_events``: every row to an operator (the service's own observations, queryable by
  operators by design); ``tenants``: the directory (id, slug, name) to an operator, who must
  name a tenant to request break-glass access; never its data.

Every table, classified (a table added after 0013 must be added here by its migration's author):

- tenant-owned, RLS: every table with ``tenant_id`` (memberships, invitations, api_keys,
  tenant_settings, tenant_roles, break_glass_grants, audit_events, records and collections,
  crypto_tenant_keys, crypto_erasures, crypto_reencryption_jobs...) and ``tenants`` itself
  (keyed by ``id``: readable when bound or when the bound user is a member, written only bound).
  The ``crypto_*`` ones are only ever used by the keyring, which runs on the owner connection.
- user-owned, no RLS: users, password_history, auth_sessions, email_tokens, totp_credentials,
  recovery_codes, mfa_challenges, webauthn_credentials, webauthn_challenges. A login finds its
  user by e-mail index and a request its session by token digest before anyone is known, so a
  user policy would need a context nobody has yet; the application's scoping guards them.
- system, no RLS: audit_chain_heads (sequence and hash per chain, no content), audit_actors
  (pseudonym to user id, needed by every append), bootstrap_tokens, mail_outbox,
  crypto_system_keys (wrapped), and the job-only tables job_leases, audit_checkpoints,
  backup_drills, alembic_version.

Revision ID: 0014
Revises: 0013
"""

import sqlalchemy as sa
from alembic import op

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None

# nullif: once a session has set a custom setting, PostgreSQL answers '' (not NULL) after the
# transaction ends; both must mean "no context".
TENANT = "nullif(current_setting('bastion.tenant_id', true), '')"
USER = "nullif(current_setting('bastion.user_id', true), '')"
TOKEN = "decode(nullif(current_setting('bastion.token_hash', true), ''), 'hex')"  # noqa: S105 - a setting name
# Policy text is built from the constants above and table names read from the catalogue only.
IS_OPERATOR = f"EXISTS (SELECT 1 FROM users u WHERE u.id = {USER} AND u.is_operator)"  # noqa: S608
MEMBER_OF_TENANT = (
    f"EXISTS (SELECT 1 FROM memberships m WHERE m.tenant_id = tenants.id AND m.user_id = {USER})"  # noqa: S608
)
POLICY_PREFIX = "bastion_"
# Tenant-owned tables operators read in full: security events are the service's own
# observations (a login failure, a lockout), queryable by operators by design (docs/alerts.md).
OPERATOR_READABLE = frozenset({"security_events"})


def _policy(
    table: str,
    name: str,
    *,
    command: str = "ALL",
    using: str | None = None,
    check: str | None = None,
) -> None:
    clauses = f" USING ({using})" if using else ""
    clauses += f" WITH CHECK ({check})" if check else ""
    op.execute(f"CREATE POLICY {POLICY_PREFIX}{name} ON {table} FOR {command}{clauses}")


def _tenant_tables() -> dict[str, dict[str, bool]]:
    """Every table with a ``tenant_id`` column: {table: {column name: nullable}}."""
    inspector = sa.inspect(op.get_bind())
    found = {}
    for table in inspector.get_table_names():
        columns = {c["name"]: bool(c["nullable"]) for c in inspector.get_columns(table)}
        if "tenant_id" in columns:
            found[table] = columns
    return found


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return  # SQLite has no row-level security: the application's scoping is the only guard
    for table, columns in sorted(_tenant_tables().items()):
        op.execute(f"ALTER TABLE {table} ENABLE ROW LEVEL SECURITY")
        own = f"tenant_id = {TENANT}"
        _policy(table, "tenant_isolation", using=own, check=own)
        if columns["tenant_id"]:
            _policy(table, "system_rows_insert", command="INSERT", check="tenant_id IS NULL")
            _policy(
                table,
                "system_rows_operator",
                command="SELECT",
                using=f"tenant_id IS NULL AND {IS_OPERATOR}",
            )
        if "token_hash" in columns:
            holder = f"token_hash = {TOKEN}"
            _policy(table, "token_holder_read", command="SELECT", using=holder)
            _policy(table, "token_holder_update", command="UPDATE", using=holder, check=holder)
    _policy("memberships", "own_memberships", command="SELECT", using=f"user_id = {USER}")
    tables = _tenant_tables()
    if "break_glass_grants" in tables:
        mine = f"operator_id = {USER}"
        _policy("break_glass_grants", "own_requests", command="SELECT", using=mine)
        _policy("break_glass_grants", "own_requests_insert", command="INSERT", check=mine)
    for table in sorted(OPERATOR_READABLE & tables.keys()):
        _policy(table, "operator_read", command="SELECT", using=IS_OPERATOR)
    op.execute("ALTER TABLE tenants ENABLE ROW LEVEL SECURITY")
    _policy("tenants", "tenant_isolation", using=f"id = {TENANT}", check=f"id = {TENANT}")
    _policy("tenants", "member_of", command="SELECT", using=MEMBER_OF_TENANT)
    # Operators run the service: they see which tenants exist (to request break-glass access),
    # never what the tenants hold.
    _policy("tenants", "operator_directory", command="SELECT", using=IS_OPERATOR)


def downgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name != "postgresql":
        return
    policies = bind.execute(
        sa.text(
            "SELECT tablename, policyname FROM pg_policies "
            "WHERE schemaname = current_schema() AND starts_with(policyname, :prefix)"
        ),
        {"prefix": POLICY_PREFIX},
    ).all()
    for table, name in policies:
        op.execute(f'DROP POLICY "{name}" ON "{table}"')
    for table in sorted({*_tenant_tables(), "tenants"}):
        op.execute(f'ALTER TABLE "{table}" DISABLE ROW LEVEL SECURITY')
