"""personae.distill: reward model, tailored generator, their evaluation, and the missing extra.

Models are tiny (2 layers, hidden 32) and built here from configs with a word-level
tokenizer trained on the test texts, so nothing is downloaded and each training takes a
second or two on one thread.
"""

from __future__ import annotations

import argparse
import json
import math
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

from personae.data import PreferenceRecord, Turn, UserSplit
from personae.errors import ConfigError, DataError, MissingExtraError

# Third-party warnings raised inside dependencies we do not control: peft 0.21 and TRL call
# transformers 5 APIs that transformers marks deprecated (is_gradient_checkpointing, ...).
_THIRD_PARTY = [
    pytest.mark.filterwarnings("ignore:.*is deprecated and will be removed in v6:FutureWarning"),
    pytest.mark.filterwarnings("ignore::DeprecationWarning:(torch|transformers|trl|peft|datasets).*"),
]

SHORT = "boil it ten minutes"
LONG = "first heat the water then add the egg and wait ten minutes before you peel it slowly"
BRIEF, DETAILED = "likes short answers", "likes detailed answers"


def _pair(i: int, user: str, taste: str, **metadata: Any) -> PreferenceRecord:
    chosen, rejected = (SHORT, LONG) if taste == BRIEF else (LONG, SHORT)
    return PreferenceRecord([Turn("user", f"how do i boil egg number {i}")], chosen, rejected, user_id=user,
                            profile=taste, record_id=f"{user}-{i}", metadata=dict(metadata))


def _records(n: int = 24) -> list[PreferenceRecord]:
    """Two users with opposite tastes: only the persona tells which response wins."""
    return [_pair(i, "brief" if i % 2 else "detailed", BRIEF if i % 2 else DETAILED) for i in range(n)]


def _tokenizer(texts: list[str], *, bert: bool) -> Any:
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]"] if bert else ["<pad>", "<unk>", "<s>", "</s>"]
    tok = Tokenizer(models.WordLevel(unk_token=specials[1]))
    tok.normalizer = normalizers.Lowercase()
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.train_from_iterator(texts, trainers.WordLevelTrainer(special_tokens=specials))
    tok.decoder = decoders.WordPiece(prefix="##")
    if bert:
        tok.post_processor = processors.TemplateProcessing(single="[CLS] $A [SEP]",
                                                           special_tokens=[("[CLS]", 2), ("[SEP]", 3)])
        return PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="[UNK]", pad_token="[PAD]",
                                       cls_token="[CLS]", sep_token="[SEP]")
    return PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="<unk>", pad_token="<pad>", bos_token="<s>",
                                   eos_token="</s>")


@pytest.fixture(scope="module")
def torch_one_thread() -> None:
    torch = pytest.importorskip("torch")
    pytest.importorskip("trl")
    torch.set_num_threads(1)


@pytest.fixture(scope="module")
def tiny_bert(tmp_path_factory: pytest.TempPathFactory, torch_one_thread: None) -> Path:
    import torch
    from transformers import BertConfig, BertForSequenceClassification

    texts = [t for r in _records() for t in (r.prompt, r.chosen, r.rejected, r.profile or "")]
    tokenizer = _tokenizer(texts + ["user: request: response: number 99"], bert=True)
    config = BertConfig(vocab_size=len(tokenizer), hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                        intermediate_size=64, max_position_embeddings=128, num_labels=1,
                        initializer_range=0.5)  # a wide init: a tiny model then learns in a few steps
    torch.manual_seed(0)
    folder = tmp_path_factory.mktemp("tiny-bert")
    BertForSequenceClassification(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def tiny_llama(tmp_path_factory: pytest.TempPathFactory, torch_one_thread: None) -> Path:
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    from personae.signatures.tailoring import tailored_prompt

    texts = [tailored_prompt(f"how to boil egg {i}", p) + f" {SHORT} {LONG}" for i in range(4) for p in (BRIEF,
                                                                                                        DETAILED)]
    tokenizer = _tokenizer(texts, bert=False)
    config = LlamaConfig(vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=2, num_key_value_heads=2, max_position_embeddings=256,
                         pad_token_id=0, bos_token_id=2, eos_token_id=3, tie_word_embeddings=True)
    torch.manual_seed(0)
    folder = tmp_path_factory.mktemp("tiny-llama")
    LlamaForCausalLM(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


# -- the package without the extra ---------------------------------------------------------
def test_importing_distill_does_not_import_torch() -> None:
    code = textwrap.dedent("""
        import sys
        import personae.distill
        from personae.distill import RewardModelConfig, TailorConfig, train_reward_model
        print([m for m in ("torch", "transformers", "trl", "peft") if m in sys.modules])
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_export_list() -> None:
    import personae.distill as distill

    assert sorted(distill.__all__) == sorted(set(distill.__all__)) == sorted(distill._EXPORTS)
    for name in distill.__all__:
        assert getattr(distill, name) is not None, name


def _parser() -> argparse.ArgumentParser:
    from personae.cli import distill, eval_tailoring

    parser = argparse.ArgumentParser(prog="personae")
    sub = parser.add_subparsers(dest="command", required=True)
    distill.register(sub)
    eval_tailoring.register(sub)
    return parser


def test_missing_extra_names_the_pip_install(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from personae.distill import PersonalizedRewardModel, require_distill

    monkeypatch.setitem(sys.modules, "torch", None)  # as if torch were not installed
    pip = r"pip install 'personae\[distill\]'"
    with pytest.raises(MissingExtraError, match=pip) as caught:
        require_distill("training a reward model")
    assert caught.value.extra == "distill" and "torch" in caught.value.feature
    with pytest.raises(MissingExtraError, match=pip):
        PersonalizedRewardModel.load(tmp_path)
    data = tmp_path / "pairs.jsonl"
    data.write_text(json.dumps({"prompt": "q", "chosen": "a", "rejected": "b"}) + "\n", encoding="utf-8")
    for argv in (["distill", "reward-model", str(data), "--out", str(tmp_path / "rm")],
                 ["distill", "tailor", "--sft", str(data), "--out", str(tmp_path / "gen")],
                 ["eval-tailoring", str(data), "--a", "model:smollm2", "--b", "column:chosen",
                  "--out", str(tmp_path / "ev")]):
        args = _parser().parse_args(argv)
        with pytest.raises(MissingExtraError, match=pip):
            args.run(args)


def test_cli_options_come_from_the_configs() -> None:
    args = _parser().parse_args(["distill", "reward-model", "data.jsonl", "--persona", "judges:j,profile",
                                 "--no-length-prior", "--freeze-layers", "2", "--evaluate", "--out", "o"])
    from personae.cli.options import config_from_args
    from personae.distill import RewardModelConfig
    from personae.pipelines.distill import RewardModelScript

    config, script = config_from_args(RewardModelConfig, args), config_from_args(RewardModelScript, args)
    assert (config.persona, config.length_prior, config.freeze_layers) == ("judges:j,profile", False, 2)
    assert (script.evaluate, script.out, config.threads) == (True, "o", None)
    tailor = _parser().parse_args(["distill", "tailor", "--dpo", "d.jsonl", "--persona", "retr", "--beta", "0.2"])
    assert (tailor.dpo, tailor.sft, tailor.persona, tailor.beta, tailor.lora_r) == ("d.jsonl", None, "retr", 0.2, 16)


def test_config_options_take_a_benchmarks_defaults_and_show_them() -> None:
    from personae.cli.options import add_config_options, config_from_args
    from personae.distill import RewardModelConfig

    parser = argparse.ArgumentParser()
    add_config_options(parser, RewardModelConfig, defaults={"epochs": 2.5, "length_prior": False})
    config = config_from_args(RewardModelConfig, parser.parse_args([]))
    assert (config.epochs, config.length_prior, config.max_length) == (2.5, False, RewardModelConfig().max_length)
    assert config_from_args(RewardModelConfig, parser.parse_args(["--epochs", "1"])).epochs == 1.0
    shown = " ".join(parser.format_help().split())
    assert "(default: 2.5)" in shown and "(default: off)" in shown and "(default: 1.0)" not in shown
    with pytest.raises(ValueError, match="epoch"):
        add_config_options(argparse.ArgumentParser(), RewardModelConfig, defaults={"epoch": 2})


def test_persona_benchmark_models_take_every_reward_model_option(monkeypatch: pytest.MonkeyPatch) -> None:
    """Both models of benchmarks/persona_reward.py are valid with the options its command line passes on."""
    import importlib.util

    from personae.distill import RewardModelConfig

    path = Path(__file__).resolve().parents[1] / "benchmarks" / "persona_reward.py"
    spec = importlib.util.spec_from_file_location("persona_reward_benchmark", path)
    assert spec is not None and spec.loader is not None
    benchmark = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, spec.name, benchmark)  # its dataclasses look their module up there
    spec.loader.exec_module(benchmark)
    for paired in (False, True):
        configs = benchmark.model_configs(RewardModelConfig(**benchmark.TUNED, paired_batches=paired))
        for config in configs.values():
            config.check()
        gold, plain = configs["gold persona"], configs["no persona"]
        assert (gold.persona, gold.flip_persona, gold.paired_batches) == (benchmark.GOLD, benchmark.FLIP, paired)
        assert (plain.persona, plain.flip_persona, plain.paired_batches) == ("none", None, False)
        assert (gold.learning_rate, gold.epochs) == (plain.learning_rate, plain.epochs) == (1e-4, 2.0)


# -- personas, inputs, the length prior, the protocol (no training) --------------------------
def test_persona_sources(tmp_path: Path) -> None:
    from personae.distill import PersonaResolver
    from personae.programs import PersonalizedJudge, judge_path

    PersonalizedJudge(user_id="brief", persona="Wants it short.").save(judge_path(tmp_path, "brief"))
    brief = _pair(1, "brief", BRIEF, persona="from the column")
    detailed = _pair(2, "detailed", DETAILED)
    chain = PersonaResolver(f"judges:{tmp_path},profile")
    assert (chain(brief), chain(detailed)) == ("Wants it short.", DETAILED)
    assert PersonaResolver("column:persona")(brief) == "from the column"
    assert PersonaResolver("column:persona")(detailed) == ""
    assert PersonaResolver("profile", personas={"brief": "given"})(brief) == "given"
    assert not PersonaResolver("none").uses_persona
    for bad in ("", "column", "profile:x", "none,profile", "memory"):
        with pytest.raises(ConfigError):
            PersonaResolver(bad)
    with pytest.raises(ConfigError, match="no such folder"):
        PersonaResolver(f"judges:{tmp_path / 'missing'}")


def test_length_weight_follows_the_data() -> None:
    from personae.distill import fit_length_weight

    assert fit_length_weight([1.0, 0.5, 2.0, -0.3]) > 0
    assert fit_length_weight([-1.0, -0.5, -2.0, 0.3]) < 0
    assert abs(fit_length_weight([1.0, -1.0])) < 1e-9


def test_evaluation_protocol_counts_ties_wrong_in_both_orders() -> None:
    from personae.distill import evaluate_scorers, length_scorer
    from personae.evaluation import summary_table

    test = [_pair(i, "u", DETAILED) for i in range(4)]
    test.append(PreferenceRecord([Turn("user", "q")], "same length", "same length", user_id="u", record_id="tie"))
    splits = {"u": UserSplit(train=[], val=[], test=test)}
    run = evaluate_scorers(splits, {"longer response": length_scorer,
                                    "reversed": lambda rs: [(-a, -b) for a, b in length_scorer(rs)]})
    longer, reversed_ = run.results.method("longer response"), run.results.method("reversed")
    assert (longer.judgments, longer.correct, longer.unscored) == (10, 8, 2)
    assert longer.accuracy == pytest.approx(0.8) and reversed_.accuracy == 0.0
    assert longer.orders_agreed == longer.pairs_both_scored == 4  # a scalar reward: both orders agree
    assert longer.unscored_reasons == {"tie": 2}
    assert {j.preferred for j in run.judgments if j.record_id == "tie"} == {None}
    assert "longer response" in summary_table(run, markdown=False)


def test_prompt_split_check_catches_a_leak() -> None:
    from personae.distill import check_prompt_split

    a, b = _pair(1, "u", BRIEF), _pair(2, "u", BRIEF)
    assert check_prompt_split({"u": UserSplit([a], [], [b])}) == 1
    with pytest.raises(DataError, match="share their prompt"):
        check_prompt_split({"u": UserSplit([a], [], [_pair(1, "u", DETAILED)])})


def test_input_template_budgets(tiny_bert: Path) -> None:
    from transformers import AutoTokenizer

    from personae.distill._encoding import InputEncoder, default_template

    tokenizer = AutoTokenizer.from_pretrained(tiny_bert)
    template = default_template(max_length=24, persona_tokens=4, context_tokens=4)
    encode = InputEncoder(tokenizer, template)
    ids = encode(BRIEF + " " + DETAILED, "how do i boil egg number 3", LONG)
    assert len(ids) == 24 and ids[0] == tokenizer.cls_token_id and ids[-1] == tokenizer.sep_token_id
    assert ids.count(tokenizer.sep_token_id) == 3  # persona | request | response
    assert encode("", "q", SHORT).count(tokenizer.sep_token_id) == 2  # no persona: no persona segment
    with pytest.raises(ConfigError, match="leaves the response"):
        default_template(max_length=40, persona_tokens=30, context_tokens=8)


# -- training ------------------------------------------------------------------------------
@pytest.mark.parametrize("length_prior", [False, True])
@_THIRD_PARTY[0]
@_THIRD_PARTY[1]
def test_reward_model_learns_the_persona_and_reloads(tiny_bert: Path, tmp_path: Path, length_prior: bool) -> None:
    from personae.distill import PersonalizedRewardModel, RewardModelConfig, train_reward_model

    config = RewardModelConfig(model=str(tiny_bert), freeze_layers=1 if length_prior else 0, epochs=8,
                               batch_size=8, learning_rate=3e-3, logging_steps=3, max_length=48, persona_tokens=8,
                               context_tokens=12, length_prior=length_prior, device="cpu")
    logs: list[dict[str, Any]] = []
    training = train_reward_model(_records(), config, out=tmp_path / "rm", on_log=logs.append)
    assert training.steps == 24 and training.pairs == 24
    assert training.losses[-1] < 0.8 * training.losses[0]
    assert any("loss" in entry for entry in logs)
    files = {p.name for p in (tmp_path / "rm").iterdir()}
    assert {"config.json", "model.safetensors", "personae_reward.json"} <= files
    rm = PersonalizedRewardModel.load(tmp_path / "rm", device="cpu")
    assert rm.uses_persona and rm.info.persona == "profile"
    assert rm.length_weight == pytest.approx(0.0, abs=1e-6)  # both lengths win equally often here
    prompt = "how do i boil egg number 99"
    scores = rm.score_batch([(BRIEF, prompt, SHORT), (BRIEF, prompt, LONG), (DETAILED, prompt, SHORT)])
    assert rm.score(BRIEF, prompt, SHORT) == pytest.approx(scores[0], abs=1e-4)
    assert rm.compare(BRIEF, prompt, SHORT, SHORT).preferred == "tie"
    if not length_prior:  # trained to the end: the persona decides which response wins
        assert training.losses[-1] < 0.1
        assert rm.compare(BRIEF, prompt, SHORT, LONG).preferred == "A"
        assert rm.compare(DETAILED, prompt, SHORT, LONG).preferred == "B"
        assert scores[0] > scores[1] and scores[2] < scores[0]


@_THIRD_PARTY[0]
@_THIRD_PARTY[1]
def test_a_shallower_model_trains_and_a_saved_one_trains_on(tiny_bert: Path, tmp_path: Path) -> None:
    """``layers`` keeps the backbone's lowest layers (saved with that depth); ``init_from`` continues
    from a saved model, its head and all, instead of starting from the backbone."""
    import torch

    from personae.distill import PersonalizedRewardModel, RewardModelConfig, train_reward_model
    from personae.errors import ConfigError

    settings = dict(model=str(tiny_bert), freeze_layers=0, batch_size=8, learning_rate=3e-3, logging_steps=1,
                    max_length=48, persona_tokens=8, context_tokens=12, length_prior=False, device="cpu")
    shallow = train_reward_model(_records(), RewardModelConfig(layers=1, epochs=16, **settings), out=tmp_path / "one")
    assert json.loads((tmp_path / "one" / "config.json").read_text())["num_hidden_layers"] == 1
    rm = PersonalizedRewardModel.load(tmp_path / "one", device="cpu")
    assert len(rm.model.bert.encoder.layer) == 1 and rm.info.training["config"]["layers"] == 1
    prompt = "how do i boil egg number 99"
    assert rm.compare(BRIEF, prompt, SHORT, LONG).preferred == "A"
    assert rm.compare(DETAILED, prompt, SHORT, LONG).preferred == "B"

    on = train_reward_model(_records(), RewardModelConfig(**{**settings, "learning_rate": 1e-6}, max_steps=3,
                                                          init_from=str(tmp_path / "one")), out=tmp_path / "on")
    assert on.losses[0] < 0.5 * shallow.losses[0]  # it starts where the saved model stopped
    assert on.model.info.base_model == str(tiny_bert) and on.model.info.training["config"]["init_from"]
    assert len(on.model.model.bert.encoder.layer) == 1
    assert on.model.compare(DETAILED, prompt, SHORT, LONG).preferred == "B"

    with pytest.raises(ConfigError, match="trained with personas; this one trains without"):
        train_reward_model(_records(), RewardModelConfig(**settings, persona="none", max_steps=1,
                                                         init_from=str(tmp_path / "one")))
    # a trained model cut shallower: its lowest layer and its head carry over, then train on
    train_reward_model(_records(), RewardModelConfig(epochs=16, **settings), out=tmp_path / "two")
    two = PersonalizedRewardModel.load(tmp_path / "two", device="cpu")
    cut = train_reward_model(_records(), RewardModelConfig(**{**settings, "learning_rate": 1e-6}, max_steps=1,
                                                           layers=1, init_from=str(tmp_path / "two")),
                             out=tmp_path / "cut")
    assert json.loads((tmp_path / "cut" / "config.json").read_text())["num_hidden_layers"] == 1
    kept, source = cut.model.model.state_dict(), two.model.state_dict()
    assert not any(".layer.1." in name for name in kept)
    for name in ("bert.encoder.layer.0.attention.self.query.weight", "classifier.weight"):
        assert torch.allclose(kept[name], source[name], atol=1e-4), name
    with pytest.raises(ConfigError, match="the backbone has 1 layers"):
        train_reward_model(_records(), RewardModelConfig(**settings, layers=2, init_from=str(tmp_path / "one")))
    with pytest.raises(ConfigError, match="the backbone has 2 layers"):
        train_reward_model(_records(), RewardModelConfig(**settings, layers=3))
    args = _parser().parse_args(["distill", "reward-model", "pairs.jsonl", "--layers", "3", "--init-from", "m"])
    assert (args.layers, args.init_from) == (3, "m")


@_THIRD_PARTY[0]
@_THIRD_PARTY[1]
def test_reward_model_command_evaluates_by_the_protocol(tiny_bert: Path, tmp_path: Path,
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    rows = []
    for user, persona in (("brief", BRIEF), ("detailed", DETAILED)):
        for i in range(10):
            record = _pair(i, user, persona)
            rows.append({"user_id": user, "user_profile": persona, "prompt": record.prompt,
                         "chosen": record.chosen, "rejected": record.rejected})
    data = tmp_path / "pairs.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    out = tmp_path / "rm"
    args = _parser().parse_args(["distill", "reward-model", str(data), "--model", str(tiny_bert), "--evaluate",
                                 "--out", str(out), "--max-steps", "12", "--batch-size", "8", "--learning-rate",
                                 "3e-3", "--max-length", "48", "--persona-tokens", "8", "--context-tokens", "12",
                                 "--freeze-layers", "0", "--device", "cpu", "--threads", "1"])
    args.verbose = 1
    assert args.run(args) == 0
    printed = capsys.readouterr().out
    assert "trained on 14 pairs: 12 steps" in printed and "reward model" in printed
    from personae.evaluation import read_run_log

    log = read_run_log(out / "run.json")
    assert log.config.methods == ["longer response", "reward model"]
    assert log.results.method("reward model").pairs == 6 and log.results.method("reward model").judgments == 12
    assert log.results.method("reward model").accuracy == 1.0
    assert (out / "report.md").exists()


# -- both sides of a pair: personas for the winner and for the loser ------------------------
def _two_sided(i: int, *, loser_persona: str = DETAILED, winner_persona: str = BRIEF) -> PreferenceRecord:
    """SHORT always won, under BRIEF; the data also says who would have picked LONG (DETAILED)."""
    return PreferenceRecord([Turn("user", f"how do i boil egg number {i}")], SHORT, LONG, record_id=f"p{i}",
                            metadata={"chosen_persona_gold": winner_persona,
                                      "rejected_persona_gold": loser_persona})


def test_flip_pairs_builds_both_sides() -> None:
    from personae.distill import FLIPPED_SUFFIX, PersonaResolver, flip_pairs

    winner, loser = PersonaResolver("column:chosen_persona_gold"), PersonaResolver("column:rejected_persona_gold")
    sides = flip_pairs([_two_sided(1), _two_sided(2, loser_persona="")], winner, loser)
    assert [(r.record_id, r.chosen, r.rejected, r.metadata["side"], r.metadata["persona"],
             r.metadata["other_persona"]) for r in sides] == [
        ("p1", SHORT, LONG, "chosen", BRIEF, DETAILED),
        (f"p1{FLIPPED_SUFFIX}", LONG, SHORT, "rejected", DETAILED, BRIEF),
        ("p2", SHORT, LONG, "chosen", BRIEF, ""),  # no persona for the loser: one side only
    ]
    same = flip_pairs([_two_sided(4, loser_persona=BRIEF)], winner, loser)
    assert [r.metadata["side"] for r in same] == ["chosen"]  # a flip would repeat the input, label reversed
    assert sides[1].prompt == sides[0].prompt and sides[1].metadata["chosen_persona_gold"] == BRIEF
    with pytest.raises(DataError, match="no persona for the side that won") as caught:
        flip_pairs([_two_sided(1), _two_sided(3, winner_persona=" ")], winner, loser)
    assert (caught.value.source, caught.value.field) == ("p3", "persona")


def test_training_order_keeps_both_sides_of_a_pair_in_one_batch() -> None:
    from personae.distill import FLIPPED_SUFFIX, PersonaResolver, RewardModelConfig, flip_pairs, training_order

    records = [_two_sided(i) for i in range(7)] + [_two_sided(i, loser_persona="") for i in range(7, 10)]
    sides = flip_pairs(records, PersonaResolver("column:chosen_persona_gold"),
                       PersonaResolver("column:rejected_persona_gold"))
    assert len(sides) == 17  # 7 pairs both ways, 3 one way
    order = training_order(sides, passes=2, seed=0, batch_size=4, paired=True)
    assert sorted(order) == sorted(list(range(17)) * 2)  # every row once per pass
    first, second = order[:17], order[17:]
    assert first != second and order == training_order(sides, passes=2, seed=0, batch_size=4, paired=True)
    assert order != training_order(sides, passes=2, seed=1, batch_size=4, paired=True)
    flipped_at: dict[str, list[int]] = {r.record_id.removesuffix(FLIPPED_SUFFIX): [] for r in sides}
    for position, index in enumerate(order):
        flipped_at[sides[index].record_id.removesuffix(FLIPPED_SUFFIX)].append(position // 4)
    for record_id, batches in flipped_at.items():
        if record_id in {"p7", "p8", "p9"}:
            assert len(batches) == 2  # one side, once per pass
        else:  # both sides, each pass's two in the same batch
            assert len(batches) == 4 and batches[0] == batches[1] and batches[2] == batches[3], (record_id, batches)
    with pytest.raises(ConfigError, match="set flip_persona"):
        RewardModelConfig(paired_batches=True).check()


def test_length_grouped_order_pads_less_and_keeps_batches_whole() -> None:
    import random

    from personae.distill import FLIPPED_SUFFIX, PersonaResolver, flip_pairs, training_order

    rng = random.Random(5)
    lengths = [rng.randint(10, 250) for _ in range(403)]
    rows = [PreferenceRecord([Turn("user", "q")], "a", "b", record_id=f"r{i}") for i in range(len(lengths))]

    def padded(order: list[int], size: int) -> int:  # tokens the trainer pads to, reading `size` rows a step
        return sum(max(lengths[i] for i in order[k:k + size]) * len(order[k:k + size])
                   for k in range(0, len(order), size))

    plain = training_order(rows, passes=2, seed=0, batch_size=8)
    grouped = training_order(rows, passes=2, seed=0, batch_size=8, lengths=lengths)
    assert sorted(grouped) == sorted(plain) == sorted(list(range(403)) * 2)  # every row once per pass
    assert grouped == training_order(rows, passes=2, seed=0, batch_size=8, lengths=lengths)
    assert grouped != training_order(rows, passes=2, seed=1, batch_size=8, lengths=lengths)
    assert padded(grouped, 8) < 0.8 * padded(plain, 8)
    # 403 rows: each pass's short batch of 3 goes to the end, so every batch of 8 is one of the layout's
    batches = [grouped[k:k + 8] for k in range(0, 800, 8)]
    assert all(max(lengths[i] for i in b) - min(lengths[i] for i in b) < 60 for b in batches)
    assert sorted(grouped[800:]) == sorted(plain[400:403] + plain[803:806])
    assert batches[:50] != sorted(batches[:50], key=lambda b: -max(lengths[i] for i in b))  # batches shuffled

    # Paired and grouped: both sides of a pair still share a batch
    records = [_two_sided(i) for i in range(40)]
    sides = flip_pairs(records, PersonaResolver("column:chosen_persona_gold"),
                       PersonaResolver("column:rejected_persona_gold"))
    side_lengths = [len(r.chosen) + len(r.rejected) for r in sides]
    order = training_order(sides, passes=1, seed=0, batch_size=4, paired=True, lengths=side_lengths)
    assert sorted(order) == list(range(80))
    pair_of = [sides[i].record_id.removesuffix(FLIPPED_SUFFIX) for i in order]
    assert all(pair_of[k] == pair_of[k + 1] for k in range(0, 80, 2))
    with pytest.raises(ConfigError, match="lengths for"):
        training_order(rows, passes=1, seed=0, batch_size=8, lengths=lengths[:-1])


def test_flipped_training_is_checked_and_parsed() -> None:
    from personae.cli.options import config_from_args
    from personae.distill import RewardModelConfig

    args = _parser().parse_args(["distill", "reward-model", "d.jsonl", "--persona", "column:chosen_persona_gold",
                                 "--flip-persona", "column:rejected_persona_gold"])
    config = config_from_args(RewardModelConfig, args)
    assert config.flip_persona == "column:rejected_persona_gold"
    config.check()
    with pytest.raises(ConfigError, match="leave flip_persona unset"):
        RewardModelConfig(persona="profile", flip_persona="none").check()
    with pytest.raises(ConfigError, match="persona is none"):
        RewardModelConfig(persona="none", flip_persona="column:rejected_persona_gold").check()
    with pytest.raises(ConfigError):
        RewardModelConfig(flip_persona="memory").check()
    with pytest.raises(ConfigError, match="must come from a column"):
        RewardModelConfig(flip_persona="profile").check()


def test_both_sides_protocol_holds_a_persona_blind_scorer_to_half() -> None:
    from personae.distill import PersonaResolver, evaluate_sides, length_scorer, side_figures

    records = [_two_sided(i) for i in range(3)]  # SHORT won: the longer response loses on the chosen side
    records.append(PreferenceRecord([Turn("user", "q")], LONG, SHORT, record_id="longer-won",
                                    metadata={"chosen_persona_gold": DETAILED, "rejected_persona_gold": BRIEF}))
    records.append(PreferenceRecord([Turn("user", "r")], LONG, SHORT, record_id="one-sided",
                                    metadata={"chosen_persona_gold": DETAILED}))
    run = evaluate_sides(records, {"longer response": length_scorer},
                         persona=PersonaResolver("column:chosen_persona_gold"),
                         flip=PersonaResolver("column:rejected_persona_gold"))
    assert sorted({j.user_id for j in run.judgments}) == ["chosen side", "rejected side"]
    figures = side_figures(run, "longer response")
    assert figures["chosen"].pairs == 5 and figures["rejected"].pairs == 4 and figures["both"].pairs == 9
    assert figures["chosen"].accuracy == pytest.approx(2 / 5)
    assert figures["rejected"].accuracy == pytest.approx(3 / 4)
    assert figures["both"].accuracy == pytest.approx(5 / 9)
    two_sided = side_figures(evaluate_sides(records[:4], {"longer response": length_scorer},
                                            persona=PersonaResolver("column:chosen_persona_gold"),
                                            flip=PersonaResolver("column:rejected_persona_gold")), "longer response")
    assert two_sided["both"].accuracy == 0.5  # a scorer that ignores personas gets half of both sides
    assert two_sided["both"].ci_low == two_sided["both"].ci_high == 0.5  # whole pairs resampled: always 2 of 4
    with pytest.raises(DataError, match="its own record id") as caught:
        evaluate_sides([_two_sided(1), _two_sided(1)], {"longer response": length_scorer},
                       persona=PersonaResolver("column:chosen_persona_gold"),
                       flip=PersonaResolver("column:rejected_persona_gold"))
    assert (caught.value.source, caught.value.field) == ("p1", "record_id")
    with pytest.raises(ConfigError, match="no judgments"):
        side_figures(run, "reward model")


@_THIRD_PARTY[0]
@_THIRD_PARTY[1]
@pytest.mark.parametrize(("paired", "grouped"), [(False, False), (True, False), (True, True)],
                         ids=["shuffled", "paired batches", "paired and length-grouped batches"])
def test_a_flipped_reward_model_follows_the_persona_a_one_way_model_cannot(tiny_bert: Path, tmp_path: Path,
                                                                          paired: bool, grouped: bool,
                                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """The winner is always the short answer; only the flipped data says when the long one would win."""
    from transformers import AutoTokenizer
    from trl import RewardTrainer  # type: ignore[attr-defined]

    from personae.distill import PersonaResolver, RewardModelConfig, evaluate_sides, side_figures, train_reward_model

    # What the trainer reads, batch by batch: how many rows are rejected sides (the DETAILED persona wins)
    tokenizer, flipped_rows = AutoTokenizer.from_pretrained(tiny_bert), []
    compute_loss = RewardTrainer.compute_loss

    def reading(trainer: Any, model: Any, inputs: Any, *args: Any, **kwargs: Any) -> Any:
        if model.training:
            winners = inputs["input_ids"][: len(inputs["input_ids"]) // 2]
            flipped_rows.append(sum("detailed" in tokenizer.decode(ids) for ids in winners))
        return compute_loss(trainer, model, inputs, *args, **kwargs)

    train = [_two_sided(i) for i in range(20)]
    settings = dict(model=str(tiny_bert), persona="column:chosen_persona_gold", freeze_layers=0, batch_size=8,
                    learning_rate=3e-3, max_length=48, persona_tokens=8, context_tokens=12, length_prior=False,
                    device="cpu")
    monkeypatch.setattr(RewardTrainer, "compute_loss", reading)
    flipped = train_reward_model(train, RewardModelConfig(flip_persona="column:rejected_persona_gold", epochs=6,
                                                          paired_batches=paired, length_grouped=grouped, **settings),
                                 out=tmp_path / "flipped")
    monkeypatch.undo()
    assert len(flipped_rows) == 30 and sum(flipped_rows) == 6 * 20  # every row once per pass
    if paired:  # read in training_order's order: 4 rejected sides in each batch of 8, as whole pairs give
        assert set(flipped_rows) == {4}
    else:  # sampled: the sides of a pair fall where they fall
        assert set(flipped_rows) != {4}
    one_way = train_reward_model(train, RewardModelConfig(epochs=8, **settings))
    assert flipped.pairs == 40 and flipped.model.info.training["flipped_pairs"] == 20 and one_way.pairs == 20
    assert flipped.losses[-1] < 0.1 and flipped.steps == 30  # 6 passes of 5 batches, laid out or sampled
    prompt = "how do i boil egg number 99"
    flip_model = flipped.model
    assert flip_model.compare(BRIEF, prompt, SHORT, LONG).preferred == "A"
    assert flip_model.compare(DETAILED, prompt, SHORT, LONG).preferred == "B"  # the persona swap flips the choice
    assert one_way.model.compare(DETAILED, prompt, SHORT, LONG).preferred == "A"  # it learned "short wins"

    held_out = [_two_sided(i) for i in range(20, 24)]

    def gold(record: PreferenceRecord) -> str:
        return str(record.metadata["persona"])

    def swapped(record: PreferenceRecord) -> str:
        return str(record.metadata["other_persona"])

    scorers = {name: (lambda rs, m=model, p=p: m.score_records(rs, p))
               for name, model, p in (("flipped", flip_model, gold), ("flipped, personas swapped", flip_model,
                                                                         swapped), ("one way", one_way.model, gold))}
    run = evaluate_sides(held_out, scorers, persona=PersonaResolver("column:chosen_persona_gold"),
                         flip=PersonaResolver("column:rejected_persona_gold"))
    assert side_figures(run, "flipped")["both"].accuracy == 1.0
    assert side_figures(run, "flipped, personas swapped")["both"].accuracy == 0.0
    one = side_figures(run, "one way")
    assert (one["chosen"].accuracy, one["rejected"].accuracy, one["both"].accuracy) == (1.0, 0.0, 0.5)
    saved = json.loads((tmp_path / "flipped" / "personae_reward.json").read_text(encoding="utf-8"))
    assert saved["training"]["flip_persona"] == "column:rejected_persona_gold"


@_THIRD_PARTY[0]
@_THIRD_PARTY[1]
def test_reward_model_command_with_flipped_personas(tiny_bert: Path, tmp_path: Path,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    rows = [{"prompt": r.prompt, "chosen": r.chosen, "rejected": r.rejected, **r.metadata}
            for r in (_two_sided(i) for i in range(20))]
    data = tmp_path / "pairs.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    out = tmp_path / "rm"
    args = _parser().parse_args(["distill", "reward-model", str(data), "--model", str(tiny_bert), "--evaluate",
                                 "--persona", "column:chosen_persona_gold", "--flip-persona",
                                 "column:rejected_persona_gold", "--no-length-prior", "--out", str(out),
                                 "--epochs", "10", "--batch-size", "8", "--learning-rate", "3e-3", "--max-length",
                                 "48", "--persona-tokens", "8", "--context-tokens", "12", "--freeze-layers", "0",
                                 "--device", "cpu", "--threads", "1"])
    args.verbose = 1
    assert args.run(args) == 0
    printed = capsys.readouterr().out
    assert "trained on 28 pairs" in printed  # 14 train+val pairs, both ways
    assert "longer response: chosen 0.0%" in printed and "rejected 100.0%" in printed
    from personae.distill import side_figures
    from personae.evaluation import read_run_log

    log = read_run_log(out / "run.json")
    figures = side_figures(log, "reward model")
    assert figures["chosen"].pairs == figures["rejected"].pairs == 6
    assert figures["both"].accuracy == 1.0
    assert log.config.fractions == (0.5, 0.2, 0.3)  # the split the test pairs came from, not (0, 0, 1)
    report = (out / "report.md").read_text(encoding="utf-8")
    assert "split by prompt: train 0.5 / val 0.2 / test 0.3" in report and "- runtime: torch" in report


@_THIRD_PARTY[0]
@_THIRD_PARTY[1]
def test_tailored_generator_sft_then_dpo(tiny_llama: Path, tmp_path: Path) -> None:
    from personae.distill import TailorConfig, TailoredGenerator, TailoringExample, train_tailored_generator

    examples = [TailoringExample(f"how to boil egg {i % 4}", p, a, b) for i in range(8)
                for p, a, b in ((BRIEF, SHORT, LONG), (DETAILED, LONG, SHORT))]
    config = TailorConfig(model=str(tiny_llama), sft_epochs=3, dpo_epochs=2, batch_size=8, sft_learning_rate=1e-2,
                          dpo_learning_rate=5e-3, logging_steps=2, max_length=64, lora_r=8, lora_alpha=16,
                          device="cpu")
    training = train_tailored_generator(examples, examples, config, out=tmp_path / "gen")
    sft, dpo = training.stages
    assert (sft.stage, sft.steps, dpo.stage, dpo.steps) == ("sft", 6, "dpo", 4)
    assert sft.losses[-1] < sft.losses[0]
    assert dpo.losses[0] == pytest.approx(math.log(2), abs=0.05) and dpo.losses[-1] < dpo.losses[0]
    info = json.loads((tmp_path / "gen" / "personae_tailor.json").read_text(encoding="utf-8"))
    assert [s["stage"] for s in info["stages"]] == ["sft", "dpo"]
    generator = TailoredGenerator.load(tmp_path / "gen", device="cpu")
    outputs = generator.generate_batch([("how to boil egg 1", BRIEF), ("how to boil egg 1", DETAILED)],
                                       max_new_tokens=6)
    assert len(outputs) == 2 and all(isinstance(o, str) and o for o in outputs)
    assert generator.generate("how to boil egg 1", BRIEF, max_new_tokens=6) == outputs[0]

    # eval-tailoring generates side A with the trained model (model:PATH) and judges it against a column
    from personae.lm import ScriptedLM
    from personae.pipelines.eval_tailoring import TailoringEvalConfig
    from personae.pipelines.eval_tailoring import eval_tailoring as main

    data = tmp_path / "test.jsonl"
    data.write_text("".join(json.dumps({"prompt": f"Human: how to boil egg {k}", "chosen": f"Assistant: {SHORT}",
                                        "rejected": "Assistant: no", "chosen_persona_gold": BRIEF}) + "\n"
                            for k in range(2)), encoding="utf-8")
    config = TailoringEvalConfig(data=str(data), a=f"model:{tmp_path / 'gen'}", b="column:chosen", max_new_tokens=6,
                                 device="cpu", out=str(tmp_path / "ev"))
    log = main(config, ScriptedLM(lambda call: {"reasoning": "r", "preferred": "A"}))
    assert log.results.criterion("quality").ties == 2 and log.results.delta_pq == 0.0  # position bias only: all ties
    generated = [json.loads(line) for line in (tmp_path / "ev" / "generations_a.jsonl").read_text().splitlines()]
    assert [g["persona"] for g in generated] == [BRIEF, BRIEF] and all(g["response"] for g in generated)


def test_tailoring_examples_take_both_sides() -> None:
    from personae.data import load_preferences
    from personae.distill import tailoring_examples

    rows = [{"prompt": "Human: hi\n\nAssistant: hello\n\nHuman: boil an egg?", "chosen": "Assistant: short",
             "rejected": "Assistant: long", "chosen_persona_gold": "brief", "rejected_persona_gold": "thorough",
             "chosen_persona_retr": "terse", "rejected_persona_retr": ""}]
    records = load_preferences(rows).records
    gold = tailoring_examples(records)
    assert [(e.persona, e.chosen, e.rejected) for e in gold] == [("brief", "short", "long"),
                                                                 ("thorough", "long", "short")]
    assert gold[0].prompt.endswith("User: boil an egg?")
    assert [e.persona for e in tailoring_examples(records, persona="retr")] == ["terse"]
    assert len(tailoring_examples(records, sides="chosen")) == 1
    assert [e.persona for e in tailoring_examples(records, persona="{side}_persona_gold")] == ["brief", "thorough"]


# -- comparing generators ------------------------------------------------------------------
def _judge(call: Any) -> Any:
    first = call.field("response_a") or ""
    if call.field("persona") is not None:  # personalization: the tailored response always wins
        return {"reasoning": "fits the persona", "preferred": "A" if "tailored" in first else "B"}
    if "broken" in (call.field("prompt") or ""):
        return "not json"
    return {"reasoning": "position bias", "preferred": "A"}  # quality: the orders disagree, a tie


def test_win_rates_ties_and_delta_pq() -> None:
    from personae.evaluation import TailoringItem, delta_pq
    from personae.lm import ScriptedLM
    from personae.pipelines import compare_generations

    items = [TailoringItem(f"i{k}", f"prompt {k}", "likes it short", f"tailored {k}", f"plain {k}") for k in range(3)]
    items.append(TailoringItem("i3", "broken prompt", "likes it short", "tailored", "plain"))
    log = compare_generations(items, lm=ScriptedLM(_judge), max_attempts=1)
    personal, quality = log.results.criterion("personalization"), log.results.criterion("quality")
    assert (personal.wins, personal.ties, personal.losses, personal.win_rate) == (4, 0, 0, 1.0)
    assert (quality.wins, quality.ties, quality.unscored, quality.losses) == (0, 4, 1, 0)
    assert quality.win_rate == 0.5
    assert log.results.delta_pq == pytest.approx(0.5) == delta_pq(1.0, 0.5)
    assert log.results.outcomes["i0"] == {"personalization": "A", "quality": "tie"}
    assert log.results.outcomes["i3"]["quality"] == "unscored"
    assert len(log.judgments) == 16 and {j.first for j in log.judgments} == {"A", "B"}
    failed = next(j for j in log.judgments if not j.scored)
    assert failed.raw_output == "not json" and failed.prompt and failed.picked is None and failed.kind == "parse"
    assert log.counts.failures == {"parse": 2} and log.counts.total == 16
    assert delta_pq(0.5, 0.5) == 0.0 and delta_pq(0.0, 0.0) == -1.0


def test_eval_tailoring_from_files(tmp_path: Path) -> None:
    from personae.lm import ScriptedLM
    from personae.pipelines.eval_tailoring import TailoringEvalConfig
    from personae.pipelines.eval_tailoring import eval_tailoring as main

    rows = [{"prompt": f"Human: question {k}", "chosen": f"Assistant: plain {k}", "rejected": "Assistant: no",
             "chosen_persona_gold": "likes it short", "chosen_persona_retr": "retrieved"} for k in range(3)]
    data = tmp_path / "test.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    generations = tmp_path / "a.jsonl"
    generations.write_text("".join(json.dumps({"prompt": f"question {k}", "response": f"tailored {k}"}) + "\n"
                                   for k in range(3)), encoding="utf-8")
    config = TailoringEvalConfig(data=str(data), a=str(generations), b="column:chosen", out=str(tmp_path / "ev"))
    log = main(config, ScriptedLM(_judge))
    assert log.results.criterion("personalization").win_rate == 1.0 and log.results.delta_pq == pytest.approx(0.5)
    saved = json.loads((tmp_path / "ev" / "run.json").read_text(encoding="utf-8"))
    assert saved["results"]["delta_pq"] == pytest.approx(0.5) and saved["config"]["extra"]["b"] == "column:chosen"
    assert saved["command"] == "eval-tailoring" and saved["status"] == "success"
    judge = ScriptedLM(_judge)
    assert main(config, judge).results.delta_pq == pytest.approx(0.5) and not judge.calls  # resumed from the ledger
    wrong = tmp_path / "wrong.jsonl"
    wrong.write_text(json.dumps({"prompt": "another", "response": "x"}) + "\n", encoding="utf-8")
    with pytest.raises(DataError):
        main(TailoringEvalConfig(data=str(data), a=str(wrong), b="column:chosen", out=str(tmp_path / "e2")),
             ScriptedLM(_judge))


def test_a_persona_store_judges_and_ranks_with_the_reward_model(tiny_bert: Path, tmp_path: Path) -> None:
    """No LM at request time: the reward model judges with each user's stored persona."""
    from personae.distill import RewardModelConfig, train_reward_model
    from personae.optimizers import PersonalizedJudge
    from personae.store import PersonaStore, RewardModelBackend, UpdatePolicy

    config = RewardModelConfig(model=str(tiny_bert), freeze_layers=0, epochs=8, batch_size=8, learning_rate=3e-3,
                               max_length=48,
                               persona_tokens=8, context_tokens=12, length_prior=False, device="cpu")
    train_reward_model(_records(), config, out=tmp_path / "rm")
    backend = RewardModelBackend(str(tmp_path / "rm"), device="cpu")
    policy = UpdatePolicy(debounce_s=0.0)
    with PersonaStore(tmp_path / "s.db", backend=backend, policy=policy, background=False) as store:
        store.import_judges([PersonalizedJudge("brief", BRIEF), PersonalizedJudge("detailed", DETAILED)])
        prompt = "how do i boil egg number 99"
        brief, detailed = store.judge("brief", prompt, SHORT, LONG), store.judge("detailed", prompt, SHORT, LONG)
        assert (brief.preferred, brief.version, brief.personalization) == ("A", 1, "persona")
        assert detailed.preferred == "B" and brief.probability > 0.5 > detailed.probability
        ranking = store.rank("detailed", prompt, [SHORT, LONG, SHORT])
        assert ranking.best == 1 and ranking.comparisons == 0 and ranking.version == 1
        # prequential judgments by the reward model, with the persona current on arrival
        store.add_preferences("brief", [_pair(100 + i, "brief", BRIEF) for i in range(3)])
        store.add_preferences("newcomer", [_pair(200, "newcomer", DETAILED)])
        assert store.process_jobs() == 2
        state = store.persona("brief")
        assert state.prequential_judged == 3 and state.prequential_accuracy == 1.0 and state.version == 1
        cold = store.persona("newcomer")
        assert cold.personalization == "none" and cold.prequential_judged == 1 and cold.version is None

    # the same judgments over HTTP: `personae serve-api --judge reward-model:DIR`, offline
    pytest.importorskip("fastapi")
    from personae.client import PersonaeClient
    from personae.testing import serve_api

    offline = {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    args = ["--judge", f"reward-model:{tmp_path / 'rm'}", "--model", "none", "--device", "cpu", "--no-auth"]
    with serve_api(tmp_path / "s.db", args, env=offline) as service, PersonaeClient(service.url) as client:
        assert client.health(ready=True)["detail"]["judge"] == "reward-model"
        remote = client.judge("detailed", prompt, SHORT, LONG)
        assert (remote.preferred, remote.version) == ("B", 1)
        assert remote.probability == pytest.approx(detailed.probability, abs=1e-5)
        assert client.rank("detailed", prompt, [SHORT, LONG, SHORT]).best == 1


def test_an_onnx_export_scores_as_torch_does_and_a_stale_one_is_refused(tiny_bert: Path, tmp_path: Path) -> None:
    """fp32 on ONNX Runtime matches torch within float noise; int8 keeps the ranking of a fixed
    set of pairs; an export older than the model's weights is refused with its reason."""
    pytest.importorskip("onnxruntime")
    from personae.distill import PersonalizedRewardModel, RewardModelConfig, export_onnx, train_reward_model
    from personae.errors import DataError

    config = RewardModelConfig(model=str(tiny_bert), freeze_layers=0, epochs=4, batch_size=8, learning_rate=3e-3,
                               max_length=48,
                               persona_tokens=8, context_tokens=12, device="cpu")
    train_reward_model(_records(), config, out=tmp_path / "rm")
    with pytest.raises(DataError, match="no ONNX export"):
        PersonalizedRewardModel.load(tmp_path / "rm", runtime="onnx")
    from personae.cli.main import main

    assert main(["distill", "export", str(tmp_path / "rm"), "--onnx", "--int8"]) == 0   # the command line's way
    out = tmp_path / "rm" / "onnx"
    assert {p.name for p in out.iterdir()} == {"model.onnx", "model.int8.onnx", "stamp.json"}
    import onnx

    quantized = {n.name for n in onnx.load(str(out / "model.int8.onnx")).graph.node if n.op_type == "MatMulInteger"}
    # the first layer, fed the raw embeddings, stays fp32; the last runs its queries, output and
    # feed-forward on the first token alone, in fp32 too: int8 is left with its keys and values
    assert {name.split("/")[1] for name in quantized} == {"layers.1"}
    assert sorted(name.split("/")[2] for name in quantized) == ["key", "value"]
    assert json.loads((out / "stamp.json").read_text())["last_layer"] == "first token"
    exported = {n.op_type for n in onnx.load(str(out / "model.onnx")).graph.node}
    assert "IsNaN" not in exported, exported   # eager attention: the mask added to the scores, no NaN guard
    torch_rm = PersonalizedRewardModel.load(tmp_path / "rm", device="cpu")
    fp32 = PersonalizedRewardModel.load(tmp_path / "rm", runtime="onnx")
    int8 = PersonalizedRewardModel.load(tmp_path / "rm", runtime="onnx-int8")
    items = [(persona, f"how do i boil egg number {n}", response)
             for n in range(6) for persona in (BRIEF, DETAILED) for response in (SHORT, LONG, "ok")]
    reference = torch_rm.score_batch(items, batch_size=5)   # mixed lengths, several batches
    assert fp32.score_batch(items, batch_size=5) == pytest.approx(reference, abs=1e-4)
    session, shapes = fp32.model, []

    class Spy:   # records what each ONNX Runtime call is given
        def run(self, names: Any, feed: dict[str, Any]) -> Any:
            shapes.append(feed["input_ids"].shape)
            return session.run(names, feed)

    fp32.model, fp32.onnx_batch_tokens = Spy(), 40   # slices of at most 40 tokens: rows of the slice's own width
    assert fp32.score_batch(items, batch_size=12) == pytest.approx(reference, abs=1e-4)
    assert sum(rows for rows, _ in shapes) == len(items) and len(shapes) > 3
    assert all(rows * width <= 40 or rows == 1 for rows, width in shapes), shapes
    quantized = int8.score_batch(items, batch_size=5)
    pairs = [(i, i + 1) for i in range(0, len(items) - 1, 3)]
    agree = sum((reference[a] > reference[b]) == (quantized[a] > quantized[b]) for a, b in pairs)
    assert agree == len(pairs), (reference, quantized)
    from personae.store import RewardModelBackend

    backend = RewardModelBackend(tmp_path / "rm", runtime="onnx", threads=1)   # what serve-api --runtime onnx runs
    assert backend.scores(None, "how do i boil egg number 1", [SHORT, LONG]) == pytest.approx(
        torch_rm.score_batch([("", "how do i boil egg number 1", r) for r in (SHORT, LONG)]), abs=1e-4)
    assert export_onnx(tmp_path / "rm") == out   # exported again without int8: the stamp has none
    with pytest.raises(DataError, match="no int8 model"):
        PersonalizedRewardModel.load(tmp_path / "rm", runtime="onnx-int8")
    stamp_path = out / "stamp.json"
    stamp = json.loads(stamp_path.read_text())
    stamp_path.write_text(json.dumps({**stamp, "version": 1}))   # an export by an older personae
    with pytest.raises(DataError, match="another format.*personae distill export"):
        PersonalizedRewardModel.load(tmp_path / "rm", runtime="onnx")
    stamp_path.write_text(json.dumps(stamp))
    weights = tmp_path / "rm" / "model.safetensors"
    weights.write_bytes(weights.read_bytes() + b" ")   # the model changed after its export
    with pytest.raises(DataError, match="other weights"):
        PersonalizedRewardModel.load(tmp_path / "rm", runtime="onnx")


@_THIRD_PARTY[0]
@_THIRD_PARTY[1]
def test_the_command_evaluates_on_the_runtime_a_service_would_load(tiny_bert: Path, tmp_path: Path,
                                                                   capsys: pytest.CaptureFixture[str]) -> None:
    """``distill reward-model --evaluate --runtime onnx-int8`` exports the saved model and scores its test
    pairs on ONNX Runtime: the run says so and its verdicts are torch's on this model."""
    pytest.importorskip("onnxruntime")
    from personae.cli.main import main
    from personae.evaluation import read_run_log

    rows = [{"user_id": user, "user_profile": persona, "prompt": r.prompt, "chosen": r.chosen, "rejected": r.rejected}
            for user, persona in (("brief", BRIEF), ("detailed", DETAILED))
            for r in (_pair(i, user, persona) for i in range(10))]
    data = tmp_path / "pairs.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    common = ["distill", "reward-model", str(data), "--model", str(tiny_bert), "--evaluate", "--max-steps", "12",
              "--batch-size", "8", "--learning-rate", "3e-3", "--max-length", "48", "--persona-tokens", "8",
              "--context-tokens", "12", "--freeze-layers", "0", "--device", "cpu", "--threads", "1"]
    runs = {}
    for runtime in ("torch", "onnx-int8"):
        assert main([*common, "--out", str(tmp_path / runtime), "--runtime", runtime]) == 0
        runs[runtime] = read_run_log(tmp_path / runtime / "run.json")
    assert runs["onnx-int8"].config.extra["runtime"] == "onnx-int8" and runs["torch"].config.extra["runtime"] == "torch"
    assert (tmp_path / "onnx-int8" / "onnx" / "model.int8.onnx").exists()
    assert not (tmp_path / "torch" / "onnx").exists()
    verdicts = {k: [(j.record_id, j.first, j.preferred) for j in run.judgments if j.method == "reward model"]
                for k, run in runs.items()}
    assert verdicts["onnx-int8"] == verdicts["torch"] and len(verdicts["torch"]) == 12
