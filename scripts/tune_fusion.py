#!/usr/bin/env python3
"""Tune hybrid fusion on the development sets from the retrievers' own candidate lists.

Builds each set's knowledge base once through a real zhiku server (one text document per
corpus record, as `zhiku eval` does), asks every query once in `fulltext` and once in
`semantic` mode for the top 100 chunks with their raw BM25 / cosine scores, and caches
those lists as JSON. Every fusion function is then scored offline on the same lists —
document level, as `zhiku eval` scores (a ranking is the documents in the order their
first chunk appears) — so a grid of hundreds of settings costs seconds, not re-ingests.

To choose a setting without fitting one set, it reports, for each family, the setting
with the best mean recall@5 + MRR@10 over all sets, and a leave-one-set-out check: the
setting chosen on the other sets, scored on the held-out one.

Usage:
  .venv/bin/python scripts/tune_fusion.py [--sets cmrc,squad,llm] [--cache DIR] [--candidates 50]
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench import SETS, SHARED, Server, ingest, read_jsonl  # noqa: E402

# ---- candidate lists ------------------------------------------------------------------


def dump_set(name: str, cache: Path, limit: int) -> dict:
    """The set's queries with both retrievers' top-100 chunk lists (cached)."""
    path = cache / f"{name}.json"
    if path.exists():
        return json.loads(path.read_text(encoding="utf-8"))
    _title, folders, query_folder = SETS[name]
    passages = [p for f in folders for p in read_jsonl(SHARED / "data/eval" / f / "corpus.jsonl")]
    passages = [dict(p, title="") for p in passages]  # text only, as `zhiku eval` by default
    queries = read_jsonl(SHARED / "data/eval" / query_folder / "queries.jsonl")
    if limit:
        queries = queries[:limit]
    server = Server()
    try:
        kb = server.call("POST", "/api/kbs", {"name": name})["id"]  # type: ignore[index]
        print(f"{name}: ingesting {len(passages)} passages …", flush=True)
        seconds, chunks = ingest(server, kb, passages)
        print(f"  {chunks} chunks in {seconds:.0f} s", flush=True)
        out = []
        for q in queries:
            lists = {}
            for mode in ("fulltext", "semantic"):
                res = server.call("POST", f"/api/kbs/{kb}/search",
                                  {"query": q["query"], "mode": mode, "top_k": 100})
                key = "bm25" if mode == "fulltext" else "cosine"
                lists[mode] = [[r["chunk_id"], r["document_name"].removesuffix(".txt"), r["raw"][key]]
                               for r in res["results"]]  # type: ignore[index]
            out.append({"id": q["id"], "positives": q["positive_ids"], **lists})
    finally:
        server.close()
    data = {"set": name, "chunks": chunks, "queries": out}
    cache.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, ensure_ascii=False), encoding="utf-8")
    return data


# ---- fusion functions -----------------------------------------------------------------
# Each takes the two candidate lists [(chunk, doc, score)] in rank order and returns
# {chunk: fused score}.


def rrf(ft, sem, k=60.0, w_ft=1.0, w_sem=1.0):
    """Weighted reciprocal rank fusion: Σ w / (k + rank)."""
    s: dict = {}
    for w, lst in ((w_ft, ft), (w_sem, sem)):
        for i, (c, _d, _x) in enumerate(lst):
            s[c] = s.get(c, 0.0) + w / (k + i + 1)
    return s


def _norm(lst, how):
    xs = [x for _c, _d, x in lst]
    if not xs:
        return {}
    if how == "max":  # BM25 / best BM25; cosine as it is
        top = max(xs)
        return {c: (x / top if top > 0 else 0.0) for c, _d, x in lst}
    if how == "raw":
        return {c: x for c, _d, x in lst}
    if how == "minmax":
        lo, hi = min(xs), max(xs)
        return {c: ((x - lo) / (hi - lo) if hi > lo else 1.0) for c, _d, x in lst}
    if how == "z":  # distribution-based: mean and spread of this query's candidates
        mu = statistics.fmean(xs)
        sd = statistics.pstdev(xs) or 1.0
        return {c: (x - mu) / sd for c, _d, x in lst}
    raise ValueError(how)


def convex(ft, sem, alpha=0.5, ft_norm="max", sem_norm="raw", missing=0.0):
    """α·norm(cosine) + (1 − α)·norm(bm25); a chunk one retriever missed gets `missing`
    (or that list's lowest normalised score when missing is None)."""
    a, b = _norm(ft, ft_norm), _norm(sem, sem_norm)
    fa = min(a.values()) if (missing is None and a) else missing
    fb = min(b.values()) if (missing is None and b) else missing
    return {c: alpha * b.get(c, fb) + (1 - alpha) * a.get(c, fa) for c in set(a) | set(b)}


def ranking(scores: dict, docs_of: dict) -> list[str]:
    """Documents in the order of their best chunk (ties by chunk id, as zhiku does)."""
    order = sorted(scores, key=lambda c: (-scores[c], c))
    seen, out = set(), []
    for c in order:
        d = docs_of[c]
        if d not in seen:
            seen.add(d)
            out.append(d)
    return out


def score(data: dict, fuse, candidates: int) -> dict:
    """recall@1/@5/@10 and MRR@10 of one fusion over a set."""
    r1 = r5 = r10 = mrr = 0.0
    for q in data["queries"]:
        ft, sem = q["fulltext"][:candidates], q["semantic"][:candidates]
        docs_of = {c: d for c, d, _x in ft + sem}
        ranked = ranking(fuse(ft, sem), docs_of) if fuse else None
        gold = set(q["positives"])
        rank = next((i + 1 for i, d in enumerate(ranked) if d in gold), None)
        r1 += rank == 1
        r5 += rank is not None and rank <= 5
        r10 += rank is not None and rank <= 10
        mrr += 1 / rank if rank and rank <= 10 else 0.0
    n = len(data["queries"])
    return {"r1": r1 / n, "r5": r5 / n, "r10": r10 / n, "mrr": mrr / n}


def top_scores(data: dict, fuse, candidates: int) -> tuple[list[float], list[float]]:
    """Each query's best fused score with its gold documents in the lists, and with them
    removed (the negative-rejection case of `zhiku eval --negatives`: would a min_score
    tell the two apart?)."""
    kept, removed = [], []
    for q in data["queries"]:
        ft, sem = q["fulltext"][:candidates], q["semantic"][:candidates]
        gold = set(q["positives"])
        for lists, out in (((ft, sem), kept),
                           (([h for h in ft if h[1] not in gold], [h for h in sem if h[1] not in gold]), removed)):
            fused = fuse(*lists)
            if fused:
                out.append(max(fused.values()))
    return kept, removed


def rejection_line(name: str, data: dict, fuse, candidates: int) -> str:
    """Thresholds that keep 90 / 95 / 99 % of answerable questions, and the share of
    gold-removed questions each threshold rejects."""
    kept, removed = top_scores(data, fuse, candidates)
    kept.sort()
    cells = []
    for keep in (0.90, 0.95, 0.99):
        t = kept[int((1 - keep) * len(kept))]
        rejected = sum(x < t for x in removed) / len(removed)
        cells.append(f"{t:.3f} → {rejected:.0%}")
    return f"| {name} | " + " | ".join(cells) + " |"


def singles(data: dict, candidates: int) -> dict:
    """Each retriever alone, on the same candidate lists."""
    only_ft = lambda ft, sem: {c: -i for i, (c, _d, _x) in enumerate(ft)}  # noqa: E731
    only_sem = lambda ft, sem: {c: -i for i, (c, _d, _x) in enumerate(sem)}  # noqa: E731
    return {"fulltext": score(data, only_ft, candidates), "semantic": score(data, only_sem, candidates)}


def grid():
    """(family, label, function) for every setting tried."""
    for k in (1, 2, 5, 10, 20, 30, 40, 60, 100):
        for w in (0.3, 0.4, 0.5, 0.6, 0.7):
            yield "rrf", f"k={k} w_sem={w}", lambda ft, sem, k=k, w=w: rrf(ft, sem, k, 1 - w, w)
    for ft_norm, sem_norm in (("max", "raw"), ("minmax", "minmax"), ("max", "minmax"), ("z", "z")):
        for alpha in [i / 20 for i in range(2, 19)]:
            for missing in (0.0, None):
                label = f"{ft_norm}/{sem_norm} α={alpha:.2f} missing={'min' if missing is None else 0}"
                yield f"convex {ft_norm}/{sem_norm}", label, (
                    lambda ft, sem, a=alpha, fn=ft_norm, sn=sem_norm, m=missing: convex(ft, sem, a, fn, sn, m))


def objective(m: dict) -> float:
    """What a setting is chosen by: recall@5 and MRR@10 together."""
    return m["r5"] + m["mrr"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sets", default="cmrc,squad,llm")
    ap.add_argument("--cache", default="target/fusion-cache")
    ap.add_argument("--candidates", type=int, default=50, help="chunks each retriever contributes")
    ap.add_argument("--limit-queries", type=int, default=0)
    args = ap.parse_args()
    sets = {name: dump_set(name, Path(args.cache), args.limit_queries) for name in args.sets.split(",")}
    n = args.candidates
    started = time.perf_counter()
    table = {}  # label -> {set: metrics}
    families = {}
    for family, label, fn in grid():
        table[label] = {s: score(d, fn, n) for s, d in sets.items()}
        families.setdefault(family, []).append(label)
    base = {s: singles(d, n) for s, d in sets.items()}
    print(f"{len(table)} settings × {len(sets)} sets scored in {time.perf_counter() - started:.0f} s\n")

    def line(name, per_set):
        cells = " | ".join(f"{per_set[s]['r1']:.3f} / {per_set[s]['r5']:.3f} / {per_set[s]['mrr']:.3f}" for s in sets)
        return f"| {name} | {cells} |"

    print("| setting | " + " | ".join(f"{s} R@1 / R@5 / MRR@10" for s in sets) + " |")
    print("|---|" + "---|" * len(sets))
    for single in ("fulltext", "semantic"):
        print(line(single, {s: base[s][single] for s in sets}))
    print(line("rrf k=60 (current)", table["k=60 w_sem=0.5"]))
    for family, labels in families.items():
        best = max(labels, key=lambda l: statistics.fmean(objective(table[l][s]) for s in sets))
        print(line(f"best {family}: {best}", table[best]))

    print("\nnegative rejection: a min_score keeping 90 / 95 / 99 % of answerable questions"
          " → share of gold-removed questions it rejects")
    probes = {
        "semantic only (cosine)": lambda ft, sem: {c: x for c, _d, x in sem},
        "rrf k=60": lambda ft, sem: rrf(ft, sem),
        "minmax α=0.45": lambda ft, sem: convex(ft, sem, 0.45, "minmax", "minmax", 0.0),
        "bounded (max/raw) α=0.90": lambda ft, sem: convex(ft, sem, 0.90, "max", "raw", None),
    }
    for s_name, d in sets.items():
        print(f"\n{s_name}\n| fusion | keep 90 % | keep 95 % | keep 99 % |\n|---|---|---|---|")
        for p_name, fn in probes.items():
            print(rejection_line(p_name, d, fn, n))

    print("\nleave one set out (setting chosen on the others, scored on the held-out set):")
    for held in sets:
        others = [s for s in sets if s != held]
        if not others:
            continue
        for family, labels in families.items():
            best = max(labels, key=lambda l: statistics.fmean(objective(table[l][s]) for s in others))
            m = table[best][held]
            ft, sem = base[held]["fulltext"], base[held]["semantic"]
            print(f"  {held:<6} {family:<22} {best:<40} R@1 {m['r1']:.3f} R@5 {m['r5']:.3f} MRR {m['mrr']:.3f}"
                  f"  (fulltext R@5 {ft['r5']:.3f}, semantic R@5 {sem['r5']:.3f})")


if __name__ == "__main__":
    main()
