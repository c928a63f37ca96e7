#!/usr/bin/env python3
"""The 300,000-row, ~14 MB CSV end to end on a running server (issue 21 §4–§6).

Starts `zhiku serve` on a temporary data dir, uploads the CSV of scripts/bench_sheet.py
(orders, fixed seed), and once it is being embedded uploads a 1 KB text: how long the text
waited to be indexed (the fair queue, §5) and how far the CSV had got by then. Then waits
for the CSV: its chunks, the minutes from upload to indexed, and the server's peak RSS
(VmHWM, the whole process: extraction, splitting, embedding, SQLite and the indexes).

Usage: python3 scripts/bench_big_csv.py [--binary B] [--rows 300000] [--timeout-min 120]
A run cut short by --timeout-min prints what it has: the chunks, the rate so far, the peak
RSS until then and the wait of the small text.
Needs the release binary (default $CARGO_TARGET_DIR/release/zhiku) and the models
($ZHIKU_MODELS_DIR, default ./models). Run it niced on a shared machine: `nice -n 10`.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_fairness import TOKEN, request, upload  # noqa: E402  (the same HTTP helpers)
from bench_sheet import write_csv  # noqa: E402  (the same CSV)
import zhiku_server  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
TARGET = Path(os.environ.get("CARGO_TARGET_DIR", ROOT / "target"))
# About 1 KB of UTF-8: 340 Chinese characters.
SMALL_TEXT = ("本周五下午三点在三楼会议室召开季度销售复盘会，请各区域负责人准备本区域的销售额、"
              "利润与库存数据，并提前把材料发到部门邮箱。") * 6


def peak_rss_mib(pid: int) -> float:
    """The process's peak resident set (VmHWM) in MiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--binary", default=str(TARGET / "release/zhiku"))
    parser.add_argument("--rows", type=int, default=300_000)
    parser.add_argument("--models", default=os.environ.get("ZHIKU_MODELS_DIR", str(ROOT / "models")))
    parser.add_argument("--timeout-min", type=float, default=120)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="bench-big-csv-") as tmp:
        csv = Path(tmp) / "orders.csv"
        write_csv(csv, args.rows)
        size = csv.stat().st_size
        print(f"# {time.strftime('%Y-%m-%d %H:%M %Z')} | {platform.node()} | {os.cpu_count()} CPUs"
              f" | {args.rows:,} rows, {size / 1e6:.1f} MB | {args.binary}", flush=True)
        data = Path(tmp) / "data"
        env = dict(os.environ, ZHIKU_BIND="127.0.0.1:0", ZHIKU_DATA_DIR=str(data),
                   ZHIKU_MODELS_DIR=args.models, ZHIKU_ADMIN_TOKEN=TOKEN,
                   ZHIKU_LLM__MODEL="smollm2-135m-instruct-q4_1",
                   ZHIKU_LLM__CONTEXT_TOKENS="2048", ZHIKU_LLM__THREADS="1")
        server, base = zhiku_server.start(args.binary, env, quiet=True)
        try:
            kb = request(base, "POST", "/api/kbs", json.dumps({"name": "big"}).encode())["id"]
            started = time.monotonic()
            big = upload(base, kb, "orders.csv", csv.read_bytes())
            job_path = f"/api/jobs/{big['job_id']}"
            # The small text goes in once the CSV is embedding: the case the fair queue is for.
            while True:
                job = request(base, "GET", job_path)
                if job["status"] in ("indexed", "failed") or job.get("passages_done"):
                    break
                time.sleep(0.5)
            embedding_after = time.monotonic() - started
            small = upload(base, kb, "memo.txt", SMALL_TEXT.encode())
            small_at = time.monotonic()
            while True:
                doc = request(base, "GET", f"/api/kbs/{kb}/documents/{small['id']}")
                if doc["status"] in ("indexed", "failed"):
                    break
                time.sleep(0.2)
            small_waited = time.monotonic() - small_at
            at_small = request(base, "GET", job_path)
            print(f"# small text ({len(SMALL_TEXT.encode())} bytes) {doc['status']} after "
                  f"{small_waited:.1f} s; the CSV then: {at_small.get('passages_done')}/"
                  f"{at_small.get('passages_total')} passages, eta {at_small.get('eta_seconds')} s",
                  flush=True)
            last_print = 0.0
            while True:
                doc = request(base, "GET", f"/api/kbs/{kb}/documents/{big['id']}")
                if doc["status"] in ("indexed", "failed"):
                    break
                elapsed = time.monotonic() - started
                if elapsed > args.timeout_min * 60:
                    # What a cut-short run can still say: the chunks (known once split), the
                    # embedding rate so far and the peak until now.
                    job = request(base, "GET", job_path)
                    embed_s = elapsed - embedding_after
                    done = job.get("passages_done") or 0
                    print(json.dumps({
                        "rows": args.rows, "bytes": size, "status": "stopped at --timeout-min",
                        "chunks": job.get("passages_total"), "passages_done": done,
                        "minutes_so_far": round(elapsed / 60, 2),
                        "extract_and_split_s": round(embedding_after, 1),
                        "passages_per_s": round(done / embed_s, 2) if embed_s > 0 else None,
                        "eta_seconds": job.get("eta_seconds"),
                        "server_peak_rss_mib_so_far": round(peak_rss_mib(server.pid)),
                        "small_text_waited_s": round(small_waited, 1),
                    }, ensure_ascii=False))
                    return 2
                if elapsed - last_print > 120:
                    job = request(base, "GET", job_path)
                    print(f"# {elapsed / 60:.1f} min: {job.get('stage')} {job.get('passages_done')}/"
                          f"{job.get('passages_total')}, eta {job.get('eta_seconds')} s, peak RSS "
                          f"{peak_rss_mib(server.pid):.0f} MiB", flush=True)
                    last_print = elapsed
                time.sleep(1)
            minutes = (time.monotonic() - started) / 60
            peak = peak_rss_mib(server.pid)
            print(json.dumps({
                "rows": args.rows, "bytes": size, "status": doc["status"],
                "error": doc.get("error_message"), "chunks": doc.get("chunk_count"),
                "minutes_upload_to_indexed": round(minutes, 2),
                "embedding_started_after_s": round(embedding_after, 1),
                "server_peak_rss_mib": round(peak),
                "small_text_waited_s": round(small_waited, 1),
                "csv_passages_when_small_indexed": [at_small.get("passages_done"),
                                                    at_small.get("passages_total")],
            }, ensure_ascii=False))
        finally:
            server.terminate()
            try:
                server.wait(timeout=60)
            except subprocess.TimeoutExpired:
                server.kill()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
