from __future__ import annotations

import subprocess
import sys
import textwrap

import personae


def test_import_is_light() -> None:
    code = textwrap.dedent(
        """
        import sys, time
        start = time.perf_counter()
        import personae
        elapsed = time.perf_counter() - start
        heavy = [m for m in ("dspy", "litellm", "torch", "transformers", "datasets", "ray") if m in sys.modules]
        print(elapsed, heavy)
        """
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    out = result.stdout.split(maxsplit=1)
    assert out[1].strip() == "[]"
    assert float(out[0]) < 2.0


def test_lazy_exports_resolve() -> None:
    for name in personae.__all__:
        assert getattr(personae, name) is not None
    assert "PersonaJudge" in dir(personae)


def test_public_export_lists() -> None:
    import personae.lm
    import personae.pipelines
    import personae.programs
    import personae.signatures

    for module in (personae.lm, personae.programs, personae.signatures, personae.pipelines):
        assert sorted(module.__all__) == sorted(set(module.__all__))
        for name in module.__all__:
            assert hasattr(module, name), f"{module.__name__}.{name}"


def test_prompt_text_lives_in_signatures() -> None:
    # Programs compose signatures; they carry no instructions of their own.
    import inspect

    from personae import programs
    from personae.programs import judges, persona_inference, synthesis, verified_reasoning

    for module in (judges, persona_inference, synthesis, verified_reasoning):
        source = inspect.getsource(module)
        assert "dspy.Signature(" not in source and "InputField" not in source, module.__name__
    assert programs


PACKAGES = ("personae", "personae.cli", "personae.data", "personae.distill", "personae.errors", "personae.evaluation",
            "personae.lm", "personae.optimizers", "personae.pipelines", "personae.programs", "personae.retrieval",
            "personae.runs", "personae.signatures")


def _public_names(module: object) -> set[str]:
    """What a module offers: its public names that are personae's own (not typing helpers or submodules);
    a package that loads its names on first use (``_EXPORTS``) offers those."""
    import inspect

    names = set(getattr(module, "_EXPORTS", {}))
    for name, value in vars(module).items():
        if name.startswith("_") or name in ("annotations", "TYPE_CHECKING") or inspect.ismodule(value):
            continue
        origin = getattr(value, "__module__", None)
        if (inspect.isclass(value) or inspect.isfunction(value)) and not str(origin).startswith("personae"):
            continue  # imported from elsewhere (typing, dataclasses, ...)
        if origin is None and not isinstance(value, (str, int, float, tuple, list, frozenset, dict)):
            continue
        names.add(name)
    return names


def test_every_package_exports_exactly_its_public_names() -> None:
    """In the spirit of httpx's test_exported_members: ``__all__`` is the public API, no more, no less."""
    import importlib

    wrong = {}
    for package in PACKAGES:
        module = importlib.import_module(package)
        exported = list(getattr(module, "__all__", []))
        assert len(exported) == len(set(exported)), f"{package}: a name is listed twice"
        public = _public_names(module) | ({"__version__"} if package == "personae" else set())
        if set(exported) != public:
            wrong[package] = {"not exported": sorted(public - set(exported)),
                              "exported, not there": sorted(set(exported) - public)}
    assert not wrong
