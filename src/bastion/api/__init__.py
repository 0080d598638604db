"""HTTP edge: FastAPI app factory, middleware, problem+json errors, routers. Nothing imports it."""

from bastion.api.app import create_app

__all__ = ["create_app"]
