"""Import contracts: the pure core imports no IO, providers import their SDKs lazily."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[2] / "src"
PACKAGE = SRC / "commlink"

#: The pure core: values, ports, address rules, parsing and policy. No IO.
CORE = (
    "model",
    "records",
    "errors",
    "credentials",
    "addresses",
    "ports",
    "mime",
    "calendar",
    "policy",
    "closing",
    "events",
)
PURE = sorted(
    p
    for name in CORE
    for p in ([PACKAGE / f"{name}.py"] if (PACKAGE / f"{name}.py").exists() else [])
    + sorted((PACKAGE / name).rglob("*.py"))
)
FORBIDDEN_COMMLINK = ("stores", "sync", "providers", "contrib", "cli", "testing")
FORBIDDEN_PACKAGES = frozenset(
    {
        "sqlalchemy",
        "googleapiclient",
        "google",
        "exchangelib",
        "imapclient",
        "caldav",
        "httpx",
        "msal",
        "celery",
        "kombu",
        "redis",
        "psycopg",
        "requests",
        "sqlite3",
        "socket",
        "imaplib",
        "subprocess",
    }
)
#: Which commlink packages each package may import (besides itself). Arrows
#: point inward: the core never reaches out to IO, and only the composition
#: roots (``cli``, ``contrib``, ``testing``) see everything.
_VALUES = {"model", "records", "errors", "credentials", "closing", "events"}
MAY_IMPORT: dict[str, frozenset[str]] = {
    "credentials": frozenset(),
    "closing": frozenset(),
    "events": frozenset({"model", "records", "errors", "credentials"}),
    "model": frozenset({"errors"}),
    "records": frozenset({"model", "errors", "credentials"}),
    "errors": frozenset(),
    "addresses": frozenset({"model", "errors"}),
    "ports": frozenset(_VALUES),
    "mime": frozenset(_VALUES | {"addresses"}),
    "calendar": frozenset(_VALUES | {"addresses", "mime"}),
    "policy": frozenset(_VALUES | {"addresses", "ports"}),
    # stores sanitise kept HTML as they hand it to a viewer (mime.html)
    "stores": frozenset(_VALUES | {"addresses", "ports", "mime", "calendar", "policy"}),
    # sign-in and token sources: client libraries imported lazily
    "auth": frozenset(_VALUES | {"ports"}),
    "providers": frozenset(_VALUES | {"addresses", "ports", "mime", "calendar", "policy", "auth"}),
    "sync": frozenset(_VALUES | {"addresses", "ports", "mime", "calendar", "policy"}),
    # opening an attachment: a store and a provider through their ports
    "attachments": frozenset(_VALUES | {"ports", "mime"}),
    # a channel's settings, read for the command's files and the Django settings alike
    "channel_config": frozenset(_VALUES | {"addresses", "auth", "providers"}),
    # process settings (the garbage collector): called by the command, never by the library
    "runtime": frozenset(),
}
_EVERYTHING_BUT_ROOTS = frozenset(MAY_IMPORT) | {"sync", "stores", "providers"}
MAY_IMPORT["contrib"] = _EVERYTHING_BUT_ROOTS
# the command serves contrib's push app and runs its Celery watch; contrib never imports cli
MAY_IMPORT["cli"] = _EVERYTHING_BUT_ROOTS | {"contrib"}
PROVIDER_SDKS = frozenset(
    {
        "googleapiclient",
        "google",
        "google_auth_oauthlib",
        "exchangelib",
        "imapclient",
        "caldav",
        "httpx",
        "msal",
    }
)


def module_name(path: Path) -> str:
    parts = list(path.relative_to(SRC).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def resolve(path: Path, node: ast.ImportFrom) -> str:
    """The absolute module a ``from ... import`` refers to."""
    if not node.level:
        return node.module or ""
    package = module_name(path).split(".")
    if path.name != "__init__.py":
        package.pop()
    base = package[: len(package) - (node.level - 1)]
    return ".".join([*base, node.module] if node.module else base)


def imports(
    path: Path, *, module_level_only: bool = False, source: str | None = None
) -> Iterator[tuple[str, int]]:
    """``(absolute module, line)`` for each import in a file (or in ``source``
    as if it were that file).

    With ``module_level_only``, imports inside functions and ``if TYPE_CHECKING:``
    blocks are left out (they do not run at import time).
    """
    text = source if source is not None else path.read_text(encoding="utf-8")
    tree = ast.parse(text, filename=str(path))

    def visit(node: ast.AST) -> Iterator[tuple[str, int]]:
        for child in ast.iter_child_nodes(node):
            if module_level_only and isinstance(
                child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)
            ):
                continue
            if module_level_only and isinstance(child, ast.If) and _type_checking(child.test):
                yield from (i for n in child.orelse for i in visit_one(n))
                continue
            yield from visit_one(child)

    def visit_one(child: ast.AST) -> Iterator[tuple[str, int]]:
        if isinstance(child, ast.Import):
            for alias in child.names:
                yield alias.name, child.lineno
        elif isinstance(child, ast.ImportFrom):
            base = resolve(path, child)
            yield base, child.lineno
            if child.module is None:  # "from . import x": x may be a module
                for alias in child.names:
                    if not alias.name.startswith("__"):  # __version__ is no module
                        yield f"{base}.{alias.name}", child.lineno
        else:
            yield from visit(child)

    yield from visit(tree)


def _type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def test_the_pure_layer_exists() -> None:
    names = {module_name(p) for p in PURE}
    assert {"commlink.model", "commlink.addresses", "commlink.policy.filters"} <= names


@pytest.mark.parametrize("path", PURE, ids=module_name)
def test_pure_layer_imports_no_io(path: Path) -> None:
    bad = []
    for name, line in imports(path):
        parts = name.split(".")
        inner = parts[1] if parts[0] == "commlink" and len(parts) > 1 else ""
        if parts[0] in FORBIDDEN_PACKAGES or inner in FORBIDDEN_COMMLINK:
            bad.append(f"{line}: {name}")
    assert not bad, f"{module_name(path)} imports outside the pure layer: {bad}"


def package_of(path: Path) -> str:
    parts = module_name(path).split(".")
    return parts[1] if len(parts) > 1 else ""


def violations(path: Path, source: str | None = None) -> list[str]:
    """Imports of ``path`` that break the ``MAY_IMPORT`` table."""
    own = package_of(path)
    allowed = MAY_IMPORT.get(own)
    if allowed is None:  # composition roots and the package itself
        return []
    found = []
    for name, line in imports(path, source=source):
        parts = name.split(".")
        inward = parts[0] != "commlink" or len(parts) < 2 or parts[1] in (own, *allowed)
        if not inward or (own in CORE and parts[0] in FORBIDDEN_PACKAGES):
            found.append(f"{module_name(path)}:{line} imports {name}")
    return found


SOURCES = sorted(PACKAGE.rglob("*.py"))


@pytest.mark.parametrize("path", SOURCES, ids=module_name)
def test_each_package_imports_only_what_its_layer_may(path: Path) -> None:
    bad = violations(path)
    assert not bad, "import rule broken (see docs/architecture.md):\n" + "\n".join(bad)


def test_every_package_has_a_rule() -> None:
    roots = {"cli", "contrib", "testing", ""}
    packages = {package_of(p) for p in SOURCES} - roots - {"py", "__main__"}
    assert packages <= set(MAY_IMPORT), packages - set(MAY_IMPORT)


def test_the_rules_catch_a_core_module_importing_a_provider() -> None:
    located = PACKAGE / "mime" / "parse.py"
    source = "from ..providers.imap import ImapProvider\nfrom ..stores import sql\n"
    assert violations(located, source) == [
        "commlink.mime.parse:1 imports commlink.providers.imap",
        "commlink.mime.parse:2 imports commlink.stores",
    ]
    located = PACKAGE / "policy" / "filters.py"
    assert violations(located, "import httpx\n") == ["commlink.policy.filters:1 imports httpx"]


PROVIDERS = sorted(p for p in (PACKAGE / "providers").rglob("*.py") if p.name != "__init__.py")


@pytest.mark.skipif(not PROVIDERS, reason="no provider modules yet")
@pytest.mark.parametrize("path", PROVIDERS, ids=module_name)
def test_providers_import_their_sdks_lazily(path: Path) -> None:
    eager = [
        f"{line}: {name}"
        for name, line in imports(path, module_level_only=True)
        if name.split(".")[0] in PROVIDER_SDKS
    ]
    assert not eager, f"{module_name(path)} imports an SDK at import time: {eager}"


def test_checker_sees_through_relative_and_guarded_imports() -> None:
    # The checks above are only as good as the import walker: exercise it.
    source = (
        "from __future__ import annotations\n"
        "from typing import TYPE_CHECKING\n"
        "from ..stores import memory\n"
        "from .. import sync\n"
        "import sqlalchemy.orm\n"
        "if TYPE_CHECKING:\n"
        "    import httpx\n"
        "def f():\n"
        "    import msal\n"
    )
    located = PACKAGE / "policy" / "example.py"
    found = {name for name, _ in imports(located, source=source)}
    assert {"commlink.stores", "commlink.sync", "sqlalchemy.orm", "httpx", "msal"} <= found
    eager = {name for name, _ in imports(located, source=source, module_level_only=True)}
    assert "sqlalchemy.orm" in eager
    assert "httpx" not in eager
    assert "msal" not in eager
