#!/usr/bin/env python3
"""Retrieval over scans against the same passages as text (issue 21 §1).

Takes the first --passages passages of a corpus (cmrc2018-trial), renders each as a
scanned PDF (A4 page images at 300 dpi, Noto CJK, no text layer: what a scanner writes),
and ingests them into one knowledge base of a fresh data dir; the same passages as .txt
files go into a second. Then `zhiku eval --kb` runs the queries whose positives are
among those passages against each, and the script prints hybrid (and the other modes')
recall@k for both, with the character error rate of the OCR'd text against the passage.

    pip install -r scripts/requirements-ocr-bench.txt
    python3 scripts/bench_scans.py --corpus $EVAL/cmrc2018-trial/corpus.jsonl \
        --queries $EVAL/cmrc2018-trial/queries.jsonl [--passages 200] [--binary B] [--keep DIR]

Needs the release binary (default $CARGO_TARGET_DIR/release/zhiku), the models
($ZHIKU_MODELS_DIR, default ./models), tesseract with chi_sim, pdftoppm and the Noto CJK
fonts (scripts/setup). The rendering is ocr_bench.py's (same font size, margins, faces).
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import ocr_bench  # noqa: E402  (the page layout and the CER, shared with the OCR benchmark)

ROOT = Path(__file__).resolve().parent.parent
TARGET = Path(os.environ.get("CARGO_TARGET_DIR", ROOT / "target"))


def passage_pdf(text: str, kind: str, path: Path) -> int:
    """`text` as a scanned PDF (300 dpi page images, no text layer); its page count."""
    dpi = 300
    face_px = round(ocr_bench.FONT_POINTS / 72 * dpi)
    width = round((ocr_bench.A4_INCHES[0] - 2 * ocr_bench.MARGIN_INCHES) * dpi)
    per_page = int(
        (ocr_bench.A4_INCHES[1] - 2 * ocr_bench.MARGIN_INCHES) * dpi / (face_px * ocr_bench.LINE_SPACING)
    )
    lines = ocr_bench.wrap([text], ocr_bench.font(kind, face_px), width)
    while lines and not lines[-1]:
        lines.pop()
    pages = [
        ocr_bench.render(kind, lines[i : i + per_page], dpi)
        for i in range(0, len(lines), per_page)
    ]
    pages[0].save(path, resolution=dpi, save_all=True, append_images=pages[1:])
    return len(pages)


def zhiku(binary: Path, env: dict, *args: str) -> str:
    out = subprocess.run([str(binary), *args], env=env, capture_output=True, text=True)
    if out.returncode != 0:
        sys.exit(f"zhiku {' '.join(args)} failed:\n{out.stderr[-3000:]}")
    return out.stdout


def document_texts(db: Path, kb: str) -> dict[str, str]:
    """Each document's text as its chunks hold it, by name without the extension. Chunks
    overlap; each keeps only what lies past the end of the one before on its page
    (`start_byte`/`end_byte` are offsets in the page's text), so nothing counts twice."""
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    rows = con.execute(
        "SELECT d.name, c.text, c.is_ocr, c.page, c.start_byte, c.end_byte FROM chunk c "
        "JOIN document d ON d.document_id = c.document_id "
        "JOIN kb k ON k.kb_id = c.kb_id WHERE k.name = ? AND c.is_deleted = 0 "
        "ORDER BY d.name, c.ordinal",
        (kb,),
    ).fetchall()
    texts: dict[str, list[str]] = {}
    ocr = 0
    last: tuple[str, int | None, int] | None = None
    for name, text, is_ocr, page, start, end in rows:
        raw = text.encode("utf-8")
        if last and last[:2] == (name, page) and start < last[2]:
            raw = raw[min(last[2] - start, len(raw)):]
        texts.setdefault(name.rsplit(".", 1)[0], []).append(raw.decode("utf-8", "ignore"))
        last = (name, page, max(end, last[2] if last and last[:2] == (name, page) else end))
        ocr += is_ocr
    if kb == "scans" and ocr != len(rows):
        print(f"# warning: {len(rows) - ocr} of {len(rows)} scan chunks not marked OCR")
    return {k: "\n".join(v) for k, v in texts.items()}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--corpus", required=True)
    parser.add_argument("--queries", required=True)
    parser.add_argument("--passages", type=int, default=200)
    parser.add_argument("--binary", default=str(TARGET / "release/zhiku"))
    parser.add_argument("--keep", help="keep the data dir and the rendered files here")
    parser.add_argument("--worst", type=int, default=5, help="list the passages OCR read worst")
    parser.add_argument("--text-report", help="the text side's eval-text.json of an earlier run "
                        "with the same --passages: only the scans are ingested again")
    args = parser.parse_args()

    with open(args.corpus, encoding="utf-8") as f:
        corpus = [json.loads(line) for line in f][: args.passages]
    ids = {p["id"] for p in corpus}
    with open(args.queries, encoding="utf-8") as f:
        queries = [q for q in map(json.loads, f) if set(q["positive_ids"]) <= ids]

    tmp = tempfile.TemporaryDirectory(prefix="bench-scans-")
    work = Path(args.keep) if args.keep else Path(tmp.name)
    (work / "scans").mkdir(parents=True, exist_ok=True)
    (work / "text").mkdir(exist_ok=True)
    queries_path = work / "queries.jsonl"
    queries_path.write_text("".join(json.dumps(q, ensure_ascii=False) + "\n" for q in queries),
                            encoding="utf-8")
    pages = 0
    for i, p in enumerate(corpus):
        pages += passage_pdf(p["text"], "sans" if i % 2 == 0 else "serif",
                             work / "scans" / f"{p['id']}.pdf")
        (work / "text" / f"{p['id']}.txt").write_text(p["text"], encoding="utf-8")
    version = subprocess.run(["tesseract", "--version"], capture_output=True, text=True)
    print(f"# {time.strftime('%Y-%m-%d %H:%M %Z')} | {platform.node()} | {os.cpu_count()} CPUs"
          f" | {version.stdout.splitlines()[0]} | {len(corpus)} passages, {pages} scanned pages,"
          f" {len(queries)} queries")

    env = dict(os.environ)
    env["ZHIKU_DATA_DIR"] = str(work / "data")
    env.setdefault("ZHIKU_MODELS_DIR", str(ROOT / "models"))
    binary = Path(args.binary)
    results = {}
    if args.text_report:
        results["text"] = json.loads(Path(args.text_report).read_text(encoding="utf-8"))
    for kb in ("text", "scans"):
        if kb in results:
            continue
        zhiku(binary, env, "kb", "create", kb)
        started = time.perf_counter()
        zhiku(binary, env, "ingest", "--kb", kb, str(work / kb))
        print(f"# ingest {kb}: {time.perf_counter() - started:.0f} s", flush=True)
        report = json.loads(zhiku(binary, env, "eval", "--kb", kb, "--queries",
                                  str(queries_path), "--json"))
        (work / f"eval-{kb}.json").write_text(json.dumps(report, ensure_ascii=False, indent=1))
        results[kb] = report

    scanned = document_texts(work / "data/zhiku.db", "scans")
    cers = sorted(((ocr_bench.cer(p["text"], scanned.get(p["id"], "")), p["id"]) for p in corpus),
                  reverse=True)
    words = [ocr_bench.cer(p["text"], scanned.get(p["id"], ""), words_only=True) for p in corpus]
    print(f"# OCR CER over the passages: mean {sum(c for c, _ in cers) / len(cers):.2%} "
          f"({sum(words) / len(words):.2%} without punctuation), "
          f"worst {', '.join(f'{i} {c:.1%}' for c, i in cers[: args.worst])}")
    print("| mode | recall@1 text / scans | recall@5 text / scans | recall@10 text / scans "
          "| answer@5 text / scans |")
    print("|---|---|---|---|---|")
    for mode in modes(results["text"]):
        cells = []
        for k, field in (("1", "recall"), ("5", "recall"), ("10", "recall"), ("5", "answer")):
            t = recall(results["text"], mode, k, field)
            s = recall(results["scans"], mode, k, field)
            cells.append(f"{t:.3f} / {s:.3f} ({(s - t) * 100:+.1f})")
        print(f"| {mode} | {' | '.join(cells)} |")
    for kb in ("text", "scans"):
        r = results[kb]
        print(f"# {kb}: {r['documents']} documents, {r['chunks']} chunks, "
              f"{len(r['failed_documents'])} failed")
    return 0


def modes(report: dict) -> list[str]:
    return [m["mode"] for m in report["modes"]]


def recall(report: dict, mode: str, k: str, field: str = "recall") -> float:
    """recall@k (or answer@k: the first k chunks hold a gold answer) of one mode."""
    entry = next(m for m in report["modes"] if m["mode"] == mode)
    return float(next(r["recall"] for r in entry[field] if r["k"] == int(k)))


if __name__ == "__main__":
    raise SystemExit(main())
