#!/usr/bin/env python3
"""Full-text recall under four jieba segmentations, to choose zhiku's BM25 analyzer.

cmrc2018-trial + distractors-zh (../shared/data/eval), one BM25 document per corpus record
(its `text`, no title), rank_bm25's Okapi BM25 as a stand-in for tantivy's (same formula,
document level instead of zhiku's chunks), the 1,000 queries scored at recall@1/5/10.
Segmentations: jieba's search mode (zhiku's analyzer, HMM off since this run) and its default mode, each
with and without the HMM that guesses words missing from the dictionary. Words without a
letter or digit are dropped and the rest lower-cased, as zhiku's analyzer does.

Usage (any venv with jieba and rank_bm25, e.g. the LangChain one):
    .venv-langchain/bin/python scripts/jieba_modes.py [--eval ../shared/data/eval]
"""
from __future__ import annotations

import argparse
import json
import re
import time
from pathlib import Path

import jieba
from rank_bm25 import BM25Okapi

WORD = re.compile(r"\w")


def segment(text: str, mode: str, hmm: bool) -> list[str]:
    """The analyzer's tokens of `text` in one jieba mode."""
    if mode == "search":
        words = jieba.lcut_for_search(text, HMM=hmm)
    else:
        words = jieba.lcut(text, HMM=hmm)
    return [w.lower() for w in words if WORD.search(w)]


def read_jsonl(path: Path) -> list[dict]:
    """One JSON object a line."""
    with path.open(encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--eval", type=Path, default=Path(__file__).resolve().parents[2] / "shared/data/eval")
    args = ap.parse_args()
    jieba.setLogLevel(60)
    docs = read_jsonl(args.eval / "cmrc2018-trial/corpus.jsonl") + read_jsonl(
        args.eval / "distractors-zh/corpus.jsonl"
    )
    queries = read_jsonl(args.eval / "cmrc2018-trial/queries.jsonl")
    ids = [d["id"] for d in docs]
    for mode, hmm in [("search", True), ("search", False), ("default", True), ("default", False)]:
        started = time.time()
        bm25 = BM25Okapi([segment(d["text"], mode, hmm) for d in docs])
        hits = {1: 0, 5: 0, 10: 0}
        for q in queries:
            scores = bm25.get_scores(segment(q["query"], mode, hmm))
            top = sorted(range(len(ids)), key=lambda i: -scores[i])[:10]
            gold = set(q["positive_ids"])
            for k in hits:
                hits[k] += any(ids[i] in gold for i in top[:k])
        n = len(queries)
        print(
            f"{mode:8} HMM={hmm!s:5} recall@1 {hits[1] / n:.3f} @5 {hits[5] / n:.3f} "
            f"@10 {hits[10] / n:.3f}  ({time.time() - started:.0f} s)",
            flush=True,
        )


if __name__ == "__main__":
    main()
