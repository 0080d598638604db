"""Bastion: a self-hosted, security-first multi-tenant backend that proves its own policy."""

__version__ = "0.1.0"
