"""The lint rule for the public API: every exported name says what it is, and every program
names its inputs and its outputs (ruff's pydocstyle rules cover the modules; names defined in
private modules and re-exported are checked here, where they are public)."""

from __future__ import annotations

import importlib
import inspect
import re

import pytest

PACKAGES = ("personae", "personae.data", "personae.distill", "personae.errors", "personae.evaluation", "personae.lm",
            "personae.optimizers", "personae.pipelines", "personae.programs", "personae.retrieval", "personae.runs",
            "personae.signatures", "personae.store", "personae.client", "personae.testing")


def _public_api() -> list[tuple[str, object]]:
    found: dict[int, tuple[str, object]] = {}
    for package in PACKAGES:
        module = importlib.import_module(package)
        for name in getattr(module, "__all__", ()):
            value = getattr(module, name)
            if inspect.isclass(value) or inspect.isfunction(value):
                found.setdefault(id(value), (f"{package}.{name}", value))
    return sorted(found.values(), key=lambda item: item[0])


def _undocumented(value: object) -> list[str]:
    missing = []
    if not (value.__doc__ or "").strip():
        missing.append("")
    if inspect.isclass(value):
        for attr, member in vars(value).items():
            if attr.startswith("_") or not (inspect.isfunction(member) or isinstance(member, (classmethod,
                                                                                                 staticmethod))):
                continue
            if not (inspect.getdoc(getattr(value, attr)) or "").strip():
                missing.append(f".{attr}")
    return missing


def test_every_public_name_has_a_docstring() -> None:
    missing = [f"{name}{part}" for name, value in _public_api() for part in _undocumented(value)]
    assert not missing, "no docstring: " + ", ".join(missing)


def _programs() -> list[type]:
    from personae import programs

    return [value for name in programs.__all__ if inspect.isclass(value := getattr(programs, name))
            and issubclass(value, programs.Program) and value is not programs.Program]


@pytest.mark.parametrize("program", _programs(), ids=lambda p: p.__name__)
def test_every_program_names_its_inputs_and_outputs(program: type) -> None:
    doc = inspect.getdoc(program) or ""
    forward = inspect.signature(program.forward)
    inputs = [name for name, p in forward.parameters.items() if name != "self" and p.kind is not p.VAR_KEYWORD]
    said = doc + "\n" + (inspect.getdoc(program.forward) or "")
    assert all(re.search(rf"\b{name}\b", said) for name in inputs), (program.__name__, inputs)
    assert re.search(r"Verdict|Prediction\(", doc), f"{program.__name__}: the docstring does not name its output"
