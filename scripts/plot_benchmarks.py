#!/usr/bin/env python3
"""Draw docs/benchmarks.svg from the benchmarks' JSON reports.

Three panels, each against the issue's targets:

* search latency (p50 / p95) by knowledge-base size for full-text, semantic and hybrid,
  from `zhiku bench search --json` (several files are merged by size, later files win);
* ingest rate (documents/s), zhiku against the LangChain pipeline, per evaluation set, from
  `scripts/bench_langchain.py --json`;
* chat throughput (answer tokens/s over all chats, and per chat) against the number of
  chats at once, from `scripts/bench_chat.py --json`.

A panel whose file is not given is left out.

Set-up (once): .venv/bin/pip install --no-deps -r scripts/requirements-plot.txt
Usage: .venv/bin/python scripts/plot_benchmarks.py [--search a.json …] [--langchain b.json]
           [--chat c.json] [--out docs/benchmarks.svg]
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import matplotlib

matplotlib.use("svg")
import matplotlib.pyplot as plt  # noqa: E402  (after choosing the backend)

# A fixed hash salt (and no date, below) keep the SVG the same for the same figures.
plt.rcParams["svg.hashsalt"] = "zhiku"

# The search targets: hybrid p95 under these milliseconds at these sizes.
HYBRID_P95_TARGET_MS = {100_000: 10.0, 1_000_000: 30.0}
MODE_COLOURS = {"fulltext": "tab:blue", "semantic": "tab:orange", "hybrid": "tab:green"}


def read_json(path: Path):
    """One report."""
    return json.loads(path.read_text(encoding="utf-8"))


def merged_sizes(paths: list[Path]) -> list[dict]:
    """Every size of every search report, one per chunk count, ascending."""
    by_chunks = {}
    for path in paths:
        for size in read_json(path)["sizes"]:
            by_chunks[size["chunks"]] = size
    return [by_chunks[c] for c in sorted(by_chunks)]


def plot_search(ax, sizes: list[dict]) -> None:
    """p50 (solid) and p95 (dashed) per mode, log-scaled sizes, the hybrid targets marked."""
    chunks = [s["chunks"] for s in sizes]
    for mode, colour in MODE_COLOURS.items():
        rows = [next((m for m in s["modes"] if m["mode"] == mode), None) for s in sizes]
        if not any(rows):
            continue
        xs = [c for c, r in zip(chunks, rows) if r]
        ax.plot(xs, [r["p50_ms"] for r in rows if r], "-o", color=colour, label=f"{mode} p50")
        ax.plot(xs, [r["p95_ms"] for r in rows if r], "--o", color=colour, label=f"{mode} p95")
    for size, target_ms in HYBRID_P95_TARGET_MS.items():
        ax.plot([size], [target_ms], "v", color="red", markersize=9)
        ax.annotate(f"target {target_ms:g} ms", (size, target_ms), textcoords="offset points",
                    xytext=(-30, 8), fontsize=8, color="red")
    ax.set_xscale("log")
    ax.set_xlabel("chunks in the knowledge base")
    ax.set_ylabel("ms per search (no query embedding)")
    ax.set_title("Search latency")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7)


def plot_ingest(ax, rows: list[dict]) -> None:
    """Documents/s per set, ours beside theirs, with the ratio over each pair. Documents,
    not chunks: both read the same corpus, but the two splitters make different chunks."""
    rows = [r for r in rows if r.get("ours")]
    titles = [r["title"].split(" ")[0] for r in rows]
    ours = [r["ours"]["documents"] / r["ours"]["ingest_s"] for r in rows]
    theirs = [r["theirs"]["documents"] / r["theirs"]["ingest_s"] for r in rows]
    xs = range(len(rows))
    ax.bar([x - 0.2 for x in xs], ours, 0.4, label="zhiku", color="tab:green")
    ax.bar([x + 0.2 for x in xs], theirs, 0.4, label="LangChain + FAISS + BM25", color="tab:gray")
    for x, o, t in zip(xs, ours, theirs):
        ax.annotate(f"{o / t:.2f}×", (x, max(o, t)), textcoords="offset points", xytext=(-10, 3), fontsize=8)
    ax.set_xticks(list(xs), titles, fontsize=8)
    ax.set_ylabel("documents/s, corpus to queryable index")
    ax.set_title("Ingest (target ≥ 1.1× LangChain)")
    ax.grid(True, axis="y", alpha=0.3)
    ax.legend(fontsize=7)


def plot_chat(ax, rows: list[dict]) -> None:
    """Aggregate (solid) and per-chat (dashed) tokens/s against chats at once, per model."""
    for row in rows:
        runs = row.get("throughput", [])
        if not runs:
            continue
        n = [t["concurrency"] for t in runs]
        line, = ax.plot(n, [t["tokens_per_s"] for t in runs], "-o", label=f"{row['model']}: all chats")
        ax.plot(n, [t["mean_stream_tokens_per_s"] for t in runs], "--o", color=line.get_color(),
                label=f"{row['model']}: per chat")
    ax.set_xlabel("chats at once")
    ax.set_ylabel("answer tokens/s")
    ax.set_title("Chat throughput")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=6, loc="center right")


def main() -> None:
    """Draw whichever panels have reports."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--search", type=Path, nargs="*", default=[], help="zhiku bench search --json reports")
    ap.add_argument("--langchain", type=Path, help="scripts/bench_langchain.py --json report")
    ap.add_argument("--chat", type=Path, help="scripts/bench_chat.py --json report")
    ap.add_argument("--machine", default="", help="the machine, for the figure's title")
    ap.add_argument("--out", type=Path, default=Path("docs/benchmarks.svg"))
    args = ap.parse_args()

    panels = []
    if args.search:
        panels.append((plot_search, merged_sizes(args.search)))
    if args.langchain:
        panels.append((plot_ingest, read_json(args.langchain)))
    if args.chat:
        panels.append((plot_chat, read_json(args.chat)))
    if not panels:
        raise SystemExit("nothing to draw: give --search, --langchain or --chat")
    fig, axes = plt.subplots(1, len(panels), figsize=(5.2 * len(panels), 4.2), squeeze=False)
    for ax, (draw, data) in zip(axes[0], panels):
        draw(ax, data)
    if args.machine:
        fig.suptitle(args.machine, fontsize=9)
    fig.tight_layout()
    fig.savefig(args.out, metadata={"Date": None})
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
