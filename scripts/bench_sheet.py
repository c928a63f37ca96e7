#!/usr/bin/env python3
"""A 300,000-row, ~14 MB CSV through the ingest path end to end: chunks, minutes, peak RSS.

Generates the CSV (orders: id, customer, city, product, quantity, amount; fixed seed), then runs the ingest crate's `ingest_file` example on it (extract →
clean → split with the default split settings → embed every chunk with the default model,
as a worker does; the server's SQLite writes and indexes are not included). Prints the
example's figures and the child's peak RSS as the kernel saw it.

Usage: python3 scripts/bench_sheet.py [--rows 300000] [--no-embed] [--keep FILE]
Needs: cargo build --release -p ingest --example ingest_file (CARGO_TARGET_DIR honoured),
       the models under $ZHIKU_MODELS_DIR (default ./models).
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import random
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TARGET = Path(os.environ.get("CARGO_TARGET_DIR", ROOT / "target"))
MODELS = Path(os.environ.get("ZHIKU_MODELS_DIR", ROOT / "models"))
CITIES = ["上海", "杭州", "南京", "苏州", "合肥", "宁波", "无锡", "广州", "深圳", "北京"]
PRODUCTS = [("智能音箱", 299), ("扫地机器人", 1899), ("空气净化器", 1299), ("电动牙刷", 199),
            ("蓝牙耳机", 399), ("智能手表", 999)]


def write_csv(path: Path, rows: int) -> None:
    """Orders, one per row, under a header; about 47 bytes a row."""
    rng = random.Random(21)
    with path.open("w", encoding="utf-8", newline="") as f:
        f.write("订单号,客户,城市,产品,数量,金额\r\n")
        for i in range(rows):
            product, price = rng.choice(PRODUCTS)
            qty = rng.randint(1, 20)
            f.write(f"D{i:06d},客户{rng.randint(1, 999):03d},{rng.choice(CITIES)},{product},{qty},{qty * price}\r\n")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, default=300_000)
    ap.add_argument("--no-embed", action="store_true", help="extract, clean and split only")
    ap.add_argument("--keep", type=Path, help="write the CSV here and keep it")
    args = ap.parse_args()
    binary = TARGET / "release/examples/ingest_file"
    if not binary.exists():
        sys.exit(f"{binary} is missing: cargo build --release -p ingest --example ingest_file")
    with tempfile.TemporaryDirectory() as tmp:
        csv = args.keep or Path(tmp) / "orders.csv"
        write_csv(csv, args.rows)
        size = csv.stat().st_size
        print(f"CSV: {args.rows:,} rows, {size / 1e6:.1f} MB ({size:,} bytes)", flush=True)
        cmd = [str(binary), str(csv), "--models", str(MODELS)] + (["--no-embed"] if args.no_embed else [])
        started = time.monotonic()
        out = subprocess.run(cmd, check=True, stdout=subprocess.PIPE, text=True).stdout
        wall = time.monotonic() - started
    figures = json.loads(out.strip().splitlines()[-1])
    child_peak_kib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    print(json.dumps(figures, ensure_ascii=False))
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores; command: {' '.join(cmd)}")
    print(f"chunks: {figures['chunks']:,} (mean {figures['mean_tokens']} tokens, max {figures['max_tokens']}); "
          f"labels {figures['first_label']} … {figures['last_label']}")
    print(f"minutes: {wall / 60:.2f} wall (extract {figures['extract_s']:.1f} s, split {figures['split_s']:.1f} s, "
          f"embed {figures['embed_s'] / 60:.2f} min for {figures['embedded']:,} chunks)")
    print(f"peak RSS: {child_peak_kib / 1024:.0f} MiB (after split {figures['peak_rss_after_split_kib'] / 1024:.0f} MiB)")


if __name__ == "__main__":
    main()
