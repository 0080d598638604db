"""`python -m bench [NAME ...]`: run every ``bench/bench_*.py`` module's ``main()`` in turn.

With names, only the modules whose short name (``http`` for ``bench_http``) contains one of them
run. A benchmark that fails is reported and the others still run; the exit status is 1 if any
failed, 2 if the names matched nothing.
"""

from __future__ import annotations

import importlib
import pkgutil
import sys
import time
import traceback
from collections.abc import Sequence
from pathlib import Path

PREFIX = "bench_"


def discover() -> list[str]:
    """Short names of the benchmark modules, sorted (``bench_http.py`` gives ``http``)."""
    here = [str(Path(__file__).resolve().parent)]
    return sorted(
        info.name.removeprefix(PREFIX)
        for info in pkgutil.iter_modules(here)
        if info.name.startswith(PREFIX) and not info.ispkg
    )


def select(names: Sequence[str], wanted: Sequence[str]) -> list[str]:
    if not wanted:
        return list(names)
    return [name for name in names if any(word in name for word in wanted)]


def run_one(name: str) -> bool:
    """Import ``bench.bench_<name>`` and call its ``main()``; report and swallow any failure."""
    print(f"\n== bench {name} ==", flush=True)
    started = time.perf_counter()
    try:
        module = importlib.import_module(f"bench.{PREFIX}{name}")
        module.main()
    # One broken benchmark must not hide the others' figures, even one that calls sys.exit.
    except (Exception, SystemExit):
        traceback.print_exc()
        print(f"== bench {name}: FAILED after {time.perf_counter() - started:.1f} s ==", flush=True)
        return False
    print(f"== bench {name}: done in {time.perf_counter() - started:.1f} s ==", flush=True)
    return True


def run(argv: Sequence[str]) -> int:
    available = discover()
    chosen = select(available, argv)
    if not chosen:
        print(
            f"no benchmark matches {' '.join(argv)!r}; available: {', '.join(available)}",
            file=sys.stderr,
        )
        return 2
    print(f"benchmarks: {', '.join(chosen)}", flush=True)
    failed = [name for name in chosen if not run_one(name)]
    if failed:
        print(f"\n{len(failed)} of {len(chosen)} failed: {', '.join(failed)}", flush=True)
        return 1
    print(f"\nall {len(chosen)} benchmarks ran", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(run(sys.argv[1:]))
