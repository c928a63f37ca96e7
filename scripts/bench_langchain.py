#!/usr/bin/env python3
"""zhiku against the pipeline a Python user would build instead: LangChain + FAISS + BM25.

For each evaluation set of ../shared/data/eval, the same corpus (one document per corpus
record, its `text` only, no title) goes through two pipelines:

* theirs: LangChain's `RecursiveCharacterTextSplitter` (256 tokens of the e5 tokenizer,
  32 overlap, Chinese-aware separators), the same multilingual-e5-small ONNX model run
  through onnxruntime as a LangChain `Embeddings` class (2 intra-op threads, batches of
  32, "passage: " / "query: " prefixes, mean pooling, L2 normalisation), a FAISS vector
  store, a `BM25Retriever` over jieba `lcut_for_search` tokens (lower-cased, tokens with
  no letter or digit dropped, as zhiku's analyzer does; no stemming), and an
  `EnsembleRetriever` (weighted reciprocal rank fusion, weights 0.5/0.5, k = 5 from each
  retriever);
* ours: `zhiku eval … --modes hybrid --k 1,5 --json` (its own temp knowledge base, same
  model file, ZHIKU_EMBEDDING__THREADS=2).

It reports the ingest rate (chunks/s from reading the corpus to a queryable index, and
the seconds of each LangChain stage), hybrid query latency p50/p95 (query embedding
included; for LangChain also without it) and document-level recall@1/@5 (a retrieved
chunk counts for its document; each document counts at its first chunk), then prints a
markdown table of ours against theirs.

Set-up (once): python3 -m venv .venv-langchain
               .venv-langchain/bin/pip install -r scripts/requirements-langchain.txt
and the models (./scripts/setup) and the release binary (cargo build --release).

Usage: .venv-langchain/bin/python scripts/bench_langchain.py [--sets llm,squad,cmrc]
           [--limit-queries N] [--skip-zhiku] [--k-each 5] [--out docs/benchmarks.md] [--json FILE]
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path

# langchain-community warns on import that it is being sunset (see requirements-langchain.txt);
# that is noise in a benchmark's output.
warnings.filterwarnings("ignore", message=".*langchain-community.*", category=DeprecationWarning)

import faiss  # noqa: E402
import jieba  # noqa: E402
import numpy as np  # noqa: E402
import onnxruntime as ort  # noqa: E402
from langchain_community.retrievers import BM25Retriever  # noqa: E402
from langchain_community.vectorstores import FAISS  # noqa: E402
from langchain_core.documents import Document  # noqa: E402
from langchain_core.embeddings import Embeddings  # noqa: E402
from langchain_text_splitters import RecursiveCharacterTextSplitter  # noqa: E402
from tokenizers import Tokenizer  # noqa: E402

try:  # LangChain >= 1.0 moved the legacy retrievers to langchain-classic.
    from langchain_classic.retrievers import EnsembleRetriever
except ImportError:  # LangChain 0.x
    from langchain.retrievers import EnsembleRetriever  # type: ignore[no-redef]

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench import MODELS, ROOT, SETS, SHARED, TARGET, THREADS, read_jsonl  # noqa: E402

EVAL = SHARED / "data" / "eval"
MODEL_DIR = MODELS / "multilingual-e5-small"
BATCH = 32
# zhiku's default split (ingest/src/split.rs: AUTO_MAX_TOKENS, AUTO_OVERLAP_TOKENS).
CHUNK_TOKENS = 256
OVERLAP_TOKENS = 32
SEPARATORS = ["\n\n", "\n", "。", "！", "？", "；", "，", " ", ""]
KS = (1, 5)


def set_key(name: str) -> str:
    """The SETS key of a set given by key or by folder name."""
    for key, (_, _, query_folder) in SETS.items():
        if name in (key, query_folder):
            return key
    raise SystemExit(f"unknown set '{name}'; known: {', '.join(SETS)} (or their folder names)")


def percentile(samples: list[float], p: float) -> float:
    """The p-th percentile by the nearest-rank method, as zhiku eval computes it."""
    if not samples:
        return 0.0
    ordered = sorted(samples)
    rank = int(np.ceil(p / 100 * len(ordered)))
    return ordered[min(max(rank, 1), len(ordered)) - 1]


def recall_at(ranked_docs: list[str], positives: set[str], k: int) -> float:
    """Share of the positives among the first k documents (zhiku's eval::metrics::recall_at)."""
    if not positives:
        return 0.0
    found = sum(1 for d in ranked_docs[:k] if d in positives)
    return min(found, len(positives)) / len(positives)


def first_occurrences(items: list[str]) -> list[str]:
    """Each item once, at its first position (chunks → their documents)."""
    seen: set[str] = set()
    out = []
    for item in items:
        if item not in seen:
            seen.add(item)
            out.append(item)
    return out


class OnnxE5Embeddings(Embeddings):
    """multilingual-e5-small through raw onnxruntime, as scripts/bench.py runs it.

    Passages get the model's passage prefix and queries its query prefix (from
    zhiku-model.json); the token embeddings are mean-pooled over the attention mask and
    L2-normalised. Passages are embedded in input order, `batch_size` at a time.
    """

    def __init__(self, model_dir: Path, threads: int = THREADS, batch_size: int = BATCH) -> None:
        """Load the tokenizer and one ONNX Runtime session with `threads` intra-op threads."""
        info = json.loads((model_dir / "zhiku-model.json").read_text(encoding="utf-8"))
        self.query_prefix = info.get("query_prefix", "query: ")
        self.passage_prefix = info.get("passage_prefix", "passage: ")
        self.batch_size = batch_size
        self.tokenizer = Tokenizer.from_file(str(model_dir / "tokenizer.json"))
        self.tokenizer.enable_truncation(int(info.get("max_tokens", 512)))
        self.tokenizer.enable_padding(pad_id=self.tokenizer.token_to_id("<pad>"), pad_token="<pad>")
        # A second copy without truncation or padding sizes chunks, as zhiku's splitter does.
        self.counter = Tokenizer.from_file(str(model_dir / "tokenizer.json"))
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads
        self.session = ort.InferenceSession(str(model_dir / "model.onnx"), opts,
                                            providers=["CPUExecutionProvider"])
        self.query_seconds: list[float] = []

    def count_tokens(self, text: str) -> int:
        """Tokens in `text` without special tokens (the splitter's length function)."""
        return len(self.counter.encode(text, add_special_tokens=False).ids)

    def _embed(self, texts: list[str]) -> np.ndarray:
        """Unit vectors of already-prefixed texts, one ONNX run per batch."""
        out = []
        for i in range(0, len(texts), self.batch_size):
            enc = self.tokenizer.encode_batch(texts[i:i + self.batch_size])
            ids = np.array([e.ids for e in enc], dtype=np.int64)
            mask = np.array([e.attention_mask for e in enc], dtype=np.int64)
            hidden = self.session.run(None, {"input_ids": ids, "attention_mask": mask,
                                             "token_type_ids": np.zeros_like(ids)})[0]
            pooled = (hidden * mask[..., None]).sum(1) / mask.sum(1, keepdims=True)
            out.append(pooled / np.linalg.norm(pooled, axis=1, keepdims=True))
        return np.concatenate(out) if out else np.zeros((0, 0), dtype=np.float32)

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        """Passage vectors, in input order."""
        return self._embed([self.passage_prefix + t for t in texts]).tolist()

    def embed_query(self, text: str) -> list[float]:
        """A query vector; its wall time is appended to `query_seconds`."""
        started = time.perf_counter()
        vector = self._embed([self.query_prefix + text])[0].tolist()
        self.query_seconds.append(time.perf_counter() - started)
        return vector


def jieba_tokens(text: str) -> list[str]:
    """BM25 terms: jieba search-mode words of the lower-cased text, punctuation and spaces dropped."""
    return [w for w in jieba.lcut_for_search(text.lower()) if any(c.isalnum() for c in w)]


@dataclass
class LangChainIndex:
    """A queryable LangChain hybrid index and what building it cost."""

    retriever: EnsembleRetriever
    embeddings: OnnxE5Embeddings
    documents: int
    chunks: int
    stages_s: dict[str, float] = field(default_factory=dict)

    @property
    def ingest_s(self) -> float:
        """Seconds from reading the corpus to the queryable index."""
        return sum(self.stages_s.values())


def build_langchain(corpus_paths: list[Path], k_each: int) -> LangChainIndex:
    """Load the model, read, split, embed and index the corpus; time each stage.

    The model load counts, as zhiku's does: `zhiku eval` starts its passage session (and
    the tokenizer that sizes chunks) at the first document of each set.
    """
    stages: dict[str, float] = {}
    t = time.perf_counter()
    embeddings = OnnxE5Embeddings(MODEL_DIR)
    embeddings.embed_documents(["probe"])  # the first run warms the session
    stages["load"] = time.perf_counter() - t

    t = time.perf_counter()
    records = [r for p in corpus_paths for r in read_jsonl(p)]
    docs = [Document(page_content=r["text"], metadata={"doc_id": r["id"]}) for r in records]
    stages["read"] = time.perf_counter() - t

    t = time.perf_counter()
    # What from_huggingface_tokenizer builds (length_function = number of tokens without
    # special tokens), without needing transformers' PreTrainedTokenizerBase.
    splitter = RecursiveCharacterTextSplitter(
        separators=SEPARATORS, keep_separator="end", chunk_size=CHUNK_TOKENS,
        chunk_overlap=OVERLAP_TOKENS, length_function=embeddings.count_tokens)
    chunks = splitter.split_documents(docs)
    for i, c in enumerate(chunks):
        c.metadata["chunk_id"] = str(i)
        c.id = str(i)
    stages["split"] = time.perf_counter() - t

    t = time.perf_counter()
    texts = [c.page_content for c in chunks]
    vectors = embeddings.embed_documents(texts)
    stages["embed"] = time.perf_counter() - t

    t = time.perf_counter()
    store = FAISS.from_embeddings(list(zip(texts, vectors)), embeddings,
                                  metadatas=[c.metadata for c in chunks], ids=[c.id for c in chunks])
    semantic = store.as_retriever(search_kwargs={"k": k_each})
    stages["faiss"] = time.perf_counter() - t

    t = time.perf_counter()
    bm25 = BM25Retriever.from_documents(chunks, preprocess_func=jieba_tokens, k=k_each)
    stages["bm25"] = time.perf_counter() - t

    retriever = EnsembleRetriever(retrievers=[bm25, semantic], weights=[0.5, 0.5], id_key="chunk_id")
    return LangChainIndex(retriever=retriever, embeddings=embeddings, documents=len(docs), chunks=len(chunks), stages_s=stages)


def evaluate_langchain(index: LangChainIndex, queries: list[dict]) -> dict:
    """Hybrid recall@k (document level) and latency, with and without the query embedding."""
    embeddings = index.embeddings
    recalls = {k: 0.0 for k in KS}
    total_ms, search_ms = [], []
    embeddings.query_seconds.clear()
    for q in queries:
        started = time.perf_counter()
        results = index.retriever.invoke(q["query"])
        elapsed = time.perf_counter() - started
        embed = embeddings.query_seconds[-1]
        total_ms.append(elapsed * 1000)
        search_ms.append((elapsed - embed) * 1000)
        ranked = first_occurrences([d.metadata["doc_id"] for d in results])
        for k in KS:
            recalls[k] += recall_at(ranked, set(q["positive_ids"]), k)
    n = max(len(queries), 1)
    return {"recall": {k: v / n for k, v in recalls.items()},
            "p50_ms": percentile(total_ms, 50), "p95_ms": percentile(total_ms, 95),
            "search_p50_ms": percentile(search_ms, 50), "search_p95_ms": percentile(search_ms, 95),
            "mean_embed_ms": 1000 * sum(embeddings.query_seconds) / n}


def run_zhiku(corpus_paths: list[Path], query_path: Path, limit: int) -> dict:
    """`zhiku eval` in hybrid mode on the same files; its figures in this script's shape."""
    binary = TARGET / "release" / "zhiku"
    if not binary.exists():
        raise SystemExit(f"{binary} not found: build it with `cargo build --release`, or pass --skip-zhiku")
    cmd = [str(binary), "eval", "--corpus", str(corpus_paths[0]), "--queries", str(query_path),
           "--modes", "hybrid", "--k", ",".join(map(str, KS)), "--json"]
    for extra in corpus_paths[1:]:
        cmd += ["--distractors", str(extra)]
    if limit:
        cmd += ["--limit", str(limit)]
    env = dict(os.environ, ZHIKU_MODELS_DIR=str(MODELS), ZHIKU_EMBEDDING__THREADS=str(THREADS),
               ZHIKU_LOG=os.environ.get("ZHIKU_LOG", "warn"))
    done = subprocess.run(cmd, env=env, cwd=ROOT, stdout=subprocess.PIPE, text=True)
    if done.returncode != 0:
        raise SystemExit(f"zhiku eval failed ({done.returncode}): {' '.join(cmd)}")
    report = json.loads(done.stdout)
    if report["failed_documents"]:
        print(f"  warning: zhiku failed {len(report['failed_documents'])} documents, "
              f"e.g. {report['failed_documents'][0]}", file=sys.stderr)
    mode = next(m for m in report["modes"] if m["mode"] == "hybrid")
    return {"documents": report["documents"], "chunks": report["chunks"], "ingest_s": report["ingest_s"],
            "recall": {r["k"]: r["recall"] for r in mode["recall"]},
            "p50_ms": mode["p50_ms"], "p95_ms": mode["p95_ms"], "mean_embed_ms": mode["mean_embed_ms"]}


def fmt(value: float | None, digits: int = 1) -> str:
    """A number for the table, or a dash."""
    return "–" if value is None else f"{value:.{digits}f}"


def table(rows: list[dict]) -> list[str]:
    """The markdown comparison table, ours against theirs."""
    lines = ["| set | chunks (ours / theirs) | ingest chunks/s ours | theirs | ratio | "
             "hybrid p50 ms ours | theirs | hybrid p95 ms ours | theirs | "
             "recall@1 ours | theirs | recall@5 ours | theirs |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        ours, theirs = r.get("ours"), r["theirs"]
        ours_rate = ours["chunks"] / ours["ingest_s"] if ours else None
        theirs_rate = theirs["chunks"] / theirs["ingest_s"]
        lines.append(
            f"| {r['title']} | {ours['chunks'] if ours else '–'} / {theirs['chunks']} | "
            f"{fmt(ours_rate)} | {fmt(theirs_rate)} | {fmt(ours_rate / theirs_rate if ours else None, 2)} | "
            f"{fmt(ours and ours['p50_ms'])} | {fmt(theirs['p50_ms'])} | "
            f"{fmt(ours and ours['p95_ms'])} | {fmt(theirs['p95_ms'])} | "
            f"{fmt(ours and ours['recall'][1], 3)} | {fmt(theirs['recall'][1], 3)} | "
            f"{fmt(ours and ours['recall'][5], 3)} | {fmt(theirs['recall'][5], 3)} |")
    return lines


def details(rows: list[dict]) -> list[str]:
    """Per-set notes: ingest seconds and documents/s (chunk counts differ between the two
    splitters), LangChain's stage seconds, its latency without the query embedding, and the
    mean query embedding time of both."""
    lines = []
    for r in rows:
        t, o = r["theirs"], r.get("ours")
        stages = ", ".join(f"{k} {v:.2f}" for k, v in t["stages_s"].items())
        line = (f"- {r['title']} ({t['documents']} documents, {r['queries']} queries): LangChain ingest "
                f"{t['ingest_s']:.1f} s = {t['documents'] / t['ingest_s']:.2f} documents/s ({stages} s); "
                f"its hybrid search without the query embedding p50 {t['search_p50_ms']:.1f} / "
                f"p95 {t['search_p95_ms']:.1f} ms, mean query embedding {t['mean_embed_ms']:.1f} ms")
        if o:
            line += (f"; zhiku ingest {o['ingest_s']:.1f} s = {o['documents'] / o['ingest_s']:.2f} documents/s, "
                     f"mean query embedding {o['mean_embed_ms']:.1f} ms")
        lines.append(line + ".")
    return lines


def main() -> None:
    """Run both pipelines on each set and print (and optionally append) the report."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sets", default="llm,squad,cmrc", help="comma-separated: llm, squad, cmrc (or folder names)")
    ap.add_argument("--limit-queries", type=int, default=0, help="only the first N queries of each set")
    ap.add_argument("--skip-zhiku", action="store_true", help="run the LangChain side only")
    ap.add_argument("--k-each", type=int, default=5, help="chunks each LangChain retriever contributes (default 5)")
    ap.add_argument("--out", default="", help="append the markdown report to this file")
    ap.add_argument("--json", default="", help="also write the raw figures here (for scripts/plot_benchmarks.py)")
    args = ap.parse_args()

    faiss.omp_set_num_threads(THREADS)
    jieba.setLogLevel(jieba.logging.WARNING)
    jieba.initialize()  # dictionary load: start-up, like loading the model (zhiku does both before ingest_s)

    rows = []
    for name in args.sets.split(","):
        key = set_key(name.strip())
        title, folders, _ = SETS[key]
        corpus_paths = [EVAL / f / "corpus.jsonl" for f in folders]
        query_path = EVAL / folders[0] / "queries.jsonl"
        queries = read_jsonl(query_path)
        if args.limit_queries:
            queries = queries[: args.limit_queries]
        print(f"{title}: LangChain …", flush=True)
        index = build_langchain(corpus_paths, args.k_each)
        theirs = {"documents": index.documents, "chunks": index.chunks, "ingest_s": index.ingest_s,
                  "stages_s": index.stages_s, **evaluate_langchain(index, queries)}
        print(f"  {theirs['chunks']} chunks, {theirs['chunks'] / theirs['ingest_s']:.1f} chunks/s, "
              f"recall@5 {theirs['recall'][5]:.3f}, p50 {theirs['p50_ms']:.1f} ms", flush=True)
        row = {"title": title, "queries": len(queries), "theirs": theirs}
        if not args.skip_zhiku:
            print(f"{title}: zhiku eval …", flush=True)
            row["ours"] = ours = run_zhiku(corpus_paths, query_path, args.limit_queries)
            print(f"  {ours['chunks']} chunks, {ours['chunks'] / ours['ingest_s']:.1f} chunks/s, "
                  f"recall@5 {ours['recall'][5]:.3f}, p50 {ours['p50_ms']:.1f} ms", flush=True)
        rows.append(row)

    report = ["### zhiku against LangChain + FAISS + BM25 (hybrid)", "",
              f"Machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
              f"{platform.platform()}; {THREADS} ONNX Runtime threads on both sides; {time.strftime('%Y-%m-%d')}. "
              f"Ours: `zhiku eval --modes hybrid` ({os.environ.get('ZHIKU_SEARCH__CANDIDATES', '50')} candidates "
              f"a retriever, {os.environ.get('ZHIKU_SEARCH__FUSION', 'weighted')} fusion). Theirs: "
              f"RecursiveCharacterTextSplitter ({CHUNK_TOKENS} e5 tokens, {OVERLAP_TOKENS} overlap) + FAISS + "
              f"BM25Retriever (jieba) + EnsembleRetriever (0.5/0.5, k={args.k_each} each). Latency includes "
              f"the query embedding; recall is at document level.", "", *table(rows), "", *details(rows)]
    text = "\n".join(report) + "\n"
    print()
    print(text)
    if args.out:
        with open(args.out, "a", encoding="utf-8") as f:
            f.write("\n" + text)
    if args.json:
        Path(args.json).write_text(json.dumps(rows, ensure_ascii=False, indent=1), encoding="utf-8")


if __name__ == "__main__":
    main()
