"""The dependency rules of STYLE.md 2.3 and 2.6, checked on the source tree (no imports run)."""

import ast
from pathlib import Path

import pytest

import bastion

SOURCE = Path(bastion.__file__).parent
EDGES = (
    "bastion.api",
    "bastion.cli",
    "bastion.web",
    "bastion.jobs",
    "bastion.bootstrap",
    "bastion.__main__",
)
WEB_FRAMEWORKS = ("fastapi", "starlette", "uvicorn")


def _modules():
    for path in sorted(SOURCE.rglob("*.py")):
        relative = path.relative_to(SOURCE.parent).with_suffix("")
        name = ".".join(relative.parts).removesuffix(".__init__")
        yield name, path, ast.parse(path.read_text(), filename=str(path))


def _imports(tree):
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            yield node.module


def _within(name, package):
    return name == package or name.startswith(package + ".")


MODULES = list(_modules())


def test_the_source_tree_is_found():
    assert any(name == "bastion.settings" for name, _, _ in MODULES)


@pytest.mark.parametrize(("name", "path", "tree"), MODULES, ids=[m[0] for m in MODULES])
def test_module_respects_the_dependency_rules(name, path, tree):
    imported = list(_imports(tree))
    if not _within(name, "bastion.crypto"):
        assert not [i for i in imported if _within(i, "cryptography.hazmat")], (
            f"{name}: only bastion.crypto may import cryptography.hazmat"
        )
    if not any(_within(name, edge) for edge in ("bastion.api", "bastion.web", "bastion.cli")):
        assert not [i for i in imported if any(_within(i, fw) for fw in WEB_FRAMEWORKS)], (
            f"{name}: web frameworks belong to bastion.api/bastion.web"
        )
    if not any(_within(name, edge) for edge in EDGES):
        assert not [i for i in imported if any(_within(i, edge) for edge in EDGES)], (
            f"{name}: domains never import the api, cli, web or bootstrap"
        )
    if name != "bastion.settings":
        source = path.read_text()
        assert "os.environ" not in source, f"{name}: only bastion.settings reads the environment"
        assert "getenv" not in source, f"{name}: only bastion.settings reads the environment"
    if _within(name, "bastion.client"):
        server_side = [
            i for i in imported if _within(i, "bastion") and not _within(i, "bastion.client")
        ]
        assert not server_side, f"{name}: the client stands alone (imports {server_side})"
