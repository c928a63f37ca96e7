//! The harness: start `zhiku serve` on port 0 over a temp data dir, talk JSON to it, wait
//! for documents to be indexed (polling with a deadline, never sleeping blindly).

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

pub const TOKEN: &str = "test-admin-token";

/// The chat model for plumbing tests: tiny and fast; its answers mean nothing.
pub const PLUMBING_LLM: &str = "smollm2-135m-instruct-q4_1";
/// The chat model for tests whose answers must be right (Chinese, cites its passages).
pub const ANSWER_LLM: &str = "qwen2.5-coder-0.5b-instruct-q4_k_m";
/// llama.cpp threads for every server and CLI the tests start. The parallel pass runs two
/// tests on two cores, and llama.cpp's threads spin at each barrier: with two threads
/// beside one busy process the 0.5B model generated 2.5–3× slower than with one thread
/// (and one thread is within 20% of two on an idle machine), which let a 700-token persona
/// suggestion outlast the client's timeout.
pub const LLM_THREADS: &str = "1";

/// The repository root.
pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The test fixtures, inside the repository so that a fresh clone needs nothing beside it:
/// documents under `docs/`, evaluation sets under `eval/<set>/` (sources, licences and
/// checksums in tests/fixtures/README.md).
pub fn fixtures_dir() -> PathBuf {
    repo_root().join("tests/fixtures")
}

pub fn models_dir() -> PathBuf {
    std::env::var_os("ZHIKU_MODELS_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo_root().join("models"))
}

/// A running server.
pub struct Server {
    pub child: Child,
    pub base: String,
    logs: std::sync::Arc<std::sync::Mutex<String>>,
    http: reqwest::blocking::Client,
}

impl Server {
    /// Start on `data_dir` (kept by the caller so a restart can reuse it).
    pub fn start(data_dir: &Path) -> Server {
        Self::start_with(data_dir, &[])
    }

    pub fn start_with(data_dir: &Path, env: &[(&str, &str)]) -> Server {
        Self::spawn(serve_command(data_dir, env))
    }

    /// Start with every file the server writes limited to `limit_kib` (a full disk, without
    /// root): the shell ignores SIGXFSZ, so an oversized write fails with EFBIG instead.
    pub fn start_with_file_limit(data_dir: &Path, limit_kib: u64) -> Server {
        let serve = serve_command(data_dir, &[]);
        let mut cmd = Command::new("bash");
        cmd.arg("-c")
            .arg(format!(
                "trap '' XFSZ; ulimit -f {limit_kib}; exec \"$0\" serve"
            ))
            .arg(serve.get_program());
        for (k, v) in serve.get_envs() {
            if let Some(v) = v {
                cmd.env(k, v);
            }
        }
        Self::spawn(cmd)
    }

    fn spawn(mut cmd: Command) -> Server {
        cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
        let mut child = cmd.spawn().expect("start zhiku");
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut sent = false;
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if !sent && let Some(addr) = line.strip_prefix("zhiku is listening on ") {
                    let _ = tx.send(addr.trim().to_string());
                    sent = true;
                }
            }
        });
        // The log (stderr) is kept for tests that read it, and still shown.
        let logs = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
        let stderr = child.stderr.take().unwrap();
        let kept = logs.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                eprintln!("{line}");
                let mut all = kept.lock().unwrap();
                all.push_str(&line);
                all.push('\n');
            }
        });
        let base = rx
            .recv_timeout(Duration::from_secs(120))
            .expect("server did not report its address within 120 s");
        Server {
            child,
            base,
            logs,
            http: reqwest::blocking::Client::builder()
                .timeout(Duration::from_secs(120))
                .build()
                .unwrap(),
        }
    }

    /// Everything the server logged so far.
    pub fn logs(&self) -> String {
        self.logs.lock().unwrap().clone()
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    /// One authorised JSON request: (status, body or null).
    fn request(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> (u16, Value) {
        let mut req = self.http.request(method, self.url(path)).bearer_auth(TOKEN);
        if let Some(body) = body {
            req = req.json(&body);
        }
        let r = req.send().unwrap();
        let status = r.status().as_u16();
        (status, r.json().unwrap_or(Value::Null))
    }

    pub fn get(&self, path: &str) -> (u16, Value) {
        self.request(reqwest::Method::GET, path, None)
    }

    pub fn post(&self, path: &str, body: Value) -> (u16, Value) {
        self.request(reqwest::Method::POST, path, Some(body))
    }

    pub fn patch(&self, path: &str, body: Value) -> (u16, Value) {
        self.request(reqwest::Method::PATCH, path, Some(body))
    }

    pub fn delete(&self, path: &str) -> u16 {
        self.request(reqwest::Method::DELETE, path, None).0
    }

    /// Upload files (path, name) to a KB in one multipart request.
    pub fn upload(&self, kb: &str, files: &[(PathBuf, String)]) -> (u16, Value) {
        let mut form = reqwest::blocking::multipart::Form::new();
        for (path, name) in files {
            let bytes = std::fs::read(path).unwrap();
            form = form.part(
                "file",
                reqwest::blocking::multipart::Part::bytes(bytes).file_name(name.clone()),
            );
        }
        let r = self
            .http
            .post(self.url(&format!("/api/kbs/{kb}/documents")))
            .bearer_auth(TOKEN)
            .multipart(form)
            .send()
            .unwrap();
        let status = r.status().as_u16();
        (status, r.json().unwrap_or(Value::Null))
    }

    /// A request with another bearer token (a bot key, a wrong one, or none).
    pub fn request_as(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> (u16, Value) {
        let mut req = self.http.request(method.parse().unwrap(), self.url(path));
        if let Some(token) = token {
            req = req.bearer_auth(token);
        }
        if let Some(body) = body {
            req = req.json(&body);
        }
        let r = req.send().unwrap();
        let status = r.status().as_u16();
        (status, r.json().unwrap_or(Value::Null))
    }

    /// POST a chat and read its server-sent events to the end: (status, [(event, data)]).
    /// A non-200 answer comes back as one ("http_error", body) event.
    pub fn chat(&self, path: &str, token: &str, body: Value) -> (u16, Vec<(String, Value)>) {
        let r = self
            .http
            .post(self.url(path))
            .bearer_auth(token)
            .json(&body)
            .send()
            .unwrap();
        let status = r.status().as_u16();
        if status != 200 {
            return (
                status,
                vec![("http_error".into(), r.json().unwrap_or(Value::Null))],
            );
        }
        (status, parse_sse(&r.text().unwrap()))
    }

    /// Create a KB, upload the llm-intro-zh articles and wait until they are indexed.
    pub fn llm_intro_kb(&self, name: &str) -> String {
        let kb = self.create_kb(name);
        let (status, body) = self.upload(&kb, &llm_intro_files());
        assert_eq!(status, 202, "{body}");
        let docs = self.wait_settled(&kb, Duration::from_secs(300));
        assert!(docs.iter().all(|d| d["status"] == "indexed"), "{docs:?}");
        kb
    }

    /// Create a bot from settings JSON; returns its id.
    pub fn create_bot(&self, settings: Value) -> String {
        let (status, bot) = self.post("/api/bots", settings);
        assert_eq!(status, 201, "{bot}");
        bot["id"].as_str().unwrap().to_string()
    }

    /// Publish a bot and make an API key for it; returns the key.
    pub fn publish_with_key(&self, bot: &str) -> String {
        let (status, body) = self.post(&format!("/api/bots/{bot}/publish"), json!({}));
        assert_eq!(status, 200, "{body}");
        let (status, key) = self.post(&format!("/api/bots/{bot}/keys"), json!({"name": "test"}));
        assert_eq!(status, 201, "{key}");
        key["key"].as_str().unwrap().to_string()
    }

    pub fn create_kb(&self, name: &str) -> String {
        let (status, kb) = self.post("/api/kbs", json!({"name": name}));
        assert_eq!(status, 201, "{kb}");
        kb["id"].as_str().unwrap().to_string()
    }

    /// Wait until no document of the KB is queued or processing; returns the documents.
    pub fn wait_settled(&self, kb: &str, deadline: Duration) -> Vec<Value> {
        let started = Instant::now();
        loop {
            let (status, docs) = self.get(&format!("/api/kbs/{kb}/documents?limit=1000"));
            assert_eq!(status, 200, "{docs}");
            let docs = docs.as_array().unwrap().clone();
            if docs
                .iter()
                .all(|d| d["status"] == "indexed" || d["status"] == "failed")
            {
                return docs;
            }
            if started.elapsed() >= deadline {
                // One short line first: CI shows a failure's last lines, not its middle.
                let (_, jobs) = self.get("/api/jobs?limit=20");
                let unsettled: Vec<String> = jobs
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter(|j| j["status"] == "enqueued" || j["status"] == "processing")
                    .map(|j| {
                        format!(
                            "job {} {} {} a{}",
                            j["job_id"], j["status"], j["stage"], j["attempts"]
                        )
                    })
                    .collect();
                let logs = self.logs();
                let troubles: Vec<&str> = logs
                    .lines()
                    .filter(|l| l.contains("WARN") || l.contains("ERROR") || l.contains("panicked"))
                    .collect();
                eprintln!(
                    "NOT SETTLED in {deadline:?}: {unsettled:?}; the server's last warnings: {:#?}",
                    &troubles[troubles.len().saturating_sub(5)..]
                );
                panic!("documents not settled in {deadline:?}: {docs:?}");
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill();
    }
}

/// The `zhiku` binary on `data_dir` with the test models, token and threads, and the
/// database the run is on ([`database_of`]) unless `env` names one. Arguments and the
/// rest of `env` are the caller's.
pub fn zhiku_command(data_dir: &Path, env: &[(&str, &str)]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_zhiku"));
    cmd.env("ZHIKU_DATA_DIR", data_dir)
        .env("ZHIKU_MODELS_DIR", models_dir())
        .env("ZHIKU_ADMIN_TOKEN", TOKEN)
        .env("ZHIKU_LLM__THREADS", LLM_THREADS);
    if !env.iter().any(|(k, _)| *k == "ZHIKU_DATABASE__URL")
        && let Some(url) = database_of(data_dir)
    {
        cmd.env("ZHIKU_DATABASE__URL", url);
    }
    cmd
}

/// Whether this run's servers keep their data in PostgreSQL: `TEST_DATABASE=postgres`
/// (`./scripts/test` runs the knowledge, chat, auth, crash and re-embed suites so a second
/// time). Not a `ZHIKU_*` name: the servers inherit the environment and refuse unknown
/// configuration keys.
pub fn on_postgres() -> bool {
    match std::env::var("TEST_DATABASE").as_deref() {
        Err(_) | Ok("") | Ok("sqlite") => false,
        Ok("postgres") => true,
        Ok(other) => panic!("TEST_DATABASE={other}: expected sqlite or postgres"),
    }
}

/// On a PostgreSQL run, the database that stands for `data_dir`'s SQLite file: a new one
/// in this test binary's cluster the first time, the same one for every later server and
/// command on that dir (a restart finds its data). None on SQLite.
pub fn database_of(data_dir: &Path) -> Option<String> {
    if !on_postgres() {
        return None;
    }
    let mut databases = DATABASES.lock().unwrap();
    let url = databases
        .entry(data_dir.to_path_buf())
        .or_insert_with(postgres_database);
    Some(url.clone())
}

static DATABASES: std::sync::LazyLock<
    std::sync::Mutex<std::collections::HashMap<PathBuf, String>>,
> = std::sync::LazyLock::new(Default::default);

/// Copy a stopped deployment: its data dir (`cp -a`) and, on a PostgreSQL run, its
/// database (a new database made from it as a template) for the copy's dir.
pub fn copy_deployment(from: &Path, to: &Path) {
    let status = Command::new("cp")
        .arg("-a")
        .arg(format!("{}/.", from.display()))
        .arg(to)
        .status()
        .unwrap();
    assert!(status.success());
    if let Some(source) = database_of(from) {
        let copy = tokio::runtime::Runtime::new()
            .unwrap()
            .block_on(ingest::testing::cluster().copy_database(&source))
            .unwrap_or_else(|e| panic!("{e}"));
        DATABASES.lock().unwrap().insert(to.to_path_buf(), copy);
    }
}

/// Rows of one query on a stopped deployment's database (SQLite or PostgreSQL: write SQL
/// both read the same, e.g. `NOT is_deleted`).
pub fn query_rows<T>(data_dir: &Path, sql: &str) -> Vec<T>
where
    T: Send + Unpin,
    T: for<'r> sqlx::FromRow<'r, sqlx::sqlite::SqliteRow>,
    T: for<'r> sqlx::FromRow<'r, sqlx::postgres::PgRow>,
{
    use sqlx::Connection;
    if let Some(url) = database_of(data_dir) {
        let rt = tokio::runtime::Runtime::new().unwrap();
        return rt.block_on(async {
            let mut db = sqlx::PgConnection::connect(&url).await.unwrap();
            let rows = sqlx::query_as(sql).fetch_all(&mut db).await.unwrap();
            db.close().await.unwrap();
            rows
        });
    }
    let (rt, mut db) = open_db(data_dir);
    let rows = rt.block_on(sqlx::query_as(sql).fetch_all(&mut db)).unwrap();
    // Closed before returning: a dropped connection closes on sqlx's worker thread later,
    // and SQLite's removal of zhiku.db-shm then raced a `cp -a` of the data dir.
    rt.block_on(db.close()).unwrap();
    rows
}

/// `zhiku serve` on `data_dir` with the test models and settings, plus `env`.
pub fn serve_command(data_dir: &Path, env: &[(&str, &str)]) -> Command {
    let mut cmd = zhiku_command(data_dir, env);
    cmd.arg("serve")
        .env("ZHIKU_BIND", "127.0.0.1:0")
        .env("ZHIKU_EMBEDDING__THREADS", "2")
        .env("ZHIKU_LLM__MODEL", PLUMBING_LLM)
        .env("ZHIKU_LLM__CONTEXT_TOKENS", "2048")
        // The plumbing model's verdict on whether passages answer a question means
        // nothing; the tests of that check turn it on themselves.
        .env("ZHIKU_LLM__MIN_ANSWERABLE", "0");
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd
}

/// A connection to the data dir's SQLite (with a runtime to drive it), for checks that
/// look under the API.
pub fn open_db(data: &Path) -> (tokio::runtime::Runtime, sqlx::SqliteConnection) {
    use sqlx::Connection;
    use std::str::FromStr;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let url = format!("sqlite://{}", data.join("zhiku.db").display());
    let options = sqlx::sqlite::SqliteConnectOptions::from_str(&url).unwrap();
    let db = rt
        .block_on(sqlx::SqliteConnection::connect_with(&options))
        .unwrap();
    (rt, db)
}

/// Run a `zhiku` CLI command on `data_dir`: (success, stdout + stderr).
pub fn cli(data_dir: &Path, args: &[&str]) -> (bool, String) {
    cli_with(data_dir, &[], args)
}

/// [`cli`] with more environment (`ZHIKU_DATABASE__URL`, …).
pub fn cli_with(data_dir: &Path, env: &[(&str, &str)], args: &[&str]) -> (bool, String) {
    let mut cmd = zhiku_command(data_dir, env);
    cmd.args(args);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

/// Server-sent events as (event name, JSON data) pairs.
pub fn parse_sse(text: &str) -> Vec<(String, Value)> {
    let mut events = Vec::new();
    for block in text.split("\n\n") {
        let mut name = String::from("message");
        let mut data = String::new();
        for line in block.lines() {
            if let Some(v) = line.strip_prefix("event:") {
                name = v.trim().to_string();
            } else if let Some(v) = line.strip_prefix("data:") {
                data.push_str(v.strip_prefix(' ').unwrap_or(v));
            }
        }
        if !data.is_empty() {
            let value = serde_json::from_str(&data).unwrap_or(Value::String(data));
            events.push((name, value));
        }
    }
    events
}

/// The Python of the repo's .venv (made by scripts/setup), for the client suites.
pub fn venv_python() -> PathBuf {
    let python = repo_root().join(".venv/bin/python");
    assert!(
        python.is_file(),
        "{} is missing: run ./scripts/test (it installs the openai client and llm-comply)",
        python.display()
    );
    python
}

/// The five llm-intro-zh articles.
pub fn llm_intro_files() -> Vec<(PathBuf, String)> {
    let dir = fixtures_dir().join("docs/llm-intro-zh");
    let mut files: Vec<(PathBuf, String)> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "txt"))
        .map(|p| {
            let name = p.file_name().unwrap().to_string_lossy().into_owned();
            (p, name)
        })
        .collect();
    files.sort();
    files
}

/// A shared folder as a team has one: the llm-intro-zh articles and five documents of
/// other kinds (Markdown, HTML, GBK text, CSV, Word).
pub fn mixed_folder() -> Vec<(PathBuf, String)> {
    let docs = fixtures_dir().join("docs");
    let mut files = llm_intro_files();
    for f in [
        "zh-guide.md",
        "zh-article.html",
        "zh-gbk.txt",
        "zh-faq.csv",
        "zh-travel-policy.docx",
    ] {
        files.push((docs.join(f), f.to_string()));
    }
    files
}

/// A new, empty database in this test binary's PostgreSQL cluster (started on first use).
pub fn postgres_database() -> String {
    tokio::runtime::Runtime::new()
        .unwrap()
        .block_on(ingest::testing::postgres_url())
}
