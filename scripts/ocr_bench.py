#!/usr/bin/env python3
"""OCR benchmark: character error rate and speed of zhiku's tesseract invocation.

Renders real Chinese text (the llm-intro-zh articles, and CMRC 2018 passages when given)
into A4 page images with Noto CJK, makes degraded copies, OCRs every image with the same
command zhiku runs (ingest/src/extract/ocr.rs: `tesseract IMAGE stdout -l chi_sim+eng
--oem 1 --psm 3 [--dpi N]`, OMP_THREAD_LIMIT=1) and reports the character error rate per
variant and pages per second.

    pip install -r scripts/requirements-ocr-bench.txt
    python3 scripts/ocr_bench.py [--pages 8] [--jobs 2] [--passages corpus.jsonl]

CER = Levenshtein distance / reference length, on text with all whitespace removed and
NFKC applied to both sides (full-width "（" and ASCII "(" count as the same character:
layout and width forms are not what OCR quality is about). Variants:

* clean-300, clean-200: rendered at that resolution, PNG (dpi in the file).
* skew+2, skew-2: clean-300 rotated by ±2°.
* noise: clean-300 with Gaussian noise (sigma 25) and 0.3 % salt and pepper.
* jpeg-40: clean-300 saved as JPEG quality 40.
* phone-150: a "phone photo": 150 dpi, rotated 1°, uneven lighting, blur, noise,
  JPEG quality 70, and the 72 dpi a phone writes into the file.
* pdf-DPI: clean-300 placed in a PDF, rendered by pdftoppm at DPI (zhiku's path for a
  scanned PDF), to choose the rendering resolution.

Also measured: --psm 6 against --psm 3, and OMP_THREAD_LIMIT=1 with --jobs processes
against one process at a time with tesseract's default threads.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import json
import os
import platform
import random
import subprocess
import sys
import tempfile
import time
import unicodedata
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter, ImageFont
from rapidfuzz.distance import Levenshtein

ROOT = Path(__file__).resolve().parent.parent
ARTICLES = ROOT / "tests/fixtures/docs/llm-intro-zh"
FONT_FILES = {
    "sans": "/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc",
    "serif": "/usr/share/fonts/opentype/noto/NotoSerifCJK-Regular.ttc",
}

# The invocation zhiku uses (ingest/src/extract/ocr.rs); keep the two in step.
LANGUAGES = "chi_sim+eng"
ENGINE_ARGS = ["--oem", "1", "--psm", "3"]

A4_INCHES = (8.27, 11.69)
MARGIN_INCHES = 0.9
LINE_SPACING = 1.6
# Body text size in points; --font-points changes it (small print: 8).
FONT_POINTS = 11.5


def font(kind: str, pixels: int) -> ImageFont.FreeTypeFont:
    """The Simplified Chinese face of a Noto CJK collection."""
    path = FONT_FILES[kind]
    for index in range(10):
        face = ImageFont.truetype(path, pixels, index=index)
        if face.getname()[0].endswith(" SC"):
            return face
    raise SystemExit(f"no SC face in {path}: install fonts-noto-cjk")


def paragraphs(args: argparse.Namespace) -> list[list[str]]:
    """Source texts: one list of paragraphs per article or passage."""
    texts = []
    for path in sorted(ARTICLES.glob("*.txt")):
        lines = [l.strip() for l in path.read_text(encoding="utf-8").splitlines()]
        # The scraped articles start with navigation ("跳转至"); real text starts after.
        texts.append([l for l in lines if len(l) > 8])
    if args.passages:
        # Passages are short: they follow each other as paragraphs of one text.
        with open(args.passages, encoding="utf-8") as f:
            texts.append([json.loads(line)["text"].strip() for line in f])
    return texts


def wrap(paras: list[str], face: ImageFont.FreeTypeFont, width: int) -> list[str]:
    """Greedy character wrapping (Chinese breaks anywhere), paragraphs separated by a blank."""
    lines = []
    for para in paras:
        line = ""
        for ch in para:
            if face.getlength(line + ch) > width and line:
                lines.append(line)
                line = ""
            line += ch
        if line:
            lines.append(line)
        lines.append("")
    return lines


def layout_pages(texts: list[list[str]], count: int) -> list[tuple[str, list[str]]]:
    """The text of `count` pages: (font kind, lines), one page from each source in turn."""
    dpi = 300
    face_px = round(FONT_POINTS / 72 * dpi)
    width = round((A4_INCHES[0] - 2 * MARGIN_INCHES) * dpi)
    per_page = int((A4_INCHES[1] - 2 * MARGIN_INCHES) * dpi / (face_px * LINE_SPACING))
    pages = []
    for i in range(count):
        kind = "sans" if i % 2 == 0 else "serif"
        source = texts[i % len(texts)]
        lines = wrap(source, font(kind, face_px), width)
        start = (i // len(texts)) * per_page
        chunk = lines[start : start + per_page]
        if not "".join(chunk).strip():
            chunk = lines[:per_page]
        pages.append((kind, chunk))
    return pages


def render(kind: str, lines: list[str], dpi: int) -> Image.Image:
    size = (round(A4_INCHES[0] * dpi), round(A4_INCHES[1] * dpi))
    page = Image.new("L", size, 255)
    draw = ImageDraw.Draw(page)
    face_px = round(FONT_POINTS / 72 * dpi)
    face = font(kind, face_px)
    x = y = round(MARGIN_INCHES * dpi)
    for line in lines:
        draw.text((x, y), line, font=face, fill=0)
        y += round(face_px * LINE_SPACING)
    return page


def add_noise(img: Image.Image, sigma: float, salt: float, rng: np.random.Generator) -> Image.Image:
    a = np.asarray(img, dtype=np.float32)
    a = a + rng.normal(0, sigma, a.shape)
    if salt:
        mask = rng.random(a.shape)
        a[mask < salt / 2] = 0
        a[mask > 1 - salt / 2] = 255
    return Image.fromarray(np.clip(a, 0, 255).astype(np.uint8))


def phone_photo(clean300: Image.Image, rng: np.random.Generator) -> Image.Image:
    small = clean300.resize((clean300.width // 2, clean300.height // 2), Image.LANCZOS)
    small = small.rotate(1.0, resample=Image.BICUBIC, expand=True, fillcolor=235)
    a = np.asarray(small, dtype=np.float32)
    # Uneven lighting: darker towards one corner, as under a desk lamp.
    yy, xx = np.mgrid[0 : a.shape[0], 0 : a.shape[1]]
    shade = 1.0 - 0.28 * (xx / a.shape[1] + yy / a.shape[0]) / 2
    a = a * shade
    img = Image.fromarray(np.clip(a, 0, 255).astype(np.uint8))
    img = img.filter(ImageFilter.GaussianBlur(0.8))
    return add_noise(img, 8, 0, rng)


def make_variants(pages, work: Path) -> dict[str, list[tuple[Path, int | None, str]]]:
    """Variant name → [(image path, dpi to pass or None, reference text)]."""
    rng = np.random.default_rng(20261205)
    variants: dict[str, list] = {}

    def add(name, path, dpi, ref):
        variants.setdefault(name, []).append((path, dpi, ref))

    for i, (kind, lines) in enumerate(pages):
        ref = "".join(lines)
        c300 = render(kind, lines, 300)
        p = work / f"p{i}-clean-300.png"
        c300.save(p, dpi=(300, 300))
        add("clean-300", p, None, ref)
        p = work / f"p{i}-clean-200.png"
        render(kind, lines, 200).save(p, dpi=(200, 200))
        add("clean-200", p, None, ref)
        for angle in (2, -2):
            p = work / f"p{i}-skew{angle:+d}.png"
            c300.rotate(angle, resample=Image.BICUBIC, expand=True, fillcolor=255).save(
                p, dpi=(300, 300)
            )
            add(f"skew{angle:+d}", p, None, ref)
        p = work / f"p{i}-noise.png"
        add_noise(c300, 25, 0.003, rng).save(p, dpi=(300, 300))
        add("noise", p, None, ref)
        p = work / f"p{i}-jpeg40.jpg"
        c300.save(p, quality=40, dpi=(300, 300))
        add("jpeg-40", p, None, ref)
        p = work / f"p{i}-phone.jpg"
        phone_photo(c300, rng).save(p, quality=70, dpi=(72, 72))
        add("phone-150", p, None, ref)
        # The scanned-PDF path: the 300 dpi scan in a PDF, rendered back by pdftoppm.
        pdf = work / f"p{i}.pdf"
        c300.save(pdf, resolution=300)
        for dpi in (150, 200, 300, 400):
            prefix = work / f"p{i}-pdf{dpi}"
            subprocess.run(
                ["pdftoppm", "-r", str(dpi), "-gray", "-singlefile", str(pdf), str(prefix)],
                check=True,
            )
            add(f"pdf-{dpi}", prefix.with_suffix(".pgm"), dpi, ref)
    return variants


def ocr(image: Path, dpi: int | None, psm: str = "3", threads: str | None = "1") -> tuple[str, float]:
    """zhiku's tesseract command; the text and the seconds it took."""
    args = ["tesseract", str(image), "stdout", "-l", LANGUAGES]
    engine = list(ENGINE_ARGS)
    engine[engine.index("--psm") + 1] = psm
    args += engine
    if dpi:
        args += ["--dpi", str(dpi)]
    env = dict(os.environ)
    if threads is None:
        env.pop("OMP_THREAD_LIMIT", None)
    else:
        env["OMP_THREAD_LIMIT"] = threads
    started = time.perf_counter()
    out = subprocess.run(args, capture_output=True, env=env, check=True)
    return out.stdout.decode("utf-8", "replace"), time.perf_counter() - started


def squash(text: str) -> str:
    return "".join(unicodedata.normalize("NFKC", text).split())


def cer(ref: str, hyp: str, words_only: bool = False) -> float:
    """Character error rate; `words_only` keeps letters, digits and Han characters only
    (punctuation out: chi_sim reads a full-width "（" as "〈" often, which costs a reader
    nothing and search nothing)."""
    r, h = squash(ref), squash(hyp)
    if words_only:
        keep = lambda t: "".join(c for c in t if unicodedata.category(c)[0] in "LN")
        r, h = keep(r), keep(h)
    return Levenshtein.distance(r, h) / max(len(r), 1)


def run_variant(items, jobs: int, psm: str = "3", threads: str | None = "1"):
    """OCR every item with `jobs` processes: a table row's figures (CER over all the
    characters, the worst page's, CER without punctuation, pages/s, mean s/page)."""
    started = time.perf_counter()
    with concurrent.futures.ThreadPoolExecutor(max_workers=jobs) as pool:
        results = list(pool.map(lambda it: ocr(it[0], it[1], psm, threads), items))
    wall = time.perf_counter() - started
    pairs = [(ref, text) for (_, _, ref), (text, _) in zip(items, results)]
    cers = [cer(ref, text) for ref, text in pairs]
    words = [cer(ref, text, words_only=True) for ref, text in pairs]
    seconds = [s for _, s in results]
    return (
        f"{mean(cers):.2%} | {max(cers):.2%} | {mean(words):.2%} | "
        f"{len(items) / wall:.2f} | {mean(seconds):.2f}"
    )


def mean(values: list[float]) -> float:
    return sum(values) / len(values)


def main() -> int:
    global FONT_POINTS
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pages", type=int, default=8)
    parser.add_argument("--jobs", type=int, default=2, help="tesseract processes at once")
    parser.add_argument("--passages", help="a corpus.jsonl with a text field per line")
    parser.add_argument("--keep", help="write the page images here instead of a temp folder")
    parser.add_argument("--font-points", type=float, default=FONT_POINTS)
    parser.add_argument("--only", help="run only the variants whose names start with this")
    args = parser.parse_args()
    FONT_POINTS = args.font_points

    version = subprocess.run(["tesseract", "--version"], capture_output=True, text=True)
    print(f"# {time.strftime('%Y-%m-%d %H:%M %Z')} | {platform.node()} | "
          f"{os.cpu_count()} CPUs | {version.stdout.splitlines()[0]} | "
          f"-l {LANGUAGES} {' '.join(ENGINE_ARGS)} | {args.pages} pages of {FONT_POINTS} pt | "
          f"{args.jobs} jobs")
    texts = paragraphs(args)
    pages = layout_pages(texts, args.pages)
    chars = sum(len(squash("".join(lines))) for _, lines in pages)
    print(f"# {chars} reference characters ({chars // len(pages)} per page)")
    with tempfile.TemporaryDirectory(prefix="ocr-bench-") as tmp:
        work = Path(args.keep) if args.keep else Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        variants = make_variants(pages, work)
        print("| variant | CER | worst page | CER without punctuation | pages/s | s/page |")
        print("|---|---:|---:|---:|---:|---:|")
        for name, items in variants.items():
            if args.only and not name.startswith(args.only):
                continue
            print(f"| {name} | {run_variant(items, args.jobs)} |", flush=True)
        if args.only:
            return 0
        for name in ("clean-300", "phone-150"):
            print(f"| {name}, --psm 6 | {run_variant(variants[name], args.jobs, psm='6')} |",
                  flush=True)
        row = run_variant(variants["pdf-300"], 1, threads=None)
        print(f"| pdf-300, one process, default OpenMP threads | {row} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
