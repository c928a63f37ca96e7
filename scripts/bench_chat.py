#!/usr/bin/env python3
"""Chat figures for docs/benchmarks.md: zhiku against bare llama.cpp on the same GGUF,
prompt and threads, in one run.

For each model: start `zhiku serve` on a scratch data dir, index llm-intro-zh, then
  - a bot without knowledge: time to first token (TTFT) and generation tokens/s, and the
    same rendered prompt through examples/llm_ceiling (llama-cpp-2, one sequence, greedy);
  - a bot with the knowledge base: TTFT with retrieval against bare llama.cpp's prompt time
    for the very prompt zhiku built (from the debug trace) + zhiku's retrieval time;
  - a follow-up turn in the same conversation: TTFT with the KV cache of the earlier turns
    reused, against bare llama.cpp reading that whole prompt; one follow-up that refers
    back ("它…", searched with the question before it) and one that stands alone (searched as asked);
  - throughput with 1, 4 and 8 chats at once (`--concurrency`): all answers' tokens over
    the wall time, each answer's TTFT (queueing included) and its own rate;
  - the server's RSS.

Usage: .venv/bin/python scripts/bench_chat.py [--models a,b] [--threads 2] [--rag-settings JSON]
(--rag-settings is merged into the knowledge bot's settings, e.g. the settings before a
change: '{"retrieval":{"read_tokens":0},"no_recall":{"min_answerable":0}}')
(builds nothing: run `cargo build --release --example llm_ceiling` and the binary first).
"""
import argparse
import concurrent.futures
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import zhiku_server  # noqa: E402  (starting the server, as the other benchmarks do)

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "tests/fixtures"
# Where cargo put the binaries: CARGO_TARGET_DIR when set, as cargo reads it.
TARGET = Path(os.environ.get("CARGO_TARGET_DIR") or ROOT / "target")
TOKEN = "bench-admin-token"
PERSONA = "你是大模型知识助手，回答简洁准确。"


def call(base, method, path, body=None, stream=False):
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(base + path, data=data, method=method)
    req.add_header("Authorization", f"Bearer {TOKEN}")
    if data is not None:
        req.add_header("content-type", "application/json")
    with urllib.request.urlopen(req, timeout=600) as r:
        text = r.read().decode()
    if stream:
        events = []
        for block in text.split("\n\n"):
            name, data = "message", ""
            for line in block.splitlines():
                if line.startswith("event:"):
                    name = line[6:].strip()
                elif line.startswith("data:"):
                    data += line[5:].strip()
            if data:
                events.append((name, json.loads(data)))
        return events
    return json.loads(text) if text else None


def upload(base, kb, path):
    boundary = "----zhikubench"
    body = (
        f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{path.name}\"\r\n"
        "Content-Type: text/plain\r\n\r\n"
    ).encode() + path.read_bytes() + f"\r\n--{boundary}--\r\n".encode()
    req = urllib.request.Request(f"{base}/api/kbs/{kb}/documents", data=body, method="POST")
    req.add_header("Authorization", f"Bearer {TOKEN}")
    req.add_header("content-type", f"multipart/form-data; boundary={boundary}")
    urllib.request.urlopen(req, timeout=60).read()


def chat(base, bot, message, conversation=None):
    body = {"message": message}
    if conversation:
        body["conversation_id"] = conversation
    events = call(base, "POST", f"/api/bots/{bot}/chat", body, stream=True)
    done = [d for n, d in events if n == "done"]
    if not done:
        sys.exit(f"no answer: {events}")
    return done[0]


THROUGHPUT_QUESTIONS = [
    "写一段话介绍大语言模型的训练过程。", "解释一下什么是检索增强生成。", "向量数据库有什么用？",
    "简述 Transformer 的注意力机制。", "提示工程有哪些常见技巧？", "什么是模型的幻觉？",
    "如何评估一个问答系统？", "开源大模型和闭源大模型各有什么优缺点？",
]


def throughput(base, bot, concurrency):
    """`concurrency` different questions at once: aggregate and per-answer figures."""
    questions = [THROUGHPUT_QUESTIONS[i % len(THROUGHPUT_QUESTIONS)] + f"（第{i + 1}问）"
                 for i in range(concurrency)]
    started = time.perf_counter()
    with concurrent.futures.ThreadPoolExecutor(concurrency) as pool:
        answers = list(pool.map(lambda q: chat(base, bot, q), questions))
    wall_s = time.perf_counter() - started
    tokens = sum(a["usage"]["completion_tokens"] for a in answers)
    ttft = sorted(a["timings"]["first_token_ms"] for a in answers)  # from the request: queueing included
    return {"concurrency": concurrency, "wall_s": round(wall_s, 2), "completion_tokens": tokens,
            "tokens_per_s": round(tokens / wall_s, 1),
            "mean_stream_tokens_per_s": round(sum(a["timings"]["tokens_per_s"] for a in answers) / len(answers), 1),
            "ttft_ms_median": ttft[len(ttft) // 2], "ttft_ms_max": ttft[-1]}


def ceiling(model_path, messages, threads, max_tokens):
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as f:
        json.dump(messages, f, ensure_ascii=False)
    exe = TARGET / "release/examples/llm_ceiling"
    out = subprocess.run(
        [str(exe), "--model", str(model_path), "--messages", f.name, "--threads", str(threads),
         "--max-tokens", str(max_tokens)],
        check=True, capture_output=True, text=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def rss_mb(pid):
    status = Path(f"/proc/{pid}/status").read_text()
    fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
    return int(fields["VmRSS"].split()[0]) / 1024, int(fields["VmHWM"].split()[0]) / 1024


def merged(base, extra):
    """`base` with `extra` laid over it, nested objects merged."""
    out = dict(base)
    for key, value in extra.items():
        out[key] = merged(out.get(key, {}), value) if isinstance(value, dict) else value
    return out


def bench_model(model, threads, max_tokens, concurrency, rag_settings):
    models_dir = Path(os.environ.get("ZHIKU_MODELS_DIR", ROOT / "models"))
    model_path = models_dir / "llm" / f"{model}.gguf"
    data = tempfile.mkdtemp(prefix="zhiku-bench-chat-")
    env = dict(os.environ, ZHIKU_BIND="127.0.0.1:0", ZHIKU_DATA_DIR=data, ZHIKU_MODELS_DIR=str(models_dir),
               ZHIKU_ADMIN_TOKEN=TOKEN, ZHIKU_LLM__MODEL=model, ZHIKU_LLM__THREADS=str(threads),
               ZHIKU_EMBEDDING__THREADS=str(threads), ZHIKU_LOG="warn")
    server, base = zhiku_server.start(TARGET / "release/zhiku", env)
    try:
        rss_start, _ = rss_mb(server.pid)
        kb = call(base, "POST", "/api/kbs", {"name": "llm-intro"})["id"]
        for path in sorted((FIXTURES / "docs/llm-intro-zh").glob("*.txt")):
            upload(base, kb, path)
        while any(d["status"] not in ("indexed", "failed")
                  for d in call(base, "GET", f"/api/kbs/{kb}/documents")):
            time.sleep(0.5)
        settings = {"model": {"temperature": 0, "max_tokens": max_tokens}}
        warm = call(base, "POST", "/api/bots", {"name": "warm", "persona": "You are terse.", **settings})["id"]
        plain = call(base, "POST", "/api/bots", {"name": "plain", "persona": PERSONA, **settings})["id"]
        rag_bot = merged({"name": "rag", "persona": PERSONA, "knowledge_bases": [kb], **settings}, rag_settings)
        rag = call(base, "POST", "/api/bots", rag_bot)["id"]
        chat(base, warm, "Hello.")  # pages the model in; different persona, so no prefix reuse

        row = {"model": model, "threads": threads}
        # Long answers for the generation rate. Two different questions per case: this
        # machine's speed wanders by ~10% between runs, so both runs are reported.
        for case, question in (("plain", "写一篇三百字左右的短文，介绍大语言模型的原理和用途。"),
                               ("plain-2", "详细解释一下什么是提示工程，并举三个例子。")):
            answer = chat(base, plain, question)
            bare = ceiling(model_path, answer["trace"]["prompt"], threads, max_tokens)
            row[case] = {"zhiku": answer["timings"] | answer["usage"], "bare": bare}
        second = chat(base, rag, "大语言模型为什么会产生幻觉？")
        bare = ceiling(model_path, second["trace"]["prompt"], threads, max_tokens)
        row["rag-2"] = {"zhiku": second["timings"] | second["usage"], "bare": bare}
        first = chat(base, rag, "LangChain 这个开源框架最早是谁推出的？")
        bare = ceiling(model_path, first["trace"]["prompt"], threads, max_tokens)
        row["rag"] = {"zhiku": first["timings"] | first["usage"], "bare": bare}

        follow = chat(base, rag, "它的主要价值是什么？", first["conversation_id"])
        bare = ceiling(model_path, follow["trace"]["prompt"], threads, max_tokens)
        row["follow_up"] = {"zhiku": follow["timings"] | follow["usage"], "bare": bare,
                            "rewritten_query": follow["trace"].get("rewritten_query")}
        alone = chat(base, rag, "历史上第一个聊天机器人叫什么名字？", first["conversation_id"])
        bare = ceiling(model_path, alone["trace"]["prompt"], threads, max_tokens)
        row["follow_up_alone"] = {"zhiku": alone["timings"] | alone["usage"], "bare": bare,
                                  "rewritten_query": alone["trace"].get("rewritten_query")}
        row["throughput"] = [throughput(base, plain, n) for n in concurrency]
        rss_now, rss_peak = rss_mb(server.pid)
        row["rss_mb"] = {"after_load": round(rss_start), "after_chats": round(rss_now), "peak": round(rss_peak)}
        return row
    finally:
        server.terminate()
        server.wait(timeout=60)


def table(rows):
    lines = [
        "| model | case | prompt tokens (cached) | zhiku TTFT | bare prompt time | zhiku retrieval | TTFT − (bare + retrieval) | zhiku gen tok/s | bare gen tok/s | ratio |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        for case in ("plain", "plain-2", "rag-2", "rag", "follow_up", "follow_up_alone"):
            z, b = row[case]["zhiku"], row[case]["bare"]
            overhead = z["retrieval_ms"]
            ratio = z["tokens_per_s"] / b["tokens_per_s"] if b["tokens_per_s"] else 0
            lines.append(
                f"| {row['model']} | {case.replace('_', '-')} | {z['prompt_tokens']} ({z['cached_prompt_tokens']}) | "
                f"{z['first_token_ms']:.0f} ms | {b['first_token_ms']:.0f} ms | {overhead} ms | "
                f"{z['first_token_ms'] - b['first_token_ms'] - overhead:+.0f} ms | {z['tokens_per_s']:.1f} | "
                f"{b['tokens_per_s']:.1f} | {ratio:.2f} |"
            )
    lines.append("")
    lines.append("| model | RSS after load | RSS after the chats | peak |")
    lines.append("|---|---|---|---|")
    for row in rows:
        r = row["rss_mb"]
        lines.append(f"| {row['model']} | {r['after_load']} MB | {r['after_chats']} MB | {r['peak']} MB |")
    lines.append("")
    lines.append("| model | chats at once | wall time | answer tokens | tokens/s, all chats | tokens/s per chat | TTFT median / max (queue included) |")
    lines.append("|---|---:|---:|---:|---:|---:|---|")
    for row in rows:
        for t in row.get("throughput", []):
            lines.append(f"| {row['model']} | {t['concurrency']} | {t['wall_s']:.1f} s | {t['completion_tokens']} | "
                         f"{t['tokens_per_s']:.1f} | {t['mean_stream_tokens_per_s']:.1f} | "
                         f"{t['ttft_ms_median']:.0f} / {t['ttft_ms_max']:.0f} ms |")
    return "\n".join(lines)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--models", default="qwen2.5-coder-1.5b-instruct-q4_k_m,qwen2.5-coder-0.5b-instruct-q4_k_m")
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 2)
    parser.add_argument("--max-tokens", type=int, default=128)
    parser.add_argument("--concurrency", default="1,4,8", help="chats at once for the throughput rows")
    parser.add_argument("--json", type=Path, help="also write the raw figures here")
    parser.add_argument("--rag-settings", type=json.loads, default={},
                        help="JSON merged into the knowledge bot's settings")
    args = parser.parse_args()
    concurrency = [int(n) for n in args.concurrency.split(",") if n]
    rows = [bench_model(m, args.threads, args.max_tokens, concurrency, args.rag_settings)
            for m in args.models.split(",")]
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, threads {args.threads}")
    print(table(rows))
    for row in rows:
        print(f"{row['model']}: follow-up searched as {row['follow_up']['rewritten_query']!r}; "
              f"the standalone one as {row['follow_up_alone']['rewritten_query']!r}")
    if args.json:
        args.json.write_text(json.dumps(rows, ensure_ascii=False, indent=1))


if __name__ == "__main__":
    main()
