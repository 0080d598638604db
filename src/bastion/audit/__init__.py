"""Audit: the tamper-evident record of every action (DESIGN "Audit log", invariant 2).

Owns the ``audit_*`` tables, the hash-chain format (``canonical``), signed checkpoints,
verification (database and offline export), query and export. Other domains only call
``AuditLog.append(session, event)`` inside their own transaction. This package never commits a
caller's transaction, never stores a real user id in the chain (only a keyed pseudonym), never
accepts secrets in details, and never imports ``cryptography.hazmat``: signing and the system MAC
come from the keyring through the ``CheckpointSigner`` and ``Pseudonymizer`` protocols, signature
checks through an injected ``SignatureVerifier``.
"""

from bastion.audit.batcher import BatcherStats, ReadAuditBatcher
from bastion.audit.canonical import GENESIS_HASH, SYSTEM_CHAIN
from bastion.audit.checkpoints import Checkpointer, CheckpointSigner, PublishReport
from bastion.audit.errors import (
    AuditDetailsTooLarge,
    AuditError,
    AuditWriteFailed,
    InvalidAuditCursor,
    InvalidAuditEvent,
    InvalidAuditExport,
    SecretInAuditDetails,
)
from bastion.audit.events import AuditAction, AuditEvent, EntryRef, Outcome
from bastion.audit.export import export_lines, load_public_key_pem, verify_export
from bastion.audit.query import AuditFilter, AuditPage, AuditQuery, AuditRecord
from bastion.audit.service import AuditLog, Pseudonymizer
from bastion.audit.verifier import AuditVerifier, run_scheduled_verification
from bastion.audit.verify import (
    ChainReport,
    Damage,
    DamageKind,
    Keys,
    SignatureVerifier,
    VerifyReport,
)

__all__ = [
    "GENESIS_HASH",
    "SYSTEM_CHAIN",
    "AuditAction",
    "AuditDetailsTooLarge",
    "AuditError",
    "AuditEvent",
    "AuditFilter",
    "AuditLog",
    "AuditPage",
    "AuditQuery",
    "AuditRecord",
    "AuditVerifier",
    "AuditWriteFailed",
    "BatcherStats",
    "ChainReport",
    "CheckpointSigner",
    "Checkpointer",
    "Damage",
    "DamageKind",
    "EntryRef",
    "InvalidAuditCursor",
    "InvalidAuditEvent",
    "InvalidAuditExport",
    "Keys",
    "Outcome",
    "Pseudonymizer",
    "PublishReport",
    "ReadAuditBatcher",
    "SecretInAuditDetails",
    "SignatureVerifier",
    "VerifyReport",
    "export_lines",
    "load_public_key_pem",
    "run_scheduled_verification",
    "verify_export",
]
