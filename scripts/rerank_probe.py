#!/usr/bin/env python3
"""Would the local LLM pay as a reranker? A probe on the candidate lists of tune_fusion.py.

For each sampled question the default fusion's top 5 passages go to a bot with no
knowledge base whose persona asks for the number of the passage that answers; that passage
moves to the top, the rest keep their order. The sample is stratified, because a reranker
can only change a question whose gold passage is in the top 5: every question with it at
rank 2–5 (where it can help) and a random sample of those with it at rank 1 (where it can
only harm). recall@1 / @3 over the whole set are then estimated from both strata.

  ZHIKU_LLM__MODEL=qwen2.5-coder-0.5b-instruct-q4_k_m \\
  .venv/bin/python scripts/rerank_probe.py --set squad --cache /tmp/tf [--harm-sample 40]

Needs tune_fusion.py's cache for the set (it builds it when missing).
"""
from __future__ import annotations

import argparse
import json
import random
import re
import statistics
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench import SETS, SHARED, TOKEN, Server, read_jsonl  # noqa: E402
from tune_fusion import convex, dump_set, ranking  # noqa: E402

TOP = 5
PERSONA = ("You rank search results. Given a question and numbered passages, reply with the "
           "number of the one passage that answers the question, and nothing else.")


def fused_docs(q: dict, candidates: int = 50) -> list[str]:
    """The default fusion (bounded, 0.90) as document ids, best first."""
    ft, sem = q["fulltext"][:candidates], q["semantic"][:candidates]
    fused = convex(ft, sem, 0.90, "max", "raw", None)
    docs_of = {c: d for c, d, _x in ft + sem}
    return ranking(fused, docs_of)


def ask(server: Server, bot: str, message: str) -> tuple[str, float, int]:
    """The bot's whole answer, seconds taken, prompt tokens."""
    data = json.dumps({"message": message}).encode()
    req = urllib.request.Request(server.base + f"/api/bots/{bot}/chat", data=data, method="POST",
                                 headers={"Authorization": f"Bearer {TOKEN}",
                                          "Content-Type": "application/json"})
    started = time.perf_counter()
    try:
        with urllib.request.urlopen(req, timeout=600) as r:
            body = r.read().decode()
    except urllib.error.HTTPError as e:
        raise SystemExit(f"chat: {e.code} {e.read().decode()}") from e
    seconds = time.perf_counter() - started
    text, prompt_tokens = "", 0
    event = None
    for line in body.splitlines():
        if line.startswith("event:"):
            event = line[6:].strip()
        elif line.startswith("data:"):
            payload = json.loads(line[5:])
            if event == "token":
                text += payload["text"]
            elif event == "done":
                prompt_tokens = payload.get("usage", {}).get("prompt_tokens", 0)
    return text, seconds, prompt_tokens


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--set", default="squad", choices=sorted(SETS))
    ap.add_argument("--cache", type=Path, default=Path("/tmp/zhiku-tune-fusion"))
    ap.add_argument("--harm-sample", type=int, default=40)
    ap.add_argument("--help-limit", type=int, default=0, help="at most this many rank 2–5 questions (0: all)")
    args = ap.parse_args()

    data = dump_set(args.set, args.cache, 0)
    _title, folders, query_folder = SETS[args.set]
    texts = {p["id"]: p["text"] for f in folders for p in read_jsonl(SHARED / "data/eval" / f / "corpus.jsonl")}
    questions = {q["id"]: q["query"] for q in read_jsonl(SHARED / "data/eval" / query_folder / "queries.jsonl")}

    strata: dict[str, list] = {"rank 1": [], "rank 2-5": [], "beyond 5": []}
    for q in data["queries"]:
        docs = fused_docs(q)
        gold = set(q["positives"])
        rank = next((i + 1 for i, d in enumerate(docs) if d in gold), None)
        key = "rank 1" if rank == 1 else "rank 2-5" if rank and rank <= TOP else "beyond 5"
        strata[key].append((q, docs[:TOP], rank))
    total = len(data["queries"])
    random.seed(7)
    harm = random.sample(strata["rank 1"], min(args.harm_sample, len(strata["rank 1"])))
    helpable = strata["rank 2-5"][: args.help_limit or None]
    print(f"{args.set}: {total} questions; gold at rank 1: {len(strata['rank 1'])}, at 2–5: "
          f"{len(strata['rank 2-5'])}, beyond 5: {len(strata['beyond 5'])}; asking "
          f"{len(harm)} + {len(helpable)}", flush=True)

    server = Server()
    try:
        bot = server.call("POST", "/api/bots", {
            "name": "reranker", "persona": PERSONA, "knowledge_bases": [],
            "rewrite_query": False, "model": {"max_tokens": 4, "temperature": 0}})["id"]  # type: ignore[index]
        seconds, tokens, picks = [], [], [0] * TOP

        def rerank(q, top):
            lines = [f"Question: {questions[q['id']]}", ""]
            # A chat message holds at most 4,000 characters: each passage gets its share.
            share = (3_700 - len(questions[q["id"]])) // len(top)
            lines += [f"[{i + 1}] {texts[d][:share]}" for i, d in enumerate(top)]
            lines += ["", f"Which passage (1–{len(top)}) answers the question? Reply with its number only."]
            reply, s, t = ask(server, bot, "\n".join(lines))
            seconds.append(s)
            tokens.append(t)
            m = re.search(r"[1-9]", reply)
            pick = int(m.group()) - 1 if m and int(m.group()) <= len(top) else 0
            picks[pick] += 1
            return [top[pick]] + [d for i, d in enumerate(top) if i != pick]

        def new_rank(q, top):
            gold = set(q["positives"])
            return next((i + 1 for i, d in enumerate(rerank(q, top)) if d in gold), None)

        kept1 = sum(new_rank(q, top) == 1 for q, top, _ in harm)
        helped = [new_rank(q, top) for q, top, _ in helpable]
    finally:
        server.close()

    keep_rate = kept1 / max(len(harm), 1)
    n1 = len(strata["rank 1"])
    # Helped questions that were asked stand for all of that stratum.
    scale = len(strata["rank 2-5"]) / max(len(helpable), 1)
    before1 = n1 / total
    before3 = (n1 + sum(1 for _q, _t, r in strata["rank 2-5"] if r <= 3)) / total
    after1 = (n1 * keep_rate + scale * sum(r == 1 for r in helped)) / total
    # A rank-1 question the reranker moved stays in the top 3 unless it fell to 4–5 (rare:
    # only the pick moves, so the old first drops to second).
    after3 = (n1 + scale * sum(r is not None and r <= 3 for r in helped)) / total
    print(f"kept at rank 1: {kept1} of {len(harm)} ({keep_rate:.0%}); of {len(helpable)} at rank 2–5, "
          f"moved to 1: {sum(r == 1 for r in helped)}, in the top 3: {sum(r is not None and r <= 3 for r in helped)}")
    print("passages picked, by position in the fused list: " + ", ".join(f"[{i + 1}] {n}" for i, n in enumerate(picks)))
    print(f"recall@1 {before1:.3f} -> {after1:.3f} (estimated); recall@3 {before3:.3f} -> {after3:.3f}")
    print(f"per question: {statistics.median(seconds):.1f} s median, {max(seconds):.1f} s max; "
          f"prompt {statistics.median(tokens):.0f} tokens median")


if __name__ == "__main__":
    main()
