"""How every benchmark prints: a figure, its baseline measured in the same run, and their ratio.

Absolute times on this shared machine mean little (±20 % run to run); the ratio is the figure.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Figure:
    name: str
    value: float
    unit: str


def print_ratio(measured: Figure, baseline: Figure, *, note: str = "") -> float:
    """Print ``measured`` against ``baseline`` and return measured/baseline."""
    ratio = measured.value / baseline.value if baseline.value else float("nan")
    suffix = f"  ({note})" if note else ""
    print(
        f"{measured.name}: {measured.value:,.1f} {measured.unit} | baseline {baseline.name}: "
        f"{baseline.value:,.1f} {baseline.unit} | ratio {ratio:.2f}{suffix}",
        flush=True,
    )
    return ratio


def print_figure(figure: Figure, *, note: str = "") -> None:
    """A figure with no meaningful baseline (e.g. a one-off duration); prefer print_ratio."""
    suffix = f"  ({note})" if note else ""
    print(f"{figure.name}: {figure.value:,.1f} {figure.unit}{suffix}", flush=True)
