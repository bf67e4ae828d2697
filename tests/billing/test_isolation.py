"""Billing owns money and depends on nothing of swarms (swarms depends on billing, to record
what runs spend): no billing module imports swarms, even inside a function."""

import ast
from pathlib import Path

BILLING = Path(__file__).resolve().parents[2] / "billing"


def imported_modules(path: Path) -> set[str]:
    modules = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            modules.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            modules.add(node.module)
    return modules


def test_billing_imports_nothing_from_swarms():
    sources = sorted(BILLING.rglob("*.py"))
    assert len(sources) > 5
    found = {
        f"{path.relative_to(BILLING.parent)}: {module}"
        for path in sources
        for module in imported_modules(path)
        if module == "swarms" or module.startswith("swarms.")
    }
    assert found == set()
