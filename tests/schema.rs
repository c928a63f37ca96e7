//! The HTTP API against its own OpenAPI description: `GET /openapi.json` is what
//! `zhiku openapi` prints, and schemathesis, fuzzing every operation from that description
//! (valid and invalid input, real ids), finds no 5xx and no answer the description does not
//! allow.

use std::process::Command;
use std::time::Duration;

use serde_json::{Value, json};

use crate::common::{Server, TOKEN, cli, repo_root, venv_python};

#[test]
fn the_served_description_is_the_printed_one() {
    let data = tempfile::tempdir().unwrap();
    let server = Server::start(data.path());
    // No token: the description holds no secrets.
    let (status, served) = server.request_as("GET", "/openapi.json", None, None);
    assert_eq!(status, 200, "{served}");
    let (ok, printed) = cli(data.path(), &["openapi"]);
    assert!(ok, "{printed}");
    let printed: Value = serde_json::from_str(&printed).unwrap();
    assert_eq!(served, printed);
    for path in [
        "/api/kbs/{kb}/documents",
        "/api/chat/{bot}",
        "/v1/chat/completions",
    ] {
        assert!(
            served["paths"].get(path).is_some(),
            "{path} is not described"
        );
    }
}

/// What the fuzzing works on: real ids, so operations get past their 404s.
struct Seeded {
    kb: String,
    doc: String,
    chunk: i64,
    job: i64,
    bot: String,
    key: String,
    conversation: String,
    /// Given to the deleting operations, so the ids above live through the run.
    spare_kb: String,
    spare_doc: String,
    spare_bot: String,
    /// Edited by the fuzzer, so the bot it chats with keeps its short answers.
    draft_bot: String,
    spare_key_id: String,
    spare_conversation: String,
}

fn seed(server: &Server) -> Seeded {
    let kb = server.create_kb("schema-kb");
    let mut docs = Vec::new();
    for (name, text) in [
        (
            "policy.md",
            "出差住宿标准：一线城市每晚不超过六百元。会议室每次最长可以使用四小时。",
        ),
        ("spare.md", "报销须在出差结束后三十天内提交，附上发票原件。"),
    ] {
        let (status, body) = server.post(
            &format!("/api/kbs/{kb}/documents"),
            json!({"name": name, "text": text}),
        );
        assert_eq!(status, 202, "{body}");
        docs.push(body["documents"][0].clone());
    }
    server.wait_settled(&kb, Duration::from_secs(120));
    let doc = docs[0]["id"].as_str().unwrap().to_string();
    let job = docs[0]["job_id"].as_i64().unwrap();
    let (status, chunks) = server.get(&format!("/api/kbs/{kb}/documents/{doc}/chunks"));
    assert_eq!(status, 200, "{chunks}");
    let chunk = chunks["chunks"][0]["id"].as_i64().unwrap();
    let spare_kb = server.create_kb("schema-spare-kb");
    // Short answers: the fuzzer asks the model many times.
    let bot = server.create_bot(json!({
        "name": "schema-bot", "knowledge_bases": [kb], "model": {"max_tokens": 8},
    }));
    let key = server.publish_with_key(&bot);
    let (status, spare_key) =
        server.post(&format!("/api/bots/{bot}/keys"), json!({"name": "spare"}));
    assert_eq!(status, 201, "{spare_key}");
    let spare_bot = server.create_bot(json!({"name": "schema-spare-bot"}));
    let draft_bot = server.create_bot(json!({"name": "schema-draft-bot"}));
    let conversation = start_conversation(server, &format!("/api/chat/{bot}"), &key);
    let spare_conversation = start_conversation(server, &format!("/api/bots/{bot}/chat"), TOKEN);
    Seeded {
        kb,
        doc,
        chunk,
        job,
        bot,
        key,
        conversation,
        spare_kb,
        spare_doc: docs[1]["id"].as_str().unwrap().to_string(),
        spare_bot,
        draft_bot,
        spare_key_id: spare_key["id"].as_str().unwrap().to_string(),
        spare_conversation,
    }
}

fn start_conversation(server: &Server, path: &str, token: &str) -> String {
    let (status, events) = server.chat(path, token, json!({"message": "住宿标准是多少？"}));
    assert_eq!(status, 200, "{events:?}");
    events[0].1["conversation_id"].as_str().unwrap().to_string()
}

/// schemathesis.toml for the run: auth per security scheme, real ids, and fewer cases for
/// the operations that run the model.
fn config(s: &Seeded) -> String {
    let q = |v: &str| serde_json::to_string(v).unwrap();
    let mut toml = format!(
        r#"seed = 20251123
workers = 1
request-timeout = 120.0
suppress-health-check = ["too_slow", "filter_too_much", "data_too_large"]

# Stateful chains follow links to the ids they create, which the fixed ids below override.
phases.stateful.enabled = false

[generation]
max-examples = 10

# Off: positive_data_acceptance and negative_data_rejection. Some rules JSON Schema cannot
# state (a bot's knowledge bases must exist, messages must end with a user turn, a form
# field without a file name is still a file), so they report rejections the server is
# right to make.
[checks]
not_a_server_error.enabled = true
status_code_conformance.enabled = true
content_type_conformance.enabled = true
response_schema_conformance.enabled = true
response_headers_conformance.enabled = true
positive_data_acceptance.enabled = false
negative_data_rejection.enabled = false

[auth.openapi.admin_token]
bearer = {admin}

[auth.openapi.bot_key]
bearer = {key}

# The admin token opens /metrics too.
[auth.openapi.metrics_token]
bearer = {admin}

[parameters]
"path.kb" = {kb}
"path.doc" = {doc}
"path.chunk" = {chunk}
"path.bot" = {bot}
"path.key_id" = {spare_key_id}
"#,
        admin = q(TOKEN),
        key = q(&s.key),
        kb = q(&s.kb),
        doc = q(&s.doc),
        chunk = s.chunk,
        bot = q(&s.bot),
        spare_key_id = q(&s.spare_key_id),
    );
    let ids: &[(&str, &[(&str, Value)])] = &[
        ("show_job", &[("path.id", json!(s.job))]),
        ("show_conversation", &[("path.id", json!(s.conversation))]),
        (
            "show_key_conversation",
            &[("path.id", json!(s.conversation))],
        ),
        ("show_model", &[("path.id", json!(s.bot))]),
        (
            "delete_conversation",
            &[("path.id", json!(s.spare_conversation))],
        ),
        ("delete_kb", &[("path.kb", json!(s.spare_kb))]),
        ("delete_document", &[("path.doc", json!(s.spare_doc))]),
        ("delete_bot", &[("path.bot", json!(s.spare_bot))]),
        ("update_bot", &[("path.bot", json!(s.draft_bot))]),
        (
            "create_embeddings",
            &[("body.model", json!("multilingual-e5-small"))],
        ),
        // The persona rewrite asks the model for up to 700 tokens, minutes on a busy CPU:
        // its input handling is fuzzed here on a bot that does not exist, and its answer
        // is tested in bots.rs.
        ("optimize_persona", &[("path.bot", json!("no-such-bot"))]),
    ];
    for (operation, parameters) in ids {
        toml.push_str(&format!(
            "\n[[operations]]\ninclude-operation-id = {}\n",
            q(operation)
        ));
        for (name, value) in *parameters {
            toml.push_str(&format!("parameters.{} = {value}\n", q(name)));
        }
    }
    // Each answer takes the model a moment: a few cases, no boundary sweep.
    for operation in ["debug_chat", "chat", "create_chat_completion"] {
        toml.push_str(&format!(
            "\n[[operations]]\ninclude-operation-id = {}\ngeneration.max-examples = 2\nphases.coverage.enabled = false\n",
            q(operation)
        ));
        if operation == "create_chat_completion" {
            // The request's limits override the bot's: keep them short here too.
            toml.push_str(&format!(
                "parameters = {{ \"body.model\" = {}, \"body.max_tokens\" = 8, \"body.max_completion_tokens\" = 8 }}\n",
                q(&s.bot)
            ));
        }
    }
    toml
}

#[test]
fn schemathesis_finds_no_server_errors() {
    let data = tempfile::tempdir().unwrap();
    // A small context bounds every answer the fuzzer asks for.
    let server = Server::start_with(data.path(), &[("ZHIKU_LLM__CONTEXT_TOKENS", "512")]);
    let seeded = seed(&server);
    let work = tempfile::tempdir().unwrap();
    let config_path = work.path().join("schemathesis.toml");
    std::fs::write(&config_path, config(&seeded)).unwrap();
    let _ = venv_python();
    let output = Command::new(repo_root().join(".venv/bin/schemathesis"))
        .arg("--config-file")
        .arg(&config_path)
        .args(["run", "--no-color", "--output-truncate", "false"])
        .arg(server.url("/openapi.json"))
        .current_dir(work.path())
        .output()
        .unwrap();
    let report = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    println!("{report}");
    assert!(output.status.success(), "schemathesis failed:\n{report}");
}
