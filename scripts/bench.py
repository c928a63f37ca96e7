#!/usr/bin/env python3
"""Retrieval quality, ingest throughput and search latency of a real zhiku server.

Starts `zhiku serve` on a temporary data dir, loads each evaluation set (from
tests/fixtures/eval where the repository has it, else from ../shared/data/eval) through the
HTTP API (one document per passage, title as its first line), waits until every document
is indexed, then asks every query in each mode and reports recall@1, recall@5, MRR@10 and
latency. In the same run it embeds the same chunks with raw ONNX Runtime (same model file,
same threads, batches of 32 in document order) to give the ceiling the ingest rate is
compared with.

Usage: .venv/bin/python scripts/bench.py [--sets cmrc,squad] [--limit-queries N] [--out docs/benchmarks.md]
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# The larger sets (cmrc2018-trial, distractors-zh, squad-dev-en) are not in the repository:
# they are read from ../shared (or $ZHIKU_SHARED_DIR), an optional input of this benchmark.
SHARED = Path(os.environ.get("ZHIKU_SHARED_DIR", ROOT.parent / "shared"))
FIXTURES = ROOT / "tests/fixtures"
MODELS = Path(os.environ.get("ZHIKU_MODELS_DIR", ROOT / "models"))
TARGET = Path(os.environ.get("CARGO_TARGET_DIR", ROOT / "target"))
TOKEN = "bench-token"
MODES = ("fulltext", "semantic", "hybrid")
THREADS = 2

SETS = {
    "cmrc": ("cmrc2018-trial + distractors-zh", ["cmrc2018-trial", "distractors-zh"], "cmrc2018-trial"),
    "squad": ("squad-dev-en", ["squad-dev-en"], "squad-dev-en"),
    "llm": ("llm-intro-zh", ["llm-intro-zh"], "llm-intro-zh"),
}


def eval_dir(folder: str) -> Path:
    """An evaluation set's folder: the repository's copy if it has one, else ../shared's."""
    for d in (FIXTURES / "eval" / folder, SHARED / "data/eval" / folder):
        if d.is_dir():
            return d
    sys.exit(f"evaluation set {folder} is in neither {FIXTURES / 'eval'} nor {SHARED / 'data/eval'} "
             "(set ZHIKU_SHARED_DIR to the folder that holds data/eval)")


def read_jsonl(path: Path) -> list[dict]:
    """All JSON lines of a file."""
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


class Server:
    """A zhiku server on a temporary data dir."""

    def __init__(self) -> None:
        self.data = Path(tempfile.mkdtemp(prefix="zhiku-bench-"))
        # The pipeline's "batch indexed" lines say where ingest time goes (stage_seconds).
        env = dict(os.environ, ZHIKU_BIND="127.0.0.1:0", ZHIKU_DATA_DIR=str(self.data),
                   ZHIKU_MODELS_DIR=str(MODELS), ZHIKU_ADMIN_TOKEN=TOKEN,
                   ZHIKU_EMBEDDING__THREADS=str(THREADS), ZHIKU_LOG="warn,ingest::pipeline=info")
        self.log_path = self.data / "server.log"
        self.log_read = 0
        self.proc = subprocess.Popen([str(TARGET / "release" / "zhiku"), "serve"], env=env,
                                     stdout=subprocess.PIPE, stderr=self.log_path.open("w"), text=True)
        for line in self.proc.stdout:  # type: ignore[union-attr]
            if line.startswith("zhiku is listening on "):
                self.base = line.split()[-1]
                break
        else:
            sys.stderr.write(self.log_path.read_text(errors="replace")[-4000:])
            raise SystemExit("the server did not start; its log is above")

    def call(self, method: str, path: str, body: dict | None = None) -> dict | list:
        """One JSON request."""
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(self.base + path, data=data, method=method,
                                     headers={"Authorization": f"Bearer {TOKEN}",
                                              "Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=300) as r:
            raw = r.read()
        return json.loads(raw) if raw else {}

    def stage_seconds(self) -> tuple[dict[str, float], int, int]:
        """Ingest stage times summed over the batches logged since the last call, the number
        of batches and of documents in them."""
        text = self.log_path.read_text(errors="replace")
        new, self.log_read = text[self.log_read:], len(text)
        totals: dict[str, float] = {}
        batches = documents = 0
        for line in re.sub(r"\x1b\[[0-9;]*m", "", new).splitlines():
            if "batch indexed" not in line:
                continue
            batches += 1
            documents += int(re.search(r"\bjobs=(\d+)", line).group(1))  # type: ignore[union-attr]
            for stage, ms in re.findall(r"\b(\w+)_ms=(\d+)", line):
                totals[stage] = totals.get(stage, 0.0) + int(ms) / 1000
        return totals, batches, documents

    def rss_mb(self) -> float:
        """Resident memory of the server process."""
        status = Path(f"/proc/{self.proc.pid}/status").read_text()
        return int(re.search(r"VmRSS:\s+(\d+)", status).group(1)) / 1024  # type: ignore[union-attr]

    def close(self) -> None:
        """Stop the server and remove its data."""
        self.proc.terminate()
        self.proc.wait(timeout=60)
        shutil.rmtree(self.data, ignore_errors=True)


def ingest(server: Server, kb: str, passages: list[dict]) -> tuple[float, int]:
    """Upload every passage as a document; wait until all are indexed. (seconds, chunks)"""
    started = time.perf_counter()
    for p in passages:
        text = f"{p['title']}\n\n{p['text']}" if p.get("title") else p["text"]
        server.call("POST", f"/api/kbs/{kb}/documents", {"name": f"{p['id']}.txt", "text": text})
    while True:
        jobs = server.call("GET", "/api/jobs?status=enqueued&limit=1") + server.call("GET", "/api/jobs?status=processing&limit=1")
        if not jobs:
            break
        time.sleep(0.2)
    elapsed = time.perf_counter() - started
    info = server.call("GET", f"/api/kbs/{kb}")
    failed = server.call("GET", "/api/jobs?status=failed&limit=10")
    if failed:
        print(f"  warning: {len(failed)} failed jobs, e.g. {failed[0]['error_message']}", file=sys.stderr)
    return elapsed, int(info["chunk_count"])  # type: ignore[index]


def chunk_texts(server: Server, kb: str) -> list[str]:
    """Every chunk's text, documents in upload order, chunks in document order."""
    texts: list[str] = []
    offset = 0
    docs: list[dict] = []
    while True:
        page = server.call("GET", f"/api/kbs/{kb}/documents?limit=1000&offset={offset}")
        docs += page  # type: ignore[operator]
        if len(page) < 1000:  # type: ignore[arg-type]
            break
        offset += 1000
    for d in reversed(docs):
        got = server.call("GET", f"/api/kbs/{kb}/documents/{d['id']}/chunks?limit=1000")
        texts += [c["text"] for c in got["chunks"]]  # type: ignore[index]
    return texts


def raw_ort_rate(texts: list[str]) -> float:
    """Chunks per second embedding `texts` with raw onnxruntime, as fastembed would."""
    import numpy as np
    import onnxruntime as ort
    from tokenizers import Tokenizer

    model_dir = MODELS / "multilingual-e5-small"
    tok = Tokenizer.from_file(str(model_dir / "tokenizer.json"))
    tok.enable_truncation(512)
    tok.enable_padding(pad_id=1, pad_token="<pad>")
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = THREADS
    sess = ort.InferenceSession(str(model_dir / "model.onnx"), opts, providers=["CPUExecutionProvider"])
    started = time.perf_counter()
    for i in range(0, len(texts), 32):
        enc = tok.encode_batch([f"passage: {t}" for t in texts[i:i + 32]])
        ids = np.array([e.ids for e in enc], dtype=np.int64)
        mask = np.array([e.attention_mask for e in enc], dtype=np.int64)
        out = sess.run(None, {"input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros_like(ids)})[0]
        pooled = (out * mask[..., None]).sum(1) / mask.sum(1, keepdims=True)
        pooled /= np.linalg.norm(pooled, axis=1, keepdims=True)
    return len(texts) / (time.perf_counter() - started)


def evaluate(server: Server, kb: str, queries: list[dict]) -> dict[str, dict]:
    """recall@1, recall@5, MRR@10 and latency percentiles per mode."""
    out = {}
    for mode in MODES:
        r1 = r5 = mrr = 0.0
        server_ms, client_ms = [], []
        for q in queries:
            t = time.perf_counter()
            res = server.call("POST", f"/api/kbs/{kb}/search", {"query": q["query"], "mode": mode, "top_k": 10})
            client_ms.append((time.perf_counter() - t) * 1000)
            server_ms.append(res["timings_ms"]["total_ms"])  # type: ignore[index]
            ranked = [r["document_name"].removesuffix(".txt") for r in res["results"]]  # type: ignore[index]
            gold = set(q["positive_ids"])
            rank = next((i + 1 for i, d in enumerate(ranked) if d in gold), None)
            r1 += rank == 1
            r5 += rank is not None and rank <= 5
            mrr += 1 / rank if rank else 0
        n = len(queries)
        q = statistics.quantiles(server_ms, n=100)
        out[mode] = {"recall@1": r1 / n, "recall@5": r5 / n, "mrr@10": mrr / n,
                     "p50_ms": q[49], "p95_ms": q[94], "client_p50_ms": statistics.median(client_ms)}
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sets", default="cmrc,squad")
    ap.add_argument("--limit-queries", type=int, default=0)
    ap.add_argument("--out", default="")
    ap.add_argument("--skip-raw", action="store_true", help="skip the raw ONNX Runtime ceiling")
    args = ap.parse_args()
    report = [f"Machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
              f"{platform.platform()}; zhiku threads {THREADS}; {time.strftime('%Y-%m-%d')}.", ""]
    server = Server()
    try:
        report.append(f"Server RSS after start (model loaded, no data): {server.rss_mb():.0f} MB")
        for name in args.sets.split(","):
            title, folders, query_folder = SETS[name]
            passages = [p for f in folders for p in read_jsonl(eval_dir(f) / "corpus.jsonl")]
            queries = read_jsonl(eval_dir(query_folder) / "queries.jsonl")
            if args.limit_queries:
                queries = queries[: args.limit_queries]
            kb = server.call("POST", "/api/kbs", {"name": name})["id"]  # type: ignore[index]
            print(f"{title}: ingesting {len(passages)} passages …", flush=True)
            seconds, chunks = ingest(server, kb, passages)
            stages, batches, batched_docs = server.stage_seconds()
            ours = chunks / seconds
            raw = float("nan") if args.skip_raw else raw_ort_rate(chunk_texts(server, kb))
            print(f"  {chunks} chunks in {seconds:.1f} s = {ours:.1f} chunks/s; raw ORT {raw:.1f}/s", flush=True)
            results = evaluate(server, kb, queries)
            report += ["", f"### {title} ({len(passages)} passages → {chunks} chunks, {len(queries)} queries)", "",
                       f"Ingest end to end: {ours:.1f} chunks/s; raw ONNX Runtime on the same chunks: {raw:.1f} chunks/s; "
                       f"ratio {ours / raw:.2f}. Server RSS after ingest: {server.rss_mb():.0f} MB.", "",
                       f"Where the time goes ({batches} batches, {batched_docs / max(batches, 1):.1f} documents "
                       f"each; seconds summed over the workers, waiting for the embedding session included): "
                       + ", ".join(f"{stage} {s:.1f}" for stage, s in stages.items()) + ".", "",
                       "| mode | recall@1 | recall@5 | MRR@10 | p50 ms | p95 ms |", "|---|---:|---:|---:|---:|---:|"]
            for mode, m in results.items():
                report.append(f"| {mode} | {m['recall@1']:.3f} | {m['recall@5']:.3f} | {m['mrr@10']:.3f} | "
                              f"{m['p50_ms']:.1f} | {m['p95_ms']:.1f} |")
            print("\n".join(report[-5:]), flush=True)
    finally:
        server.close()
    text = "\n".join(report) + "\n"
    print(text)
    if args.out:
        Path(args.out).write_text(text, encoding="utf-8")


if __name__ == "__main__":
    main()
