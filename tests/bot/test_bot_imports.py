"""The bot imports the services and the domain (through `core.services` and `core.domain`),
never the store, the delivery machinery or the other adapters; only `bot/app.py` opens the
core (`core.app`), and only `bot/cli.py` runs the command-line commands (`core.commands`)."""

from __future__ import annotations

import ast
from pathlib import Path

BOT = Path(__file__).parents[2] / "bot"
FORBIDDEN = ("core.adapters", "core.delivery")
# The composition root and the commands, each for the one bot module that starts them.
ONLY_IN = {"core.app": {"app.py"}, "core.commands": {"cli.py"}}


def imported(tree: ast.AST) -> list[tuple[int, str]]:
    """Every module a file imports, at any depth (inside functions, under TYPE_CHECKING),
    with `from core import delivery` read as `core.delivery`."""
    found: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.append((node.lineno, node.module))
            found += [(node.lineno, f"{node.module}.{alias.name}") for alias in node.names]
    return found


def within(module: str, package: str) -> bool:
    return module == package or module.startswith(package + ".")


def offences(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    name = path.relative_to(BOT).as_posix()
    found = []
    for line, module in imported(tree):
        allowed_in = next((where for p, where in ONLY_IN.items() if within(module, p)), None)
        if any(within(module, p) for p in FORBIDDEN) or (
            allowed_in is not None and name not in allowed_in
        ):
            found.append(f"bot/{name}:{line} imports {module}")
    return found


def test_the_bot_imports_services_and_the_domain_only() -> None:
    modules = sorted(BOT.rglob("*.py"))
    assert len(modules) > 10  # the scan sees the bot
    assert [o for path in modules for o in offences(path)] == []


def test_the_scan_sees_every_form_of_import(tmp_path: Path) -> None:
    source = (
        "import core.delivery.sender\n"
        "from core import adapters\n"
        "from core.adapters.store import Store\n"
        "if TYPE_CHECKING:\n    from core.delivery.ack_watch import Recheck\n"
        "def f():\n    from core.app import open_core\n"
        "from core.services import Services\n"
        "from core.domain.models import Run\n"
    )
    modules = [m for _, m in imported(ast.parse(source))]
    assert [m for m in modules if any(within(m, p) for p in FORBIDDEN)] == [
        "core.delivery.sender",
        "core.adapters",
        "core.adapters.store",
        "core.adapters.store.Store",
        "core.delivery.ack_watch",
        "core.delivery.ack_watch.Recheck",
    ]
    assert "core.app" in modules and "core.services.Services" in modules
