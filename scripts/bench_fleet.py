#!/usr/bin/env python3
"""A fleet of zhiku nodes on one PostgreSQL (issue 22 §6): ingest throughput with one, two
and three nodes while five uploaders write, how far each node's indexes lag behind the
database meanwhile, whether every node ends equal to the database, and memory per node.

Makes a throw-away PostgreSQL cluster (`initdb` from the newest /usr/lib/postgresql/*/bin,
or `pg_config --bindir`; as the `postgres` OS user when run as root, since initdb refuses
root; initdb's defaults, fsync on), on a free loopback port, removed at the end. For each
fleet size N (--nodes 1,2,3): a fresh database, N `zhiku serve` nodes with
`database.several_nodes` on, each with its own temporary data dir; a KB made on the first
node and opened (searched) on every node; then five uploader threads send --docs
passages, one .txt document each, round-robin over the nodes. Every document carries a
made-up marker word on its own line (zkmark0042q) that full-text search finds on it alone.

Measured per N:
- throughput: the first upload until every document is indexed (the document list, polled
  on the nodes in turn every 0.25 s): docs/s and chunks/s; failed documents; which node
  ran each job (the queue's `lease_owner`, read with psql, matched to each data dir's
  node_id); jobs that ran more than once;
- replica lag, two ways: each node's `zhiku_index_lag_chunks` gauge (GET /metrics, every
  0.25 s), max and p95; and for every 10th document (--probe-every), the seconds from the
  commit of its marker's chunk (PostgreSQL's track_commit_timestamp, turned on in the
  throw-away cluster) until each node's full-text search finds the marker (searched every
  0.2 s from when the poll sees the document `processing`), on every node and on the
  nodes that did not ingest it;
- correctness at the end: every node's GET /api/kbs/{kb}/index-check equal to the database
  (BM25 and vectors hold exactly the live chunks), awaited up to --settle-s; every
  document's marker found on every node in exactly one chunk of that document alone; one
  document per upload, no failed one; in the database, each document's live chunks equal
  its chunk_count, its marker in exactly one live chunk, and no deleted chunks (a job run
  twice would leave some); the same chunk count per document whatever the fleet size;
- memory per node: peak resident (VmHWM) and resident at the end (VmRSS); CPU seconds
  from its start until every document is indexed, and until the end (the script's own
  searches at the end included).

Prints the machine (nproc, load average at start and end, kernel), the commit, the
command, and Markdown tables.

The corpus: cmrc2018-trial's passages, then distractors-zh's, from tests/fixtures/eval if
the repository has them, else $ZHIKU_SHARED_DIR/data/eval (default ../shared/data/eval);
llm-intro-zh (in the repository) if neither is there.

Usage: python3 scripts/bench_fleet.py [--binary target/release/zhiku] [--nodes 1,2,3]
                                      [--docs 300] [--threads 0] [--keep] [--json FILE]
(--keep leaves each node's data dir and server.log; --json writes every figure, each
node's lag gauge as a time series among them.) Exits 1 when a check failed, listing why.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import platform
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import zhiku_server  # noqa: E402  (starting the server, as the other benchmarks do)

ROOT = Path(__file__).resolve().parent.parent
SHARED = Path(os.environ.get("ZHIKU_SHARED_DIR", ROOT.parent / "shared"))
FIXTURES = ROOT / "tests/fixtures"
MODELS = Path(os.environ.get("ZHIKU_MODELS_DIR", ROOT / "models"))
TARGET = Path(os.environ.get("CARGO_TARGET_DIR", ROOT / "target"))
TOKEN = "bench-fleet-token"
# Encrypts stored secrets; with several nodes it must be the same on every node.
SECRET = "bench-fleet-secret-0123456789abcdef"
UPLOADERS = 5
POLL_S = 0.25
PROBE_S = 0.2
LAG_METRIC = "zhiku_index_lag_chunks"


# --- PostgreSQL --------------------------------------------------------------------------

def pg_bindir() -> Path:
    """Where the PostgreSQL server binaries are: `pg_config --bindir` if it has initdb,
    else the newest /usr/lib/postgresql/<version>/bin (as ingest/src/testing.rs looks)."""
    try:
        out = subprocess.run(["pg_config", "--bindir"], capture_output=True, text=True).stdout.strip()
        if out and (Path(out) / "initdb").is_file():
            return Path(out)
    except FileNotFoundError:
        pass
    found = sorted((int(d.name), d / "bin") for d in Path("/usr/lib/postgresql").glob("*")
                   if d.name.isdigit() and (d / "bin/initdb").is_file()) if Path("/usr/lib/postgresql").is_dir() else []
    if not found:
        sys.exit("PostgreSQL's initdb was not found (pg_config --bindir, /usr/lib/postgresql/*/bin): "
                 "run scripts/setup, which installs Debian's postgresql package")
    return found[-1][1]


def free_port() -> int:
    """A free loopback TCP port (free when asked; the caller retries if it is taken)."""
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class PgCluster:
    """A throw-away PostgreSQL cluster in a temporary directory, on a loopback port, with
    its socket in that directory. `close` stops it and removes the directory; a watchdog
    shell does the same if this script is killed without running it."""

    def __init__(self) -> None:
        self.bin = pg_bindir()
        self.as_postgres = os.geteuid() == 0
        self.dir = Path(tempfile.mkdtemp(prefix="zhiku-fleet-pg-"))
        self.data = self.dir / "data"
        self.log = self.dir / "log"
        self.port = 0
        self.running = False
        if self.as_postgres:
            subprocess.run(["chown", "postgres:", str(self.dir)], check=True)
        self._watchdog()
        self._run("initdb", "-D", str(self.data), "-A", "trust", "-U", "postgres", "-E", "UTF8")
        err = ""
        for _ in range(3):  # the port may be taken between asking and binding
            self.port = free_port()
            # Commit times of rows, for the lag from a chunk's commit to a search that finds it.
            opts = f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1 -c track_commit_timestamp=on"
            try:
                self._run("pg_ctl", "-D", str(self.data), "-o", opts, "-l", str(self.log), "-w", "start")
                self.running = True
                break
            except RuntimeError as e:
                err = f"{e}\n{self.log.read_text(errors='replace')[-2000:] if self.log.exists() else ''}"
        if not self.running:
            self.close()
            sys.exit(f"PostgreSQL did not start: {err}")
        self.version = self.psql("postgres", "SHOW server_version").split()[0]

    def _run(self, tool: str, *args: str) -> str:
        """Run a server tool from the cluster's bindir (as `postgres` when we are root)."""
        cmd = [str(self.bin / tool), *args]
        if self.as_postgres:
            cmd = ["runuser", "-u", "postgres", "--", *cmd]
        out = subprocess.run(cmd, capture_output=True, text=True)
        if out.returncode != 0:
            raise RuntimeError(f"{tool} failed ({out.returncode}): {out.stderr.strip() or out.stdout.strip()}")
        return out.stdout

    def _watchdog(self) -> None:
        """A detached shell that stops the cluster and removes its directory once this
        script's process is gone, however it ended."""
        stop = f"{self.bin / 'pg_ctl'} -D {self.data} -m immediate -w stop"
        if self.as_postgres:
            stop = f"runuser -u postgres -- {stop}"
        script = (f"while kill -0 {os.getpid()} 2>/dev/null; do sleep 2; done; "
                  f"[ -d {self.data} ] && {stop} >/dev/null 2>&1; rm -rf {self.dir}")
        subprocess.Popen(["sh", "-c", script], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                         stderr=subprocess.DEVNULL, start_new_session=True)

    def url(self, db: str) -> str:
        """The URL zhiku is given for database `db`."""
        return f"postgres://postgres@127.0.0.1:{self.port}/{db}"

    def psql(self, db: str, sql: str) -> str:
        """Run `sql` on database `db` over TCP; its rows unaligned, `|`-separated."""
        out = subprocess.run(["psql", "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-h", "127.0.0.1",
                              "-p", str(self.port), "-U", "postgres", "-d", db, "-c", sql],
                             capture_output=True, text=True)
        if out.returncode != 0:
            raise RuntimeError(f"psql on {db} failed: {out.stderr.strip()}")
        return out.stdout

    def create_database(self, name: str) -> str:
        """A new empty database; its URL."""
        self.psql("postgres", f'CREATE DATABASE "{name}"')
        return self.url(name)

    def close(self) -> None:
        """Stop the server (fast: sessions disconnected) and remove the directory."""
        if self.running:
            try:
                self._run("pg_ctl", "-D", str(self.data), "-m", "fast", "-w", "stop")
            except RuntimeError as e:
                print(f"warning: {e}", file=sys.stderr)
            self.running = False
        shutil.rmtree(self.dir, ignore_errors=True)


# --- zhiku nodes -------------------------------------------------------------------------

def request(base: str, method: str, path: str, body: bytes | None = None,
            content_type: str = "application/json", timeout: float = 120) -> dict | list | str:
    """One request with the admin token: the JSON answer (text for non-JSON)."""
    req = urllib.request.Request(base + path, data=body, method=method)
    req.add_header("Authorization", f"Bearer {TOKEN}")
    if body is not None:
        req.add_header("content-type", content_type)
    with urllib.request.urlopen(req, timeout=timeout) as r:
        raw = r.read()
        if "json" in (r.headers.get("content-type") or ""):
            return json.loads(raw or b"null")
        return raw.decode("utf-8", errors="replace")


def post_json(base: str, path: str, body: dict, timeout: float = 120) -> dict | list:
    """POST a JSON body."""
    return request(base, "POST", path, json.dumps(body).encode(), timeout=timeout)  # type: ignore[return-value]


def upload(base: str, kb: str, name: str, data: bytes) -> dict:
    """One file as multipart field `file`; the document the server made."""
    boundary = uuid.uuid4().hex
    body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{name}\"\r\n"
            "Content-Type: text/plain; charset=utf-8\r\n\r\n").encode() + data + f"\r\n--{boundary}--\r\n".encode()
    out = request(base, "POST", f"/api/kbs/{kb}/documents", body, f"multipart/form-data; boundary={boundary}")
    return out["documents"][0]  # type: ignore[index]


def proc_status(pid: int) -> dict[str, int]:
    """VmRSS and VmHWM of a process, in KiB (empty once it is gone)."""
    try:
        text = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return {}
    return {k: int(v) for k, v in re.findall(r"^(VmRSS|VmHWM):\s+(\d+)", text, re.M)}


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return float("nan")
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class Node:
    """One `zhiku serve` on its own temporary data dir, on the fleet's database."""

    def __init__(self, index: int, binary: Path, db_url: str, threads: int, models: Path) -> None:
        self.index = index
        self.data = Path(tempfile.mkdtemp(prefix=f"zhiku-fleet-node{index}-"))
        self.log = self.data / "server.log"
        env = dict(os.environ, ZHIKU_BIND="127.0.0.1:0", ZHIKU_DATA_DIR=str(self.data),
                   ZHIKU_MODELS_DIR=str(models), ZHIKU_ADMIN_TOKEN=TOKEN, ZHIKU_SECRET_KEY=SECRET,
                   ZHIKU_DATABASE__URL=db_url, ZHIKU_DATABASE__SEVERAL_NODES="true",
                   ZHIKU_EMBEDDING__THREADS=str(threads),
                   # Chat is not used: the smallest model, one thread.
                   ZHIKU_LLM__MODEL="smollm2-135m-instruct-q4_1", ZHIKU_LLM__CONTEXT_TOKENS="2048",
                   ZHIKU_LLM__THREADS="1", ZHIKU_LOG=os.environ.get("ZHIKU_LOG", "info"))
        self.proc, self.base = zhiku_server.start(binary, env, log=self.log)
        self.node_id = (self.data / "node_id").read_text().strip() if (self.data / "node_id").exists() else ""
        self.cpu_start = cpu_seconds(self.proc.pid)

    def name(self) -> str:
        """How the tables call it."""
        return f"node {self.index}"

    def lag(self) -> float | None:
        """The node's `zhiku_index_lag_chunks` gauge, None if /metrics did not answer."""
        try:
            text = request(self.base, "GET", "/metrics", timeout=10)
        except (OSError, urllib.error.URLError):
            return None
        for line in str(text).splitlines():
            if line.startswith(LAG_METRIC + " ") or line.startswith(LAG_METRIC + "{"):
                return float(line.rsplit(" ", 1)[1])
        return None

    def finds(self, kb: str, marker: str) -> list[dict]:
        """The full-text search results for `marker` (top 5)."""
        out = post_json(self.base, f"/api/kbs/{kb}/search", {"query": marker, "mode": "fulltext", "top_k": 5},
                        timeout=30)
        return out["results"]  # type: ignore[index]

    def stop(self, keep: bool) -> int | None:
        """SIGTERM, then SIGKILL after 60 s; remove the data dir unless `keep`. The exit status."""
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                print(f"warning: {self.name()} did not stop in 60 s; killed", file=sys.stderr)
                self.proc.kill()
                self.proc.wait()
        if not keep:
            shutil.rmtree(self.data, ignore_errors=True)
        return self.proc.returncode


# --- the corpus ---------------------------------------------------------------------------

def corpus(docs: int) -> tuple[str, list[tuple[str, bytes]]]:
    """`docs` documents (name, bytes), each a passage with its marker word on the first line,
    and the corpus's description. Markers: zkmark0000q, zkmark0001q, …"""
    sets = ["cmrc2018-trial", "distractors-zh"]
    passages: list[dict] = []
    used: list[str] = []
    for folder in sets:
        for base in (FIXTURES / "eval", SHARED / "data/eval"):
            path = base / folder / "corpus.jsonl"
            if path.is_file():
                rows = [json.loads(l) for l in path.read_text(encoding="utf-8").splitlines() if l.strip()]
                take = rows[:docs - len(passages)]
                if take:
                    passages += take
                    used.append(f"{len(take)} passages of {folder}")
                break
        if len(passages) >= docs:
            break
    if not passages:
        path = FIXTURES / "eval/llm-intro-zh/corpus.jsonl"
        rows = [json.loads(l) for l in path.read_text(encoding="utf-8").splitlines() if l.strip()]
        passages = [rows[i % len(rows)] for i in range(docs)]
        used.append(f"llm-intro-zh's {len(rows)} passages repeated to {docs}")
    out = []
    for i, p in enumerate(passages):
        text = f"{p['title']}\n\n{p['text']}" if p.get("title") else p["text"]
        out.append((f"{i:04d}-{p.get('id', i)}.txt", f"{marker(i)}\n{text}\n".encode()))
    return " + ".join(used), out


def marker(i: int) -> str:
    """Document i's made-up marker word."""
    return f"zkmark{i:04d}q"


# --- one run ------------------------------------------------------------------------------

def percentile(values: list[float], p: float) -> float:
    """The p-th percentile (nearest rank); nan when there are none."""
    if not values:
        return float("nan")
    s = sorted(values)
    return s[max(0, math.ceil(p / 100 * len(s)) - 1)]


def list_documents(node: Node, kb: str) -> list[dict]:
    """Every document of the KB, through `node` (pages of 1,000)."""
    docs: list[dict] = []
    while True:
        page = request(node.base, "GET", f"/api/kbs/{kb}/documents?limit=1000&offset={len(docs)}", timeout=60)
        docs += page  # type: ignore[operator]
        if len(page) < 1000:  # type: ignore[arg-type]
            return docs


class Sampler(threading.Thread):
    """Every POLL_S: each node's lag gauge and resident memory, until stopped."""

    def __init__(self, nodes: list[Node]) -> None:
        super().__init__(daemon=True)
        self.nodes = nodes
        self.lags: dict[int, list[float]] = {n.index: [] for n in nodes}
        self.series: dict[int, list[tuple[float, float]]] = {n.index: [] for n in nodes}  # (s, lag)
        self.started = time.monotonic()
        self.failures: dict[int, int] = {n.index: 0 for n in nodes}
        self.rss: dict[int, list[int]] = {n.index: [] for n in nodes}
        self.halt = threading.Event()

    def run(self) -> None:
        while not self.halt.is_set():
            for n in self.nodes:
                lag = n.lag()
                if lag is None:
                    self.failures[n.index] += 1
                else:
                    self.lags[n.index].append(lag)
                    self.series[n.index].append((round(time.monotonic() - self.started, 2), lag))
                self.rss[n.index].append(proc_status(n.proc.pid).get("VmRSS", 0))
            self.halt.wait(POLL_S)


class Prober:
    """For the sampled documents: from the moment the poll saw one `processing` (or
    `indexed`, if it never saw it processing), each node's full-text search for its marker
    every PROBE_S until it finds it (one thread per node). Records the wall-clock time of
    each node's first hit, to be set against the chunk's commit time in PostgreSQL."""

    def __init__(self, nodes: list[Node], kb: str, deadline_s: float) -> None:
        self.nodes, self.kb, self.deadline_s = nodes, kb, deadline_s
        self.pending: dict[int, dict[str, str]] = {n.index: {} for n in nodes}  # node -> doc id -> marker
        self.found: dict[str, dict[int, float]] = {}  # doc id -> node -> time.time() of the first hit
        self.indexed: dict[str, float] = {}  # doc id -> time.time() the poll first saw it indexed
        self.late: set[str] = set()  # documents first seen already indexed
        self.errors: list[str] = []
        self.lock = threading.Lock()
        self.halt = threading.Event()
        self.threads = [threading.Thread(target=self._run, args=(n,), daemon=True) for n in nodes]
        for t in self.threads:
            t.start()

    def add(self, doc_id: str, mark: str) -> None:
        """Start looking for a document (once)."""
        with self.lock:
            if doc_id in self.found:
                return
            self.found[doc_id] = {}
            for n in self.nodes:
                self.pending[n.index][doc_id] = mark

    def saw_indexed(self, doc_id: str, mark: str, at: float) -> None:
        """The poll saw the document indexed at `at` (time.time())."""
        with self.lock:
            if doc_id not in self.found:
                self.late.add(doc_id)
            self.indexed[doc_id] = at
        self.add(doc_id, mark)

    def busy(self) -> bool:
        """Whether some node has not found some sampled document yet."""
        with self.lock:
            return any(self.pending.values())

    def _run(self, node: Node) -> None:
        while not self.halt.is_set():
            with self.lock:
                todo = list(self.pending[node.index].items())
            for doc_id, mark in todo:
                try:
                    hits = node.finds(self.kb, mark)
                except (OSError, urllib.error.URLError) as e:
                    self.errors.append(f"{node.name()}: search failed: {e}")
                    continue
                now = time.time()
                with self.lock:
                    if any(h["document_id"] == doc_id for h in hits):
                        self.found[doc_id][node.index] = now
                        del self.pending[node.index][doc_id]
                    elif doc_id in self.indexed and now - self.indexed[doc_id] > self.deadline_s:
                        self.errors.append(f"{node.name()} never found {mark} ({doc_id}) "
                                           f"{self.deadline_s:.0f} s after it was indexed")
                        del self.pending[node.index][doc_id]
            self.halt.wait(PROBE_S)

    def stop(self) -> None:
        self.halt.set()
        for t in self.threads:
            t.join(timeout=60)


def uploaders(nodes: list[Node], kb: str, docs: list[tuple[str, bytes]]) -> tuple[list[dict], list[str], float]:
    """Five threads upload the documents; document i goes to node i mod N, uploader i mod 5.
    The documents made (in corpus order, with the node it went to), errors, and the
    seconds until the last upload returned."""
    made: list[dict | None] = [None] * len(docs)
    errors: list[str] = []
    started = time.monotonic()

    def work(u: int) -> None:
        for i in range(u, len(docs), UPLOADERS):
            node = nodes[i % len(nodes)]
            try:
                doc = upload(node.base, kb, *docs[i])
                made[i] = dict(doc, uploaded_to=node.index, marker=marker(i))
            except (OSError, urllib.error.URLError, KeyError) as e:
                errors.append(f"upload {docs[i][0]} to {node.name()}: {e}")

    threads = [threading.Thread(target=work, args=(u,)) for u in range(UPLOADERS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return [d for d in made if d is not None], errors, time.monotonic() - started


def wait_consistent(nodes: list[Node], kb: str, settle_s: float) -> dict[int, dict]:
    """Each node's index-check, waited for until it is equal to the database (or
    `settle_s` ran out): its fields, `consistent`, and the seconds it took."""
    out: dict[int, dict] = {}
    started = time.monotonic()
    for n in nodes:
        while True:
            check = request(n.base, "GET", f"/api/kbs/{kb}/index-check", timeout=300)
            consistent = (check["bm25_matches"] and not check["vector_missing"]  # type: ignore[index]
                          and check["vector_hits"] == check["db_chunks"]  # type: ignore[index]
                          and check["bm25_docs"] == check["db_chunks"])  # type: ignore[index]
            if consistent or time.monotonic() - started > settle_s:
                out[n.index] = dict(check, consistent=consistent, waited_s=time.monotonic() - started)  # type: ignore[arg-type]
                break
            time.sleep(1)
    return out


def every_marker(nodes: list[Node], kb: str, made: list[dict]) -> list[str]:
    """Each document's marker searched on every node: found in exactly one chunk, of that
    document. What was wrong (empty when all is well)."""
    wrong: list[str] = []
    for n in nodes:
        for d in made:
            hits = n.finds(kb, d["marker"])
            ids = [h["document_id"] for h in hits]
            if ids != [d["id"]]:
                wrong.append(f"{n.name()}: {d['marker']} ({d['id']}) found in {ids}")
    return wrong


def database_view(cluster: PgCluster, db: str) -> dict[str, dict]:
    """Per document, from PostgreSQL: live and deleted (tombstone) chunks, live chunks
    holding a marker, the commit time (epoch s) of the live marker chunk
    (track_commit_timestamp), the document's chunk_count and the node that ran its job."""
    out: dict[str, dict] = {}
    rows = cluster.psql(db, """
        SELECT d.document_id, d.chunk_count,
               count(c.chunk_id) FILTER (WHERE NOT c.is_deleted),
               count(c.chunk_id) FILTER (WHERE c.is_deleted),
               count(c.chunk_id) FILTER (WHERE NOT c.is_deleted AND c.text LIKE '%zkmark%'),
               coalesce(max(extract(epoch FROM pg_xact_commit_timestamp(c.xmin)))
                        FILTER (WHERE NOT c.is_deleted AND c.text LIKE '%zkmark%'), 0),
               coalesce((SELECT string_agg(coalesce(j.lease_owner, '-'), ',') FROM ingest_job j
                         WHERE j.document_id = d.document_id), '')
        FROM document d LEFT JOIN chunk c ON c.document_id = d.document_id
        GROUP BY d.document_id, d.chunk_count""")
    for line in rows.splitlines():
        doc, count, live, dead, marked, commit, owners = line.split("|")
        out[doc] = {"chunk_count": int(count), "live": int(live), "dead": int(dead), "marked": int(marked),
                    "commit": float(commit), "owners": owners}
    return out


def run_fleet(cluster: PgCluster, size: int, args: argparse.Namespace,
              docs: list[tuple[str, bytes]]) -> dict:
    """One fleet of `size` nodes on a fresh database: every figure of one table row."""
    threads = args.threads or max(1, (os.cpu_count() or 2) // size)
    db = f"fleet_n{size}_{int(time.time())}"
    url = cluster.create_database(db)
    load_start = os.getloadavg()
    nodes: list[Node] = []
    row: dict = {"nodes": size, "threads": threads, "load_start": load_start}
    try:
        for i in range(size):  # one at a time: the first makes the tables
            nodes.append(Node(i, args.binary, url, threads, args.models))
            print(f"  {nodes[-1].name()} listening on {nodes[-1].base} (data {nodes[-1].data})", flush=True)
        kb = post_json(nodes[0].base, "/api/kbs", {"name": f"fleet-{size}"})["id"]  # type: ignore[index]
        # Every node opens the KB before anything is written, so what it finds later came
        # through its replica's catch-up; and no marker is there yet.
        for n in nodes:
            if n.finds(kb, marker(0)):
                raise SystemExit(f"{n.name()} found a marker before any upload")
        sampler = Sampler(nodes)
        prober = Prober(nodes, kb, args.settle_s)
        sampler.start()
        t0 = time.monotonic()
        done: dict = {}
        up: dict = {}
        upload_thread = threading.Thread(target=lambda: up.update(zip(("made", "errors", "seconds"),
                                                                       uploaders(nodes, kb, docs))))
        upload_thread.start()
        seen_indexed: set[str] = set()
        settled: list[dict] = []
        turn = 0
        while True:
            listed = list_documents(nodes[turn % size], kb)
            turn += 1
            now = time.monotonic()
            for d in listed:
                i = int(d["name"][:4])
                if i % args.probe_every:
                    continue
                if d["status"] == "processing":
                    prober.add(d["id"], marker(i))
                elif d["status"] == "indexed" and d["id"] not in seen_indexed:
                    seen_indexed.add(d["id"])
                    prober.saw_indexed(d["id"], marker(i), time.time())
            settled = [d for d in listed if d["status"] in ("indexed", "failed")]
            if not upload_thread.is_alive() and len(settled) == len(listed) >= len(up.get("made", [])):
                done["t"] = now - t0
                done["cpu"] = {n.index: cpu_seconds(n.proc.pid) - n.cpu_start for n in nodes}
                break
            if now - t0 > args.timeout_s:
                raise SystemExit(f"not every document settled in {args.timeout_s:.0f} s "
                                 f"({len(settled)} of {len(listed)}); node logs: {[str(n.log) for n in nodes]}")
            time.sleep(POLL_S)
        wall = done["t"]
        # The sampled documents found everywhere (or the deadline), then the lag settles.
        while prober.busy():
            time.sleep(0.2)
        prober.stop()
        checks = wait_consistent(nodes, kb, args.settle_s)
        sampler.halt.set()
        sampler.join(timeout=30)
        final = list_documents(nodes[0], kb)
        made = up["made"]
        wrong = every_marker(nodes, kb, made) if args.check_markers else ["(not checked)"]
        owners = cluster.psql(db, "SELECT coalesce(lease_owner, '-'), status, count(*), sum(attempts), "
                                  "count(*) FILTER (WHERE attempts > 1) FROM ingest_job GROUP BY 1, 2 ORDER BY 1, 2")
        by_id = {n.node_id: n.index for n in nodes}
        ran: dict[str, int] = {}
        retried = 0
        for line in owners.splitlines():
            owner, status, count, _attempts, more = line.split("|")
            key = f"node {by_id[owner]}" if owner in by_id else f"{owner} ({status})"
            ran[key] = ran.get(key, 0) + int(count)
            retried += int(more)
        view = database_view(cluster, db)
        db_wrong = [f"{doc}: {v}" for doc, v in view.items()
                    if v["live"] != v["chunk_count"] or v["marked"] != 1 or not v["commit"]]
        # Commit of the marker's chunk → each node's first hit; "own": the node that ran the job.
        everywhere, own, others = [], [], []
        for doc, hits in prober.found.items():
            commit = view.get(doc, {}).get("commit")
            if len(hits) < size or not commit:
                continue
            everywhere.append(max(hits.values()) - commit)
            owner = view[doc]["owners"].split(",")[-1]
            for i, at in hits.items():
                (own if nodes[i].node_id == owner else others).append(at - commit)
        after_indexed = [max(0.0, max(prober.found[d].values()) - t) for d, t in prober.indexed.items()
                         if len(prober.found.get(d, {})) == size]
        health = {n.index: request(n.base, "GET", "/health", timeout=30) for n in nodes}
        mem = {n.index: proc_status(n.proc.pid) for n in nodes}
        cpu = {n.index: cpu_seconds(n.proc.pid) - n.cpu_start for n in nodes}
        names = [d["name"] for d in final]
        chunks = sum(d["chunk_count"] for d in final)
        row.update({
            "db": db, "kb": kb, "docs": len(docs), "uploaded": len(made), "upload_errors": up["errors"],
            "upload_s": up["seconds"], "wall_s": wall, "listed": len(final),
            "duplicate_names": len(names) - len(set(names)),
            "indexed": sum(d["status"] == "indexed" for d in final),
            "failed": [(d["name"], d.get("error")) for d in final if d["status"] == "failed"],
            "chunks": chunks, "docs_per_s": len(final) / wall, "chunks_per_s": chunks / wall,
            "chunks_per_doc": {d["name"]: d["chunk_count"] for d in final},
            "ran": ran, "retried_jobs": retried,
            "lag_max": {i: max(v, default=float("nan")) for i, v in sampler.lags.items()},
            "lag_p95": {i: percentile(v, 95) for i, v in sampler.lags.items()},
            "lag_samples": {i: len(v) for i, v in sampler.lags.items()},
            "lag_series": sampler.series,
            "metrics_failures": sampler.failures,
            "probe_docs": len(prober.found), "probe_complete": len(everywhere),
            "probe_late": len(prober.late), "probe_errors": prober.errors,
            "visible_p50": percentile(everywhere, 50), "visible_p95": percentile(everywhere, 95),
            "visible_max": max(everywhere, default=float("nan")),
            "visible_own_p95": percentile(own, 95), "visible_others_p95": percentile(others, 95),
            "visible_others_max": max(others, default=float("nan")),
            "after_indexed_p50": percentile(after_indexed, 50), "after_indexed_p95": percentile(after_indexed, 95),
            "after_indexed_max": max(after_indexed, default=float("nan")),
            "db_problems": db_wrong, "tombstones": sum(v["dead"] for v in view.values()),
            "index_check": {i: {k: c[k] for k in ("db_chunks", "bm25_docs", "vector_hits", "bm25_matches",
                                                   "vector_self_checked", "vector_self_found", "consistent",
                                                   "waited_s")} for i, c in checks.items()},
            "marker_problems": wrong,
            "health": {i: h.get("status") if isinstance(h, dict) else h for i, h in health.items()},
            "health_reasons": {i: h.get("reasons") if isinstance(h, dict) else None for i, h in health.items()},
            "rss_peak_mib": {i: m.get("VmHWM", 0) / 1024 for i, m in mem.items()},
            "rss_end_mib": {i: m.get("VmRSS", 0) / 1024 for i, m in mem.items()},
            "rss_sampled_max_mib": {i: max(v, default=0) / 1024 for i, v in sampler.rss.items()},
            "cpu_s": cpu, "cpu_ingest_s": done["cpu"],
        })
    finally:
        row["exit"] = {}
        for n in nodes:
            row["exit"][n.index] = n.stop(args.keep)
            if args.keep:
                print(f"  kept {n.data}", flush=True)
        row["load_end"] = os.getloadavg()
    return row


# --- the report ---------------------------------------------------------------------------

def seconds(v: float) -> str:
    """Seconds to two decimals, — for none."""
    return "—" if v != v else f"{v:.2f}"


def fmt_nodes(values: dict, digits: int = 0) -> str:
    """Per-node figures, node 0 first: `a · b · c`."""
    return " · ".join("—" if v != v else f"{v:,.{digits}f}" for _, v in sorted(values.items()))


def report(rows: list[dict], machine: dict, corpus_name: str, command: str) -> str:
    """The Markdown: the run's setting and two tables."""
    out = [f"Commit {machine['commit']}, `{command}`", "",
           f"Machine: {machine['nproc']} cores ({machine['cpu']}), kernel {machine['kernel']}, "
           f"PostgreSQL {machine['pg']} on the same machine (initdb defaults, fsync on). "
           f"Load average (1 min) {machine['load_start'][0]:.2f} at the start, {machine['load_end'][0]:.2f} at the end. "
           f"Corpus: {corpus_name}, one .txt document each, five uploaders round-robin over the nodes.", "",
           "| nodes | embedding threads per node | documents → chunks | all indexed after (s) | docs/s | chunks/s "
           "| failed | jobs run by node (run twice) | load at start → end |",
           "|---:|---:|---|---:|---:|---:|---:|---|---|"]
    for r in rows:
        ran = ", ".join(f"{k}: {v}" for k, v in sorted(r["ran"].items()))
        out.append(f"| {r['nodes']} | {r['threads']} | {r['listed']} → {r['chunks']:,} | {r['wall_s']:.1f} "
                   f"| {r['docs_per_s']:.2f} | {r['chunks_per_s']:.1f} | {len(r['failed'])} | {ran} ({r['retried_jobs']}) "
                   f"| {r['load_start'][0]:.1f} → {r['load_end'][0]:.1f} |")
    out += ["", "| nodes | lag gauge max, by node (chunks) | lag gauge p95, by node | commit → searchable on every node, "
                "p50 / p95 / max s (documents) | on the nodes that did not ingest it, p95 / max s | index-check equal to the database | every marker found once, everywhere "
                "| peak RSS by node (MiB) | RSS at the end (MiB) | CPU s by node until all indexed (until stopped) |",
            "|---:|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        checks = r["index_check"]
        equal = "yes, all" if all(c["consistent"] for c in checks.values()) else \
            "NO: " + "; ".join(f"node {i}: {c}" for i, c in checks.items() if not c["consistent"])
        db_chunks = sorted({c["db_chunks"] for c in checks.values()})
        markers = "yes" if not r["marker_problems"] else f"NO ({len(r['marker_problems'])})"
        out.append(f"| {r['nodes']} | {fmt_nodes(r['lag_max'])} | {fmt_nodes(r['lag_p95'])} "
                   f"| {seconds(r['visible_p50'])} / {seconds(r['visible_p95'])} / {seconds(r['visible_max'])} "
                   f"({r['probe_complete']}) | {seconds(r['visible_others_p95'])} / {seconds(r['visible_others_max'])} "
                   f"| {equal} ({', '.join(f'{c:,}' for c in db_chunks)} chunks) | {markers} "
                   f"| {fmt_nodes(r['rss_peak_mib'])} | {fmt_nodes(r['rss_end_mib'])} "
                   f"| {fmt_nodes(r['cpu_ingest_s'])} ({fmt_nodes(r['cpu_s'])}) |")
    return "\n".join(out)


def problems(rows: list[dict]) -> list[str]:
    """Every figure that says something went wrong, in words."""
    out = []
    for r in rows:
        n = r["nodes"]
        if r.get("upload_errors"):
            out.append(f"N={n}: {len(r['upload_errors'])} uploads failed, e.g. {r['upload_errors'][0]}")
        if r.get("failed"):
            out.append(f"N={n}: {len(r['failed'])} documents failed, e.g. {r['failed'][0]}")
        if r.get("duplicate_names") or r.get("listed") != r.get("uploaded"):
            out.append(f"N={n}: {r.get('listed')} documents listed for {r.get('uploaded')} uploads "
                       f"({r.get('duplicate_names')} duplicate names)")
        for i, c in r.get("index_check", {}).items():
            if not c["consistent"]:
                out.append(f"N={n}: node {i}'s index-check is not equal to the database: {c}")
            if c["db_chunks"] != r["chunks"]:
                out.append(f"N={n}: node {i}: the database has {c['db_chunks']} live chunks, "
                           f"the documents say {r['chunks']}")
        if r.get("db_problems"):
            out.append(f"N={n}: the database: {len(r['db_problems'])} documents whose live chunks differ from "
                       f"chunk_count or hold the marker not exactly once, e.g. {r['db_problems'][:3]}")
        if r.get("tombstones"):
            out.append(f"N={n}: {r['tombstones']} deleted chunks (tombstones): some document was split twice")
        if r.get("marker_problems"):
            out.append(f"N={n}: markers: {r['marker_problems'][:5]}")
        if r.get("probe_errors"):
            out.append(f"N={n}: probes: {r['probe_errors'][:5]}")
        if r.get("retried_jobs"):
            out.append(f"N={n}: {r['retried_jobs']} jobs ran more than once")
        for i, reasons in r.get("health_reasons", {}).items():
            if reasons:
                out.append(f"N={n}: node {i}'s /health at the end: {r['health'][i]} {reasons}")
        for i, code in r.get("exit", {}).items():
            if code not in (0, None):
                out.append(f"N={n}: node {i} exited with {code}")
    # The same passage must make as many chunks whichever node split it.
    if len(rows) > 1:
        first = rows[0].get("chunks_per_doc", {})
        for r in rows[1:]:
            diff = [k for k, v in r.get("chunks_per_doc", {}).items() if first.get(k) not in (None, v)]
            if diff:
                out.append(f"N={r['nodes']}: {len(diff)} documents have another chunk count than with "
                           f"{rows[0]['nodes']} node(s), e.g. {diff[:3]}")
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--binary", type=Path, default=TARGET / "release/zhiku")
    parser.add_argument("--models", type=Path, default=MODELS)
    parser.add_argument("--nodes", default="1,2,3", help="fleet sizes, one run each")
    parser.add_argument("--docs", type=int, default=300, help="documents (passages) per run")
    parser.add_argument("--threads", type=int, default=0,
                        help="embedding threads per node; 0: the machine's cores shared out, at least 1")
    parser.add_argument("--probe-every", type=int, default=10, help="time every n-th document's visibility")
    parser.add_argument("--settle-s", type=float, default=120, help="how long a node may take to catch up")
    parser.add_argument("--timeout-s", type=float, default=1800, help="how long a run's ingest may take")
    parser.add_argument("--no-marker-check", dest="check_markers", action="store_false",
                        help="skip searching every marker on every node at the end")
    parser.add_argument("--keep", action="store_true", help="keep the nodes' data dirs (and logs)")
    parser.add_argument("--json", type=Path, help="also write every figure here")
    args = parser.parse_args()
    if not args.binary.is_file():
        sys.exit(f"no zhiku binary at {args.binary} (build it, or give --binary / CARGO_TARGET_DIR)")
    sizes = [int(s) for s in args.nodes.split(",") if s.strip()]
    corpus_name, docs = corpus(args.docs)
    # Ctrl-C and SIGTERM both end in the finally blocks that stop the nodes and the cluster.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    machine = {
        "nproc": os.cpu_count(), "kernel": platform.release(),
        "cpu": next((l.split(":", 1)[1].strip() for l in Path("/proc/cpuinfo").read_text().splitlines()
                     if l.startswith("model name")), platform.machine()),
        "commit": subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True,
                                 text=True).stdout.strip() or "?",
        "load_start": os.getloadavg(),
    }
    command = "scripts/bench_fleet.py " + " ".join(sys.argv[1:])
    print(f"corpus: {corpus_name}; fleets of {sizes} nodes", flush=True)
    rows: list[dict] = []
    cluster = PgCluster()
    machine["pg"] = cluster.version
    print(f"PostgreSQL {cluster.version} on 127.0.0.1:{cluster.port}", flush=True)
    try:
        for size in sizes:
            print(f"{size} node(s) …", flush=True)
            row = run_fleet(cluster, size, args, docs)
            rows.append(row)
            print(f"  {row['listed']} documents, {row['chunks']} chunks in {row['wall_s']:.1f} s; "
                  f"lag max {row['lag_max']}; searchable everywhere p95 {row['visible_p95']:.2f} s", flush=True)
    finally:
        cluster.close()
    machine["load_end"] = os.getloadavg()
    text = report(rows, machine, corpus_name, command)
    print()
    print(text)
    wrong = problems(rows)
    if wrong:
        print("\nProblems:")
        for w in wrong:
            print(f"- {w}")
    if args.json:
        args.json.write_text(json.dumps({"machine": machine, "corpus": corpus_name, "command": command,
                                         "rows": rows}, ensure_ascii=False, indent=1, default=str))
    return 1 if wrong else 0


if __name__ == "__main__":
    sys.exit(main())
