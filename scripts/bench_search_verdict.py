#!/usr/bin/env python3
"""The search verdict of a bot that searches on demand (issue 23, docs/benchmarks.md):
for greetings and small talk, and for the development sets' questions, the model's
probability that the question needs the knowledge base (`search_verdict` in the debug
chat's trace). The bot searches from 0.5 (`SEARCH_AT` in src/services/chat.rs).

Starts `zhiku serve` on a scratch data dir with an empty knowledge base (a question that
is searched then gets the no-recall reply at once, so only the verdict costs model time),
a bot with `knowledge_search`, and asks each question in the debug chat.

Usage: python3 scripts/bench_search_verdict.py [--model M] [--per-set 15]
       [--eval-dir DIR] [--json out.json]
(builds nothing: run `cargo build --release` first; CARGO_TARGET_DIR is read as cargo
reads it; ZHIKU_MODELS_DIR as the server reads it.)
"""
import argparse
import json
import os
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import zhiku_server  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
TARGET = Path(os.environ.get("CARGO_TARGET_DIR") or ROOT / "target")
TOKEN = "bench-search-verdict"
SEARCH_AT = 0.5

# What a person says to a bot that is not a question for its knowledge.
SMALL_TALK = [
    "你好", "您好，在吗？", "谢谢你！", "你是谁？", "早上好", "好的，明白了", "哈哈，你真有意思",
    "再见", "Hello!", "Thanks a lot", "你能做什么？", "今天心情不错", "辛苦了", "你叫什么名字？", "晚安",
]
SETS = ["llm-intro-zh", "cmrc2018-trial", "squad-dev-en"]


def call(base, method, path, body=None):
    request = urllib.request.Request(
        base + path, data=None if body is None else json.dumps(body).encode(), method=method,
        headers={"Authorization": "Bearer " + TOKEN, "Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=600) as response:
        return response.read().decode()


def verdict(base, bot, question):
    """The search verdict of the debug chat's `done` event, and the seconds it took."""
    started = time.time()
    stream = call(base, "POST", f"/api/bots/{bot}/chat", {"message": question})
    for line in stream.splitlines():
        if line.startswith("data:") and '"trace"' in line:
            done = json.loads(line[5:])
            return (done.get("trace") or {}).get("search_verdict"), time.time() - started
    raise SystemExit(f"no trace for {question!r}: {stream[-500:]}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="qwen2.5-coder-1.5b-instruct-q4_k_m")
    parser.add_argument("--per-set", type=int, default=15, help="questions from each set")
    parser.add_argument("--eval-dir", default=str(ROOT.parent / "shared/data/eval"),
                        help="the folder of the development sets")
    parser.add_argument("--json", help="write every verdict here")
    args = parser.parse_args()

    asked = [("small talk", q) for q in SMALL_TALK]
    for name in SETS:
        with open(Path(args.eval_dir) / name / "queries.jsonl", encoding="utf-8") as f:
            lines = [line for line in f if line.strip()][: args.per_set]
        asked += [(name, json.loads(line)["query"]) for line in lines]

    data = tempfile.mkdtemp(prefix="zhiku-bench-search-verdict-")
    env = dict(os.environ, ZHIKU_BIND="127.0.0.1:0", ZHIKU_DATA_DIR=data,
               ZHIKU_MODELS_DIR=os.environ.get("ZHIKU_MODELS_DIR", str(ROOT / "models")),
               ZHIKU_ADMIN_TOKEN=TOKEN, ZHIKU_LLM__MODEL=args.model, ZHIKU_LOG="warn")
    server, base = zhiku_server.start(TARGET / "release/zhiku", env, quiet=True)
    try:
        kb = json.loads(call(base, "POST", "/api/kbs", {"name": "empty"}))["id"]
        bot = json.loads(call(base, "POST", "/api/bots", {
            "name": "verdict", "knowledge_bases": [kb], "tools": [{"type": "knowledge_search"}],
            "model": {"max_tokens": 4, "temperature": 0}}))["id"]
        rows = []
        for kind, question in asked:
            p, seconds = verdict(base, bot, question)
            rows.append({"kind": kind, "question": question, "verdict": p, "seconds": round(seconds, 2)})
    finally:
        server.terminate()
        server.wait(timeout=60)

    print(f"model {args.model}; searched from {SEARCH_AT}")
    for kind in ["small talk"] + SETS:
        values = sorted(r["verdict"] for r in rows if r["kind"] == kind)
        searched = sum(v >= SEARCH_AT for v in values)
        print(f"{kind:16} {len(values):3} asked, {searched:3} searched, verdicts {values[0]:.2f}–{values[-1]:.2f}")
    for r in rows:
        if (r["kind"] == "small talk") == (r["verdict"] >= SEARCH_AT):
            print(f"  {r['kind']}: {r['question']} → {r['verdict']:.2f}")
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump(rows, f, ensure_ascii=False, indent=1)


if __name__ == "__main__":
    main()
