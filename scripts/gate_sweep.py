#!/usr/bin/env python3
"""What each answerability threshold would give, from one `zhiku eval --answers --json` run
made with the check asked but never applied (`--min-answerable 0.000001`):

  zhiku eval --corpus C --queries Q --modes hybrid --limit 40 --negatives 20 --answers \
      --min-answerable 0.000001 --json > run.json
  python3 scripts/gate_sweep.py run.json [--queries Q]

For each coverage weight w and threshold t, an answer whose verdict P(yes) is below the
bar t * (1 + w * (0.5 - coverage)) (coverage: the share of the question's words the
passages hold, as the bot computes it) would have been the no-recall reply: on answerable questions that costs its hit (if it had one), on the
negatives (gold documents disabled) it counts as a rejection. Also prints the grounding
check's rates. With --queries, the answerable questions' gold answers are used to show
which hits a threshold loses.
"""
import argparse
import json
import sys
import unicodedata


def normalise(text):
    text = unicodedata.normalize("NFKC", text).lower()
    return "".join(c for c in text if c.isalnum())


def contains_gold(answer, gold):
    a = normalise(answer)
    return any(normalise(g) and normalise(g) in a for g in gold)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("report", help="zhiku eval --answers --json output")
    parser.add_argument("--queries", help="the queries file, for per-question gold answers")
    parser.add_argument("--thresholds", default="0.05,0.1,0.2,0.3,0.4,0.5,0.6,0.7,0.8,0.9")
    parser.add_argument("--weights", default="0,0.1,0.2,0.3,0.4",
                        help="coverage weights w for the bar t * (1 + w * (0.5 - coverage))")
    args = parser.parse_args()
    report = json.load(open(args.report))
    answers = report.get("answers")
    negatives = report.get("negative_rejection")
    if not answers or not negatives:
        sys.exit("the report has no answers or negative_rejection: run zhiku eval with --answers on a corpus")
    gold = {}
    if args.queries:
        for line in open(args.queries):
            if line.strip():
                q = json.loads(line)
                gold[q["id"]] = q["answers"]
    pos = answers["samples"]
    neg = negatives["samples"]
    if any(s.get("answerable") is None for s in pos + neg if not s["no_recall"]):
        print("note: some answers carry no verdict (the check was off for them)")

    def hit(s):
        return contains_gold(s["answer"], gold[s["id"]]) if gold else None

    hits = sum(1 for s in pos if hit(s)) if gold else answers["hits"]
    print(f"answerable: {len(pos)} questions, {hits} hits without a threshold")
    print(f"negatives: {len(neg)} questions, {negatives['no_recall_replies'] + negatives['model_declines']} declined without a threshold")
    print()
    # The bar the bot applies (services::chat::answerable_bar): the threshold at half
    # coverage, scaled by w either side. Runs without coverage (older reports) use w = 0.
    has_coverage = all(s.get("question_coverage") is not None for s in pos + neg if not s["no_recall"])
    weights = [float(x) for x in args.weights.split(",")] if has_coverage else [0.0]

    def bar(s, t, w):
        cov = min(max(s.get("question_coverage") or 0.0, 0.0), 1.0)
        return min(1.0, t * (1 + w * (0.5 - cov)))

    def answers(s, t, w):
        return (s.get("answerable") or 0) >= bar(s, t, w)

    print("| weight | threshold | answer hits | hit rate | negatives declined | rejection |")
    print("|---:|---:|---:|---:|---:|---:|")
    for w in weights:
        for t in [float(x) for x in args.thresholds.split(",")]:
            kept_hits = sum(1 for s in pos if answers(s, t, w) and hit(s)) if gold else None
            declined = sum(1 for s in neg if s["no_recall"] or not answers(s, t, w)
                           or any(p in normalise(s["answer"]) for p in (normalise("知识库中没有"), normalise("没有相关信息"))))
            hit_text = f"{kept_hits}" if kept_hits is not None else "—"
            rate = f"{kept_hits / len(pos):.3f}" if kept_hits is not None else "—"
            print(f"| {w:.2f} | {t:.3f} | {hit_text} | {rate} | {declined} | {declined / len(neg):.3f} |")
    print()
    if has_coverage:
        def coverages(samples):
            return sorted(round(s["question_coverage"], 2) for s in samples if s.get("question_coverage") is not None)

        print("question coverage, answerable:", coverages(pos))
        print("question coverage, negatives: ", coverages(neg))

    def verdicts(samples):
        return sorted(round(s["answerable"], 3) for s in samples if s.get("answerable") is not None)

    print("verdicts P(yes), answerable:", verdicts(pos))
    print("verdicts P(yes), negatives: ", verdicts(neg))
    grounded_pos = sum(1 for s in pos if s.get("grounded"))
    grounded_neg = sum(1 for s in neg if s.get("grounded") and not s["no_recall"])
    print(f"grounded: {grounded_pos}/{len(pos)} answerable answers, {grounded_neg}/{len(neg)} negative answers")
    if gold:
        wrong_grounded = sum(1 for s in pos if s.get("grounded") and not hit(s))
        right_ungrounded = sum(1 for s in pos if not s.get("grounded") and hit(s))
        print(f"answerable: {right_ungrounded} hits marked ungrounded, {wrong_grounded} misses marked grounded")


if __name__ == "__main__":
    main()
