//! The OpenAI-compatible API with real clients: the official `openai` Python package, and
//! the `llm-comply` conformance suite (the checks that apply to a knowledge bot).

use std::process::Command;

use serde_json::{Value, json};

use crate::common::{ANSWER_LLM, Server, venv_python};

#[test]
fn the_official_openai_client_works() {
    let data = tempfile::tempdir().unwrap();
    let server = Server::start(data.path());
    let kb = server.create_kb("policy");
    let (status, body) = server.post(
        &format!("/api/kbs/{kb}/documents"),
        json!({"name": "policy.md", "text": "出差住宿标准：一线城市每晚不超过六百元。会议室每次最长可以使用四小时。"}),
    );
    assert_eq!(status, 202, "{body}");
    server.wait_settled(&kb, std::time::Duration::from_secs(120));
    let bot = server.create_bot(json!({"name": "policy-bot", "knowledge_bases": [kb]}));
    let key = server.publish_with_key(&bot);
    run_client(
        "openai_client.py",
        &server,
        &key,
        &bot,
        &[("ZHIKU_EMBEDDING_MODEL", "multilingual-e5-small")],
    );
}

/// Run a client script of tests/clients against `bot` on `server`; it fails the test with
/// its output when it exits non-zero.
fn run_client(script: &str, server: &Server, key: &str, bot: &str, env: &[(&str, &str)]) {
    let output = Command::new(venv_python())
        .arg(
            crate::common::repo_root()
                .join("tests/clients")
                .join(script),
        )
        .env("ZHIKU_BASE_URL", server.url("/v1"))
        .env("ZHIKU_KEY", key)
        .env("ZHIKU_BOT", bot)
        .envs(env.iter().copied())
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{script} failed:\n{}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

/// A published bot's tools over `/v1` with the official client: a named tool called, its
/// result answered, a required call streamed, a bad `tool_choice` refused.
#[test]
fn the_official_openai_client_calls_tools() {
    let data = tempfile::tempdir().unwrap();
    let server = Server::start_with(data.path(), &[("ZHIKU_LLM__MODEL", ANSWER_LLM)]);
    let bot = server.create_bot(json!({"name": "tools-bot", "model": {"temperature": 0}}));
    let key = server.publish_with_key(&bot);
    run_client("openai_tools.py", &server, &key, &bot, &[]);
}

/// The llm-comply checks that apply to a text-only knowledge bot that can call tools. Not
/// run: image input (the models read text only; an image part gets a clear 400) and
/// reasoning summaries (not a reasoning model).
const COMPLY_CHECKS: &str = "chat-basic-response,chat-system-prompt,chat-multi-turn,chat-streaming-response,chat-streaming-usage,chat-error-handling,chat-tool-calling";

#[test]
fn llm_comply_openai_chat_checks_pass() {
    let data = tempfile::tempdir().unwrap();
    let server = Server::start_with(
        data.path(),
        &[
            ("ZHIKU_LLM__MODEL", ANSWER_LLM),
            ("ZHIKU_LLM__CONTEXT_TOKENS", "4096"),
        ],
    );
    // A plain chat bot: no knowledge base, so the suite's questions go to the model as is.
    let bot =
        server.create_bot(json!({"name": "comply", "model": {"temperature": 0, "max_tokens": 64}}));
    let key = server.publish_with_key(&bot);
    let comply = crate::common::repo_root().join(".venv/bin/llm-comply");
    let _ = venv_python();
    let output = Command::new(&comply)
        .args(["--format", "openai-chat", "--json", "-f", COMPLY_CHECKS])
        .args(["-u", &server.url("/v1"), "-k", &key, "-m", &bot])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let report: Value = serde_json::from_str(&stdout).unwrap_or_else(|e| {
        panic!(
            "llm-comply printed no JSON ({e}):\n{stdout}\n{}",
            String::from_utf8_lossy(&output.stderr)
        )
    });
    let results = report["results"]
        .as_array()
        .or_else(|| report.as_array())
        .unwrap_or_else(|| panic!("{report}"));
    assert_eq!(results.len(), COMPLY_CHECKS.split(',').count(), "{report}");
    let failed: Vec<&Value> = results
        .iter()
        .filter(|r| r["status"] != "passed" && r["passed"] != true)
        .collect();
    assert!(failed.is_empty(), "llm-comply checks failed: {failed:#?}");
}
