"""The run fixtures: runs are created but never executed (`not_executing`)."""

from tests.runs.conftest import not_executing

__all__ = ["not_executing"]
