#!/usr/bin/env python3
"""How long a one-line memo waits behind big CSVs: the issue's "small documents must not
wait for big ones".

Starts `zhiku serve` on a temporary data dir, uploads --csvs generated CSVs of --rows rows
each, waits until the first is being processed, uploads a one-line memo and measures how
long the memo takes to be indexed, and whether the CSVs were still processing then. It
also samples the first CSV's job (passages done/total, estimated time left) while it runs.

Usage: python3 scripts/bench_fairness.py [--binary target/release/zhiku] [--csvs 3] [--rows 30000]
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import zhiku_server  # noqa: E402  (starting the server, as the other benchmarks do)

ROOT = Path(__file__).resolve().parent.parent
TOKEN = "bench-fairness-token"


def request(base: str, method: str, path: str, body: bytes | None = None,
            content_type: str = "application/json") -> dict | list:
    req = urllib.request.Request(base + path, data=body, method=method)
    req.add_header("Authorization", f"Bearer {TOKEN}")
    if body is not None:
        req.add_header("content-type", content_type)
    with urllib.request.urlopen(req, timeout=120) as r:
        return json.loads(r.read() or b"null")


def upload(base: str, kb: str, name: str, data: bytes) -> dict:
    boundary = uuid.uuid4().hex
    body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{name}\"\r\n"
            "Content-Type: application/octet-stream\r\n\r\n").encode() + data + f"\r\n--{boundary}--\r\n".encode()
    out = request(base, "POST", f"/api/kbs/{kb}/documents", body, f"multipart/form-data; boundary={boundary}")
    return out["documents"][0]


def csv(index: int, rows: int) -> bytes:
    lines = ["订单号,客户,城市,产品,数量,金额,备注"]
    cities = ["北京", "上海", "广州", "深圳", "杭州", "成都"]
    for i in range(rows):
        lines.append(f"{index}-{i:06d},客户{i % 997},{cities[i % 6]},产品{i % 131},{i % 17 + 1},"
                     f"{(i * 37) % 10000}.00,第{i}行 批次{index}")
    return ("\n".join(lines) + "\n").encode()


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--binary", default=str(ROOT / "target/release/zhiku"))
    parser.add_argument("--csvs", type=int, default=3)
    parser.add_argument("--rows", type=int, default=30_000)
    parser.add_argument("--models", default=os.environ.get("ZHIKU_MODELS_DIR", str(ROOT / "models")))
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as data:
        env = dict(os.environ, ZHIKU_BIND="127.0.0.1:0", ZHIKU_DATA_DIR=data,
                   ZHIKU_MODELS_DIR=args.models, ZHIKU_ADMIN_TOKEN=TOKEN,
                   ZHIKU_EMBEDDING__THREADS="2", ZHIKU_LLM__MODEL="smollm2-135m-instruct-q4_1",
                   ZHIKU_LLM__CONTEXT_TOKENS="2048", ZHIKU_LLM__THREADS="1")
        server, base = zhiku_server.start(args.binary, env, quiet=True)
        try:
            kb = request(base, "POST", "/api/kbs", json.dumps({"name": "fair"}).encode())["id"]
            big = [upload(base, kb, f"orders-{i}.csv", csv(i, args.rows)) for i in range(args.csvs)]
            while request(base, "GET", f"/api/jobs/{big[0]['job_id']}")["status"] != "processing":
                time.sleep(0.2)
            memo = upload(base, kb, "memo.txt", "明天下午三点在三楼会议室开周会。\n".encode())
            uploaded = time.monotonic()
            samples = []
            while True:
                doc = request(base, "GET", f"/api/kbs/{kb}/documents/{memo['id']}")
                if doc["status"] in ("indexed", "failed"):
                    break
                job = request(base, "GET", f"/api/jobs/{big[0]['job_id']}")
                if job.get("passages_total") and len(samples) < 5:
                    samples.append({k: job.get(k) for k in ("stage", "passages_done", "passages_total", "eta_seconds")})
                time.sleep(0.2)
            waited = time.monotonic() - uploaded
            statuses = [request(base, "GET", f"/api/kbs/{kb}/documents/{d['id']}")["status"] for d in big]
            job = request(base, "GET", f"/api/jobs/{big[0]['job_id']}")
            print(json.dumps({
                "binary": args.binary, "csvs": args.csvs, "rows": args.rows,
                "memo_status": doc["status"], "memo_waited_s": round(waited, 1),
                "csv_statuses_when_memo_done": statuses,
                "first_csv_job": {k: job.get(k) for k in ("stage", "progress", "passages_done", "passages_total", "eta_seconds")},
                "samples_while_waiting": samples,
            }, ensure_ascii=False, indent=1))
        finally:
            server.terminate()
            try:
                server.wait(timeout=60)
            except subprocess.TimeoutExpired:
                server.kill()
    return 0


if __name__ == "__main__":
    sys.exit(main())
