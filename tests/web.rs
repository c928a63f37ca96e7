//! The browser UI in real Chromium (playwright-core driving Debian's chromium): the whole
//! Coze-style flow from sign-in to a cited answer on the published chat page, on a desktop
//! and a phone, failing on any console error. Screenshots go to target/ui-screenshots.

use std::process::Command;

use crate::common::{ANSWER_LLM, Server, TOKEN, fixtures_dir, repo_root};

#[test]
fn the_ui_takes_a_person_from_upload_to_a_cited_answer() {
    let e2e = repo_root().join("tests/e2e");
    assert!(
        e2e.join("node_modules/playwright-core").is_dir(),
        "tests/e2e/node_modules is missing: run ./scripts/test (it runs npm ci there)"
    );
    let data = tempfile::tempdir().unwrap();
    let server = Server::start_with(
        data.path(),
        &[
            ("ZHIKU_LLM__MODEL", ANSWER_LLM),
            ("ZHIKU_LLM__CONTEXT_TOKENS", "4096"),
        ],
    );
    let screenshots = repo_root().join("target/ui-screenshots");
    std::fs::create_dir_all(&screenshots).unwrap();
    let output = Command::new("node")
        .arg(e2e.join("ui.test.mjs"))
        .env("ZHIKU_URL", &server.base)
        .env("ZHIKU_ADMIN_TOKEN", TOKEN)
        .env("ZHIKU_FIXTURES_DIR", fixtures_dir())
        .env("ZHIKU_SCREENSHOTS", &screenshots)
        .output()
        .expect("run node (Node.js 20 comes with the machine)");
    assert!(
        output.status.success(),
        "UI test failed:\n{}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}
