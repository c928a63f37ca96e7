#!/usr/bin/env python3
"""OCR benchmark: character error rate and speed of zhiku's tesseract invocation.

Renders real Chinese text (the llm-intro-zh articles, and CMRC 2018 passages when given)
into A4 page images with Noto CJK, makes degraded copies, OCRs every image with the same
command zhiku runs (ingest/src/extract/ocr.rs: `tesseract IMAGE stdout -l chi_sim+eng
--oem 1 --psm 3 [--dpi N]`, OMP_THREAD_LIMIT=1), reading a page again with `chi_sim` alone
where zhiku does (Chinese read as Latin capitals: ingest/src/extract/misread.rs, copied
below), and reports the character error rate per variant and pages per second.

With `--zhiku PATH` each page is read by zhiku's own code instead (the `ocr_file` example
of the ingest crate: extraction with the default OCR settings, so an image file goes
through everything zhiku does to it, such as scaling a 300 dpi image down, and a PDF page
is rendered by zhiku). Use it to measure a change to zhiku; the copy above is for trying
tesseract's options.

    pip install -r scripts/requirements-ocr-bench.txt
    python3 scripts/ocr_bench.py [--pages 8] [--jobs 2] [--passages corpus.jsonl]
    cargo build --release --locked --workspace --example ocr_file
    python3 scripts/ocr_bench.py --zhiku target/release/examples/ocr_file --only clean,noise

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
import re
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


def is_ideograph(c: str) -> bool:
    """ingest/src/extract/misread.rs `is_ideograph`: what "mostly Chinese" is counted in."""
    o = ord(c)
    return (
        0x3040 <= o <= 0x30FF
        or 0x3400 <= o <= 0x4DBF
        or 0x4E00 <= o <= 0x9FFF
        or 0xAC00 <= o <= 0xD7AF
        or 0xF900 <= o <= 0xFAFF
        or 0x20000 <= o <= 0x3134F
    )


def east_asian_alone(languages: str) -> str | None:
    """misread.rs `east_asian_alone`: the Chinese/Japanese/Korean languages of the list,
    when there are others to leave out."""
    parts = languages.split("+")
    asian = [l for l in parts if l.startswith(("chi_", "jpn", "kor"))]
    return "+".join(asian) if asian and len(asian) < len(parts) else None


def capital_words(text: str) -> int:
    """misread.rs `capital_words`: on a page with at least as many ideographs as ASCII
    letters, the runs of two or more ASCII letters that are all capitals."""
    ideographs = sum(1 for c in text if is_ideograph(c))
    latin = sum(1 for c in text if c.isascii() and c.isalpha())
    if ideographs == 0 or ideographs < latin:
        return 0
    words = re.split(r"[^A-Za-z]", text)
    return sum(1 for w in words if len(w) >= 2 and w.isupper())


# misread.rs `READ_AGAIN_AT`.
READ_AGAIN_AT = 3


def ocr(image: Path, dpi: int | None, psm: str = "3", threads: str | None = "1") -> tuple[str, float]:
    """What zhiku does with a page (ocr.rs `recognise`): its tesseract command, and when
    the reading has Chinese taken for Latin capitals (misread.rs), a second reading with
    the Chinese language alone, kept when it has at most half the capital words. The text
    and the seconds both took."""
    text, seconds = tesseract(image, dpi, LANGUAGES, psm, threads)
    first = capital_words(text)
    asian = east_asian_alone(LANGUAGES)
    if first >= READ_AGAIN_AT and asian:
        again, more = tesseract(image, dpi, asian, psm, threads)
        seconds += more
        if capital_words(again) * 2 <= first:
            text = again
    return text, seconds


def zhiku_ocr(binary: str, image: Path, dpi: int | None) -> tuple[str, float]:
    """zhiku's own code path: `ingest/examples/ocr_file` on the image (or, for a rendered
    PDF page, on the PDF zhiku would get, rendered at `dpi` as zhiku renders it)."""
    args = [binary, str(image)]
    if dpi:
        args = [binary, str(image.parent / (image.name.split("-pdf")[0] + ".pdf")), "--dpi", str(dpi)]
    started = time.perf_counter()
    out = subprocess.run(args, capture_output=True, check=True)
    return out.stdout.decode("utf-8", "replace"), time.perf_counter() - started


def tesseract(
    image: Path, dpi: int | None, languages: str, psm: str = "3", threads: str | None = "1"
) -> tuple[str, float]:
    """zhiku's tesseract command in `languages`; the text and the seconds it took."""
    args = ["tesseract", str(image), "stdout", "-l", languages]
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


def run_variant(items, jobs: int, psm: str = "3", threads: str | None = "1", zhiku: str | None = None):
    """OCR every item with `jobs` processes (zhiku's own code when `zhiku` names the
    ocr_file example): a table row's figures (CER over all the characters, the worst
    page's, CER without punctuation, pages/s, mean s/page)."""
    started = time.perf_counter()

    def read(item):
        if zhiku:
            return zhiku_ocr(zhiku, item[0], item[1])
        return ocr(item[0], item[1], psm, threads)

    with concurrent.futures.ThreadPoolExecutor(max_workers=jobs) as pool:
        results = list(pool.map(read, items))
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
    parser.add_argument("--only", help="run only the variants whose names start with one of "
                        "these (comma-separated)")
    parser.add_argument("--zhiku", help="read each page with zhiku's own code: the path of the "
                        "ocr_file example (cargo build --release --workspace --example ocr_file)")
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
            if args.only and not name.startswith(tuple(args.only.split(","))):
                continue
            print(f"| {name} | {run_variant(items, args.jobs, zhiku=args.zhiku)} |", flush=True)
        if args.only or args.zhiku:
            return 0
        for name in ("clean-300", "phone-150"):
            print(f"| {name}, --psm 6 | {run_variant(variants[name], args.jobs, psm='6')} |",
                  flush=True)
        row = run_variant(variants["pdf-300"], 1, threads=None)
        print(f"| pdf-300, one process, default OpenMP threads | {row} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
