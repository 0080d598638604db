"""Process-wide observability: Prometheus metrics (served on their own listener)."""
