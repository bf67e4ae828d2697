"""Checks pyproject's import contract on the project's graph with imports the code does not have,
as a clean process (`python -m tests.import_contract importer:imported ...`), printing each
contract's id and whether it is kept, as JSON. Run apart from pytest: the test process has loaded
Twisted (through Daphne), whose zope.interface class attributes import-linter cannot read."""

import copy
import json
import sys
import tomllib
from pathlib import Path

from importlinter.adapters.building import GraphBuilder
from importlinter.application import use_cases
from importlinter.application.app_config import settings
from importlinter.configuration import configure

PYPROJECT = Path(__file__).resolve().parents[1] / "pyproject.toml"


class GraphWith(GraphBuilder):
    """The project's import graph, plus `imports`."""

    def __init__(self, imports: list[tuple[str, str]]) -> None:
        self.imports = imports

    def build(self, *args, **options):
        graph = copy.deepcopy(super().build(*args, **{**options, "cache_dir": None}))
        for importer, imported in self.imports:
            graph.add_import(importer=importer, imported=imported)
        return graph


def _id(contract) -> str:
    """A contract's id in pyproject (import-linter keys its contracts by name)."""
    contracts = tomllib.loads(PYPROJECT.read_text())["tool"]["importlinter"]["contracts"]
    return next(entry["id"] for entry in contracts if entry["name"] == contract.name)


def contracts_kept(imports: list[tuple[str, str]]) -> dict[str, bool]:
    configure()
    use_cases._register_built_in_contract_types()
    settings.configure(GRAPH_BUILDER=GraphWith(imports))
    options = use_cases.read_user_options(config_filename=str(PYPROJECT))
    report = use_cases.create_report(options, cache_dir=None)
    if report.invalid_contract_options:
        raise SystemExit(f"invalid contracts: {report.invalid_contract_options}")
    return {_id(contract): check.kept for contract, check in report.get_contracts_and_checks()}


if __name__ == "__main__":
    added = [tuple(argument.split(":", 1)) for argument in sys.argv[1:]]
    print(json.dumps(contracts_kept(added)))
