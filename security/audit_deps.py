"""Known-vulnerability audit of the installed dependency set (``make audit-deps``; P26).

pip-audit is the tool of record: it asks PyPI's JSON API about every installed distribution at
its exact version (``/pypi/<name>/<version>/json``). Some networks answer only the per-project
document (``/pypi/<name>/json``) and 404 every per-version one; pip-audit then reports each
package as "not found on PyPI" and exits 0 having audited nothing. So for every package
pip-audit skipped, this script reads the per-project document itself: its ``vulnerabilities``
member lists the advisories (OSV, GHSA, PYSEC) affecting the *latest* release, which is exact
when the installed version is that release, as it is after a fresh ``pip install``. A package
that is behind the latest release cannot be judged that way; it is listed as not audited.

Reviewed exceptions live in ``security/pip-audit-ignore.txt``: one advisory id per line, then
``#`` and the reason. An entry without a reason is refused.

Exit status: 0 nothing known; 1 a known vulnerability (or an ignore entry without a reason);
2 nothing could be audited (no network), since a scan that saw nothing is not a clean scan.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

from packaging.utils import canonicalize_name
from packaging.version import InvalidVersion, Version

PYPI_PROJECT_URL = "https://pypi.org/pypi/{name}/json"
TIMEOUT_SECONDS = 20
DEFAULT_IGNORE_FILE = Path(__file__).with_name("pip-audit-ignore.txt")


@dataclass(frozen=True)
class Finding:
    package: str
    version: str
    advisory: str
    aliases: tuple[str, ...]
    fixed_in: tuple[str, ...]
    source: str  # "pip-audit" or "pypi-project-json"


@dataclass
class Audit:
    findings: list[Finding] = field(default_factory=list)
    audited: dict[str, int] = field(default_factory=dict)  # how many, by which route
    not_audited: list[str] = field(default_factory=list)
    ignored: list[str] = field(default_factory=list)


def say(line: object) -> None:
    """One line of the report on standard output (make shows it as it comes)."""
    sys.stdout.write(f"{line}\n")


def read_ignores(path: Path) -> dict[str, str]:
    """Advisory id -> reason. Raises ValueError for an entry that gives no reason."""
    ignores: dict[str, str] = {}
    if not path.exists():
        return ignores
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        entry, _, reason = line.partition("#")
        advisory = entry.strip()
        if not advisory:
            continue
        if not reason.strip():
            raise ValueError(f"{path}:{number}: {advisory} has no reason; say why it is accepted")
        ignores[advisory] = reason.strip()
    return ignores


def installed_versions() -> dict[str, str]:
    """Installed distributions and versions, without editable installs (the project itself)."""
    versions: dict[str, str] = {}
    for distribution in metadata.distributions():
        name = distribution.metadata["Name"]
        if name and not _is_editable(distribution):
            versions[str(canonicalize_name(name))] = distribution.version
    return versions


def _is_editable(distribution: metadata.Distribution) -> bool:
    # PEP 610: an editable install records {"dir_info": {"editable": true}} in direct_url.json.
    direct_url = distribution.read_text("direct_url.json")
    if not direct_url:
        return False
    try:
        return bool(json.loads(direct_url).get("dir_info", {}).get("editable"))
    except (json.JSONDecodeError, AttributeError):
        return False


def run_pip_audit(ignores: dict[str, str]) -> tuple[list[dict[str, Any]], list[str]]:
    """pip-audit's dependency entries, and the names it could not audit."""
    command = [sys.executable, "-m", "pip_audit", "--format", "json", "--desc", "off"]
    command += ["--progress-spinner", "off", "--skip-editable", "--timeout", str(TIMEOUT_SECONDS)]
    for advisory in ignores:
        command += ["--ignore-vuln", advisory]
    # Fixed argv, no shell; exit status 1 only means "found something", read from the JSON.
    result = subprocess.run(command, capture_output=True, text=True, check=False)  # noqa: S603
    try:
        report = json.loads(result.stdout)
    except json.JSONDecodeError:
        say(f"pip-audit gave no report (exit {result.returncode}):\n{result.stderr[-2000:]}")
        return [], list(installed_versions())
    dependencies: list[dict[str, Any]] = report.get("dependencies", [])
    skipped = [str(canonicalize_name(d["name"])) for d in dependencies if "skip_reason" in d]
    return [d for d in dependencies if "skip_reason" not in d], skipped


def project_document(name: str) -> dict[str, object] | None:
    url = PYPI_PROJECT_URL.format(name=name)
    # A fixed https URL on PyPI; the name comes from the installed distributions.
    request = urllib.request.Request(url, headers={"Accept": "application/json"})  # noqa: S310
    try:
        with urllib.request.urlopen(request, timeout=TIMEOUT_SECONDS) as response:  # noqa: S310
            document: dict[str, object] = json.load(response)
            return document
    except urllib.error.HTTPError as exc:
        if exc.code == 404:  # not on PyPI at all (a local package): nothing to look up
            return {}
        return None
    except (urllib.error.URLError, TimeoutError, json.JSONDecodeError):
        return None


def _same_version(left: str, right: str) -> bool:
    try:
        return Version(left) == Version(right)
    except InvalidVersion:
        return left == right


def audit_from_project_documents(
    names: list[str], versions: dict[str, str], ignores: dict[str, str], audit: Audit
) -> None:
    with ThreadPoolExecutor(max_workers=16) as pool:
        documents = dict(zip(names, pool.map(project_document, names), strict=True))
    for name in names:
        document, installed = documents[name], versions.get(name, "?")
        if document is None:
            audit.not_audited.append(f"{name} {installed} (PyPI did not answer)")
            continue
        if not document:
            audit.not_audited.append(f"{name} {installed} (not published on PyPI)")
            continue
        info = document.get("info")
        latest = str(info.get("version", "")) if isinstance(info, dict) else ""
        if not _same_version(installed, latest):
            audit.not_audited.append(f"{name} {installed} (latest is {latest})")
            continue
        audit.audited["pypi-project-json"] = audit.audited.get("pypi-project-json", 0) + 1
        vulnerabilities = document.get("vulnerabilities")
        for vulnerability in vulnerabilities if isinstance(vulnerabilities, list) else []:
            if vulnerability.get("withdrawn"):
                continue
            advisory = str(vulnerability.get("id"))
            aliases = tuple(str(a) for a in vulnerability.get("aliases") or ())
            if ignored := next((i for i in (advisory, *aliases) if i in ignores), None):
                audit.ignored.append(f"{name} {installed} {advisory}: {ignores[ignored]}")
                continue
            fixed = tuple(str(v) for v in vulnerability.get("fixed_in") or ())
            audit.findings.append(
                Finding(name, installed, advisory, aliases, fixed, "pypi-project-json")
            )


def run(ignore_file: Path) -> int:
    try:
        ignores = read_ignores(ignore_file)
    except ValueError as exc:
        say(exc)
        return 1
    versions = installed_versions()
    audit = Audit()
    audited, skipped = run_pip_audit(ignores)
    audit.audited["pip-audit"] = len(audited)
    for dependency in audited:
        for vulnerability in dependency.get("vulns", []):
            audit.findings.append(
                Finding(
                    str(dependency["name"]),
                    str(dependency["version"]),
                    vulnerability["id"],
                    tuple(vulnerability.get("aliases", ())),
                    tuple(vulnerability.get("fix_versions", ())),
                    "pip-audit",
                )
            )
    to_look_up = sorted(name for name in set(skipped) if name in versions)
    if to_look_up:
        audit_from_project_documents(to_look_up, versions, ignores, audit)
    return report(audit, ignores)


def report(audit: Audit, ignores: dict[str, str]) -> int:
    total = sum(audit.audited.values())
    routes = ", ".join(f"{count} by {route}" for route, count in audit.audited.items() if count)
    say(f"dependency audit: {total} distributions audited ({routes or 'none'})")
    for line in audit.ignored:
        say(f"  ignored (reviewed): {line}")
    if ignores:
        say(f"  ignore list: {len(ignores)} reviewed entr{'y' if len(ignores) == 1 else 'ies'}")
    if audit.not_audited:
        say(f"  not audited ({len(audit.not_audited)}): " + "; ".join(audit.not_audited))
    for finding in audit.findings:
        fixed = ", ".join(finding.fixed_in) or "no fixed release"
        aliases = f" ({', '.join(finding.aliases)})" if finding.aliases else ""
        say(
            f"  VULNERABLE {finding.package} {finding.version}: {finding.advisory}{aliases}; "
            f"fixed in {fixed} [{finding.source}]"
        )
    if audit.findings:
        say(
            "Raise the lower bound in pyproject.toml past the fixed release, or add a reviewed "
            "entry with its reason to security/pip-audit-ignore.txt."
        )
        return 1
    if total == 0:
        say("nothing could be audited (is PyPI reachable?): not a clean scan")
        return 2
    say("no known vulnerabilities")
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ignore-file", type=Path, default=DEFAULT_IGNORE_FILE)
    return run(parser.parse_args().ignore_file)


if __name__ == "__main__":
    sys.exit(main())
