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
        heavy = [m for m in ("dspy", "litellm", "torch", "transformers", "datasets") if m in sys.modules]
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
