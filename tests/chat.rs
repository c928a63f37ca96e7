//! Bots answering: a cited answer from a knowledge base with the real small Chinese model,
//! follow-ups that reuse the KV cache, publishing, no-recall, cancellation, concurrency,
//! a full queue, and keys that open only their own bot.

use std::io::Read;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::common::{ANSWER_LLM, Server, TOKEN};

fn done(events: &[(String, Value)]) -> &Value {
    events
        .iter()
        .find(|(name, _)| name == "done")
        .map(|(_, data)| data)
        .unwrap_or_else(|| panic!("no done event in {events:?}"))
}

fn streamed_text(events: &[(String, Value)]) -> String {
    events
        .iter()
        .filter(|(name, _)| name == "token")
        .map(|(_, data)| data["text"].as_str().unwrap().to_string())
        .collect()
}

/// A small KB from pasted text, indexed.
fn pasted_kb(server: &Server, name: &str) -> String {
    let kb = server.create_kb(name);
    let (status, body) = server.post(
        &format!("/api/kbs/{kb}/documents"),
        json!({"name": "policy.md", "text": "# 差旅制度\n\n出差住宿标准：一线城市每晚不超过六百元。\n\n会议室每次最长可以使用四小时。"}),
    );
    assert_eq!(status, 202, "{body}");
    server.wait_settled(&kb, Duration::from_secs(120));
    kb
}

#[test]
fn a_bot_answers_from_its_knowledge_with_citations_and_follow_ups_reuse_the_cache() {
    let data = tempfile::tempdir().unwrap();
    let server = Server::start_with(
        data.path(),
        &[
            ("ZHIKU_LLM__MODEL", ANSWER_LLM),
            ("ZHIKU_LLM__CONTEXT_TOKENS", "4096"),
        ],
    );
    let kb = server.llm_intro_kb("llm-intro");
    let bot = server.create_bot(json!({
        "name": "大模型助手",
        "persona": "你是大模型知识助手，回答简洁准确。",
        "knowledge_bases": [kb],
        "model": {"temperature": 0, "max_tokens": 96},
    }));

    let (status, events) = server.chat(
        &format!("/api/bots/{bot}/chat"),
        TOKEN,
        json!({"message": "LangChain 这个开源框架最早是谁推出的？"}),
    );
    assert_eq!(status, 200);
    assert_eq!(events[0].0, "start");
    let conversation = events[0].1["conversation_id"].as_str().unwrap().to_string();
    let tokens = events.iter().filter(|(n, _)| n == "token").count();
    assert!(tokens >= 2, "the answer was not streamed: {events:?}");
    let outcome = done(&events);
    assert_eq!(outcome["answer"].as_str().unwrap(), streamed_text(&events));
    let cited: Vec<&str> = outcome["citations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["document_name"].as_str().unwrap())
        .collect();
    assert!(
        cited.contains(&"01.txt"),
        "the answer should cite 01.txt (where LangChain's author is named): {outcome}"
    );
    let trace = &outcome["trace"];
    assert!(!trace["chunks"].as_array().unwrap().is_empty(), "{trace}");
    // The answer opens with a sentence of the passages, word for word, and its marker.
    let answer = outcome["answer"].as_str().unwrap();
    let (quote, _) = answer
        .split_once(" [")
        .unwrap_or_else(|| panic!("no marker after the opening quote: {answer}"));
    let prompt = trace["prompt"].as_array().unwrap();
    let read = prompt.last().unwrap()["content"].as_str().unwrap();
    assert!(
        quote.chars().count() >= 6 && read.contains(quote),
        "the answer does not open with a passage sentence: {answer}"
    );
    assert!(trace["chunks"][0]["ranks"].is_object(), "{trace}");
    assert!(outcome["timings"]["first_token_ms"].as_u64().unwrap() > 0);

    // A follow-up in the same conversation: the persona and the first turn are already
    // in the model's KV cache.
    let (status, events) = server.chat(
        &format!("/api/bots/{bot}/chat"),
        TOKEN,
        json!({"message": "他是在哪一年推出的？", "conversation_id": conversation}),
    );
    assert_eq!(status, 200);
    let follow_up = done(&events);
    let cached = follow_up["usage"]["cached_prompt_tokens"].as_u64().unwrap();
    assert!(
        cached > 100,
        "the follow-up re-read its whole prompt: {follow_up}"
    );

    let (status, recorded) = server.get(&format!("/api/conversations/{conversation}"));
    assert_eq!(status, 200);
    let messages = recorded["messages"].as_array().unwrap();
    assert_eq!(messages.len(), 4, "{recorded}");
    assert!(
        messages.iter().all(|m| m["status"] == "complete"),
        "{recorded}"
    );

    // Published: the chat page's card and an answer through the bot's key.
    let key = server.publish_with_key(&bot);
    let (status, card) = server.request_as("GET", &format!("/api/chat/{bot}"), Some(&key), None);
    assert_eq!(status, 200, "{card}");
    assert_eq!(card["name"], "大模型助手");
    let (status, events) = server.chat(
        &format!("/api/chat/{bot}"),
        &key,
        json!({"message": "LangChain 是谁推出的？"}),
    );
    assert_eq!(status, 200, "{events:?}");
    assert!(
        done(&events).get("trace").is_none(),
        "published answers carry no trace"
    );
}

#[test]
fn answers_say_whether_their_passages_support_them_and_unsupported_ones_are_declined() {
    let data = tempfile::tempdir().unwrap();
    let server = Server::start_with(
        data.path(),
        &[
            ("ZHIKU_LLM__MODEL", ANSWER_LLM),
            ("ZHIKU_LLM__CONTEXT_TOKENS", "4096"),
        ],
    );
    let kb = pasted_kb(&server, "policy");
    let ask = |bot: &str, message: &str| {
        let (status, events) = server.chat(
            &format!("/api/bots/{bot}/chat"),
            TOKEN,
            json!({"message": message}),
        );
        assert_eq!(status, 200, "{events:?}");
        done(&events).clone()
    };

    // The check off: the model answers, and the answer says how far the passages hold it.
    let open = server.create_bot(json!({
        "name": "open",
        "knowledge_bases": [kb],
        "no_recall": {"min_answerable": 0},
        "model": {"temperature": 0, "max_tokens": 48},
    }));
    let answer = ask(&open, "出差住宿标准是多少？");
    assert_eq!(answer["no_recall"], false, "{answer}");
    assert!(answer["answerable"].is_null(), "not asked: {answer}");
    assert!(answer["grounded"].is_boolean(), "{answer}");
    let score = answer["grounding_score"].as_f64().unwrap();
    assert!((0.0..=1.0).contains(&score), "{answer}");
    if (score - 0.5).abs() > 0.001 {
        // The score is rounded to three places; the verdict is taken before that.
        assert_eq!(answer["grounded"], score >= 0.5, "{answer}");
    }
    // Citation chips only for passages that hold the words of what cites them.
    if answer["grounded"] == false {
        assert!(
            answer["citations"].as_array().unwrap().is_empty(),
            "{answer}"
        );
    }

    // The check asked and its verdict reported; a bar no verdict reaches declines with
    // the no-recall reply, and the model writes nothing.
    let strict = server.create_bot(json!({
        "name": "strict",
        "knowledge_bases": [kb],
        "no_recall": {"mode": "fixed", "reply": "知识库里没有这个问题的答案。", "min_answerable": 1.0},
        "model": {"temperature": 0, "max_tokens": 48},
    }));
    let declined = ask(&strict, "出差住宿标准是多少？");
    assert_eq!(
        declined["answer"], "知识库里没有这个问题的答案。",
        "{declined}"
    );
    assert_eq!(declined["no_recall"], true, "{declined}");
    assert_eq!(declined["grounded"], false, "{declined}");
    let verdict = declined["answerable"].as_f64().unwrap();
    assert!((0.0..1.0).contains(&verdict), "{declined}");
    assert_eq!(declined["usage"]["completion_tokens"], 0, "{declined}");
    assert!(declined["citations"].as_array().unwrap().is_empty());

    // Over the OpenAI API the same fields ride beside OpenAI's.
    let key = server.publish_with_key(&open);
    let (status, completion) = server.request_as(
        "POST",
        "/v1/chat/completions",
        Some(&key),
        Some(json!({"model": open, "messages": [{"role": "user", "content": "会议室最长可以用多久？"}]})),
    );
    assert_eq!(status, 200, "{completion}");
    assert!(completion["grounded"].is_boolean(), "{completion}");
    assert!(completion["grounding_score"].is_number(), "{completion}");
    assert_eq!(completion["no_recall"], false, "{completion}");
}

#[test]
fn a_bot_without_knowledge_says_it_has_no_live_data_instead_of_making_it_up() {
    let data = tempfile::tempdir().unwrap();
    let server = Server::start_with(data.path(), &[("ZHIKU_LLM__MIN_ANSWERABLE", "0.5")]);
    let bot = server.create_bot(json!({"name": "chatty", "model": {"max_tokens": 16}}));
    let key = server.publish_with_key(&bot);
    let (status, completion) = server.request_as(
        "POST",
        "/v1/chat/completions",
        Some(&key),
        Some(json!({"model": bot, "messages": [{"role": "user", "content": "北京今天天气怎么样？"}]})),
    );
    assert_eq!(status, 200, "{completion}");
    let answer = completion["choices"][0]["message"]["content"]
        .as_str()
        .unwrap();
    assert!(answer.contains("无法获取实时信息"), "{completion}");
    assert_eq!(
        completion["usage"]["completion_tokens"], 0,
        "no model call: {completion}"
    );
    assert!(
        completion["grounded"].is_null(),
        "no knowledge, no grounding: {completion}"
    );

    // Questions that only mention time or weather are answered by the model.
    let (status, events) = server.chat(
        &format!("/api/bots/{bot}/chat"),
        TOKEN,
        json!({"message": "天气预报的原理是什么？"}),
    );
    assert_eq!(status, 200);
    assert!(
        done(&events)["usage"]["completion_tokens"]
            .as_u64()
            .unwrap()
            > 0
    );
}

#[test]
fn nothing_relevant_gives_the_no_recall_behaviour() {
    let data = tempfile::tempdir().unwrap();
    let server = Server::start(data.path());
    let kb = pasted_kb(&server, "policy");
    let bot = server.create_bot(json!({
        "name": "制度助手",
        "knowledge_bases": [kb],
        "retrieval": {"mode": "semantic", "min_score": 0.99},
        "no_recall": {"mode": "fixed", "reply": "知识库里没有这个问题的答案。"},
    }));
    let (status, events) = server.chat(
        &format!("/api/bots/{bot}/chat"),
        TOKEN,
        json!({"message": "火星上有几颗卫星？"}),
    );
    assert_eq!(status, 200);
    assert_eq!(streamed_text(&events), "知识库里没有这个问题的答案。");
    let outcome = done(&events);
    assert_eq!(outcome["no_recall"], true, "{outcome}");
    assert!(outcome["citations"].as_array().unwrap().is_empty());

    // "model": the model answers, told that the knowledge base has nothing.
    let (status, _) = server.patch(
        &format!("/api/bots/{bot}"),
        json!({"no_recall": {"mode": "model"}, "model": {"max_tokens": 16}}),
    );
    assert_eq!(status, 200);
    let (_, events) = server.chat(
        &format!("/api/bots/{bot}/chat"),
        TOKEN,
        json!({"message": "火星上有几颗卫星？"}),
    );
    let outcome = done(&events);
    assert_eq!(outcome["no_recall"], true, "{outcome}");
    assert!(outcome["usage"]["completion_tokens"].as_u64().unwrap() > 0);
}

/// Start a long answer and return the open response once its first token arrived.
fn start_long_answer(server: &Server, bot: &str) -> (reqwest::blocking::Response, String) {
    let response = reqwest::blocking::Client::new()
        .post(server.url(&format!("/api/bots/{bot}/chat")))
        .bearer_auth(TOKEN)
        .json(&json!({"message": "Count from 1 to 1000, one number per line."}))
        .send()
        .unwrap();
    assert_eq!(response.status(), 200);
    let mut response = response;
    let mut seen = String::new();
    let mut buffer = [0u8; 512];
    while !seen.contains("event: token") {
        let n = response.read(&mut buffer).unwrap();
        assert!(n > 0, "stream ended early: {seen}");
        seen.push_str(&String::from_utf8_lossy(&buffer[..n]));
    }
    let start = crate::common::parse_sse(&seen);
    let conversation = start[0].1["conversation_id"].as_str().unwrap().to_string();
    (response, conversation)
}

/// A server with one answer slot, `max_queue` places in its queue and `max_queue_wait_s`.
fn one_slot_server(data: &std::path::Path, max_queue: &str, max_queue_wait_s: &str) -> Server {
    Server::start_with(
        data,
        &[
            ("ZHIKU_LLM__PARALLEL", "1"),
            ("ZHIKU_LLM__MAX_QUEUE", max_queue),
            ("ZHIKU_LLM__MAX_QUEUE_WAIT_S", max_queue_wait_s),
            ("ZHIKU_LLM__CONTEXT_TOKENS", "8192"),
        ],
    )
}

/// Ask `bot` a short question; the response as soon as its headers arrive.
fn say_hi(server: &Server, bot: &str) -> reqwest::blocking::Response {
    reqwest::blocking::Client::new()
        .post(server.url(&format!("/api/bots/{bot}/chat")))
        .bearer_auth(TOKEN)
        .json(&json!({"message": "Say hi."}))
        .send()
        .unwrap()
}

/// A 429 `overloaded` with a Retry-After of at least a second.
fn assert_refused_as_overloaded(refused: reqwest::blocking::Response) {
    assert_eq!(refused.status(), 429);
    let retry_after: u64 = refused.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(retry_after >= 1);
    let body: Value = refused.json().unwrap();
    assert_eq!(body["error"]["code"], "overloaded", "{body}");
}

/// With the only slot busy: the first request in line is queued (nobody is ahead of it, so
/// it may wait for the slot), and the second gets 429 `overloaded` at once.
fn assert_second_in_line_is_refused_at_once(server: &Server, bot: &str) {
    let queued = say_hi(server, bot);
    assert_eq!(queued.status(), 200);
    let asked = Instant::now();
    let refused = say_hi(server, bot);
    assert!(asked.elapsed() < Duration::from_secs(5));
    assert_refused_as_overloaded(refused);
}

#[test]
fn once_answers_are_known_to_be_slow_a_request_that_would_wait_too_long_is_refused_at_once() {
    let data = tempfile::tempdir().unwrap();
    let server = one_slot_server(data.path(), "8", "1");
    let long =
        server.create_bot(json!({"name": "long", "model": {"max_tokens": 1000, "temperature": 0}}));
    // One finished answer that held the slot for over a second: the engine now knows how
    // long an answer takes here.
    let (status, events) = server.chat(
        &format!("/api/bots/{long}/chat"),
        TOKEN,
        json!({"message": "Count from 1 to 1000, one number per line."}),
    );
    assert_eq!(status, 200, "{events:?}");
    let timings = &done(&events)["timings"];
    let held_ms =
        timings["prompt_ms"].as_u64().unwrap() + timings["generation_ms"].as_u64().unwrap();
    assert!(
        held_ms > 1000,
        "the first answer was too quick to teach anything: {timings}"
    );

    let (busy, _) = start_long_answer(&server, &long);
    // One answer ahead of the second in line is more than max_queue_wait_s of work: the
    // queue has room, but the answer would only be shed later, so it is refused now.
    assert_second_in_line_is_refused_at_once(&server, &long);
    drop(busy);
}

#[test]
fn before_any_answer_has_finished_a_slot_busy_for_long_already_turns_away_a_long_wait() {
    let data = tempfile::tempdir().unwrap();
    let server = one_slot_server(data.path(), "8", "1");
    let long =
        server.create_bot(json!({"name": "long", "model": {"max_tokens": 4000, "temperature": 0}}));
    // A fresh server: no answer has finished, so there is no average slot time yet.
    let (busy, _) = start_long_answer(&server, &long);
    // The only slot has now been held for longer than max_queue_wait_s.
    std::thread::sleep(Duration::from_millis(1500));
    // One answer ahead of the second in line takes at least as long as the slot has been
    // busy: more than max_queue_wait_s of work, so it is refused at once.
    assert_second_in_line_is_refused_at_once(&server, &long);
    drop(busy);
}

#[test]
fn leaving_cancels_the_answer_and_frees_the_slot() {
    let data = tempfile::tempdir().unwrap();
    let server = Server::start_with(
        data.path(),
        &[
            ("ZHIKU_LLM__PARALLEL", "1"),
            ("ZHIKU_LLM__CONTEXT_TOKENS", "8192"),
        ],
    );
    let bot =
        server.create_bot(json!({"name": "long", "model": {"max_tokens": 4000, "temperature": 0}}));
    let (response, conversation) = start_long_answer(&server, &bot);
    drop(response);

    // The only slot is free again: the next answer does not wait for 4000 tokens.
    let (status, events) = server.chat(
        &format!("/api/bots/{bot}/chat"),
        TOKEN,
        json!({"message": "Say hi."}),
    );
    assert_eq!(status, 200);
    let queue_ms = done(&events)["timings"]["queue_ms"].as_u64().unwrap();
    assert!(
        queue_ms < 5_000,
        "the cancelled answer kept the slot for {queue_ms} ms"
    );

    // The partial answer is recorded as interrupted.
    let started = Instant::now();
    loop {
        let (_, recorded) = server.get(&format!("/api/conversations/{conversation}"));
        let answer = &recorded["messages"][1];
        if answer["status"] == "interrupted" && !answer["content"].as_str().unwrap().is_empty() {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(30), "{recorded}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn a_full_queue_answers_429_with_retry_after_and_concurrent_chats_all_complete() {
    let data = tempfile::tempdir().unwrap();
    let server = one_slot_server(data.path(), "1", "3");
    let long =
        server.create_bot(json!({"name": "long", "model": {"max_tokens": 4000, "temperature": 0}}));
    let (busy, _) = start_long_answer(&server, &long);
    // The stream opens once the request is queued; it waits for the busy slot.
    let queued = say_hi(&server, &long);
    assert_eq!(queued.status(), 200);
    assert_refused_as_overloaded(say_hi(&server, &long));
    // The queued one does not wait for ever: past llm.max_queue_wait_s it is shed too.
    let waited = Instant::now();
    let events = crate::common::parse_sse(&queued.text().unwrap());
    let (name, error) = events.last().unwrap();
    assert_eq!(name, "error", "{events:?}");
    assert_eq!(error["code"], "overloaded", "{error}");
    assert!(
        error["message"].as_str().unwrap().contains("try again"),
        "{error}"
    );
    assert!(waited.elapsed() < Duration::from_secs(20));
    drop(busy);
    drop(server);

    // Eight at once on the default slots: every one completes.
    let data = tempfile::tempdir().unwrap();
    let server = Server::start(data.path());
    let bot = server.create_bot(json!({"name": "short", "model": {"max_tokens": 24}}));
    let url = server.url(&format!("/api/bots/{bot}/chat"));
    let handles: Vec<_> = (0..8)
        .map(|i| {
            let url = url.clone();
            std::thread::spawn(move || {
                let r = reqwest::blocking::Client::new()
                    .post(url)
                    .bearer_auth(TOKEN)
                    .json(&json!({"message": format!("Tell me fact number {i}.")}))
                    .timeout(Duration::from_secs(300))
                    .send()
                    .unwrap();
                (
                    r.status().as_u16(),
                    crate::common::parse_sse(&r.text().unwrap()),
                )
            })
        })
        .collect();
    for handle in handles {
        let (status, events) = handle.join().unwrap();
        assert_eq!(status, 200);
        assert!(
            done(&events)["finish_reason"].as_str().is_some(),
            "{events:?}"
        );
    }
}

#[test]
fn keys_open_only_their_own_published_bot() {
    let data = tempfile::tempdir().unwrap();
    let server = Server::start(data.path());
    let a = server.create_bot(json!({"name": "a", "model": {"max_tokens": 4}}));
    let b = server.create_bot(json!({"name": "b", "model": {"max_tokens": 4}}));
    let key_a = server.publish_with_key(&a);
    let key_b = server.publish_with_key(&b);
    let ask = json!({"message": "hi"});

    let (status, _) = server.chat(&format!("/api/chat/{a}"), &key_a, ask.clone());
    assert_eq!(status, 200);
    let (status, events) = server.chat(&format!("/api/chat/{b}"), &key_a, ask.clone());
    assert_eq!(status, 403, "{events:?}");
    let (status, _) = server.chat(&format!("/api/chat/{a}"), "zk-wrong", ask.clone());
    assert_eq!(status, 401);
    let (status, _) = server.chat(&format!("/api/chat/{a}"), TOKEN, ask.clone());
    assert_eq!(status, 401, "the admin token is not a bot key");

    let completion = |key: &str, model: &str| {
        server.request_as(
            "POST",
            "/v1/chat/completions",
            Some(key),
            Some(json!({"model": model, "messages": [{"role": "user", "content": "hi"}], "max_tokens": 4})),
        )
    };
    assert_eq!(completion(&key_b, &b).0, 200);
    assert_eq!(completion(&key_b, &a).0, 403);

    // Revoked: refused everywhere.
    let (_, keys) = server.get(&format!("/api/bots/{b}/keys"));
    let key_id = keys[0]["id"].as_str().unwrap();
    assert_eq!(server.delete(&format!("/api/bots/{b}/keys/{key_id}")), 204);
    let (status, body) = completion(&key_b, &b);
    assert_eq!(status, 401, "{body}");
    assert_eq!(body["error"]["code"], "unauthorized");
    let (status, _) = server.chat(&format!("/api/chat/{b}"), &key_b, ask);
    assert_eq!(status, 401);

    // A draft that was never published is not served.
    let c = server.create_bot(json!({"name": "c"}));
    let (status, key) = server.post(&format!("/api/bots/{c}/keys"), json!({"name": "k"}));
    assert_eq!(status, 201);
    let (status, body) = server.chat(
        &format!("/api/chat/{c}"),
        key["key"].as_str().unwrap(),
        json!({"message": "hi"}),
    );
    assert_eq!(status, 404, "{body:?}");
}

#[test]
fn a_remote_openai_compatible_server_can_be_the_model() {
    // Server A serves a plain bot over /v1; server B uses A as its remote model.
    let data_a = tempfile::tempdir().unwrap();
    let a = Server::start(data_a.path());
    let upstream = a.create_bot(json!({"name": "upstream", "model": {"max_tokens": 16}}));
    let key = a.publish_with_key(&upstream);
    let remote_url = a.url("/v1");
    let data_b = tempfile::tempdir().unwrap();
    let b = Server::start_with(
        data_b.path(),
        &[
            ("ZHIKU_LLM__BACKEND", "remote"),
            ("ZHIKU_LLM__REMOTE_URL", &remote_url),
            ("ZHIKU_LLM__REMOTE_API_KEY", &key),
            ("ZHIKU_LLM__REMOTE_MODEL", &upstream),
        ],
    );
    let bot = b.create_bot(json!({"name": "relayed", "model": {"max_tokens": 16}}));
    let (status, events) = b.chat(
        &format!("/api/bots/{bot}/chat"),
        TOKEN,
        json!({"message": "Say hi."}),
    );
    assert_eq!(status, 200);
    let outcome = done(&events);
    assert!(!outcome["answer"].as_str().unwrap().is_empty(), "{outcome}");
    assert_eq!(outcome["answer"].as_str().unwrap(), streamed_text(&events));
    drop(a);

    // The remote server is gone: the answer fails with a clear error event, the turn is
    // recorded as failed, and the knowledge features keep working.
    let (status, events) = b.chat(
        &format!("/api/bots/{bot}/chat"),
        TOKEN,
        json!({"message": "Again?"}),
    );
    assert_eq!(status, 200);
    let (name, error) = events.last().unwrap();
    assert_eq!(name, "error", "{events:?}");
    assert!(
        error["message"]
            .as_str()
            .unwrap()
            .contains("could not reach the remote model server"),
        "{error}"
    );
    let conversation = events[0].1["conversation_id"].as_str().unwrap();
    let (_, recorded) = b.get(&format!("/api/conversations/{conversation}"));
    assert_eq!(recorded["messages"][1]["status"], "failed", "{recorded}");
    let kb = pasted_kb(&b, "still-works");
    let (status, found) = b.post(
        &format!("/api/kbs/{kb}/search"),
        json!({"query": "住宿标准"}),
    );
    assert_eq!(status, 200, "{found}");
}

/// A stand-in for an OpenAI-compatible server that streams `tokens` and then dies: the
/// connection closes with no `[DONE]` and no finish_reason. Serves `requests` requests.
fn dying_remote(tokens: &'static [&'static str], requests: usize) -> String {
    use std::io::Write;
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/v1", listener.local_addr().unwrap());
    std::thread::spawn(move || {
        for stream in listener.incoming().take(requests) {
            let mut stream = stream.unwrap();
            // Read the request head and its body before answering.
            let mut seen = Vec::new();
            let mut buf = [0u8; 4096];
            let body_len = loop {
                let n = stream.read(&mut buf).unwrap();
                seen.extend_from_slice(&buf[..n]);
                if let Some(end) = seen.windows(4).position(|w| w == b"\r\n\r\n") {
                    let head = String::from_utf8_lossy(&seen[..end]).to_lowercase();
                    let length: usize = head
                        .lines()
                        .find_map(|l| l.strip_prefix("content-length:"))
                        .map_or(0, |v| v.trim().parse().unwrap());
                    break end + 4 + length;
                }
            };
            while seen.len() < body_len {
                let n = stream.read(&mut buf).unwrap();
                seen.extend_from_slice(&buf[..n]);
            }
            let mut out = String::from(
                "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\nconnection: close\r\n\r\n",
            );
            for t in tokens {
                let chunk = json!({"choices": [{"index": 0, "delta": {"content": t}, "finish_reason": null}]});
                out.push_str(&format!("data: {chunk}\n\n"));
            }
            stream.write_all(out.as_bytes()).unwrap();
            // Dropping the stream here is the server dying mid-answer.
        }
    });
    url
}

#[test]
fn a_model_failing_mid_answer_keeps_the_partial_answer_as_interrupted() {
    let remote_url = dying_remote(&["年假", "一共", "十天"], 1);
    let data = tempfile::tempdir().unwrap();
    let server = Server::start_with(
        data.path(),
        &[
            ("ZHIKU_LLM__BACKEND", "remote"),
            ("ZHIKU_LLM__REMOTE_URL", &remote_url),
            ("ZHIKU_LLM__REMOTE_MODEL", "dying"),
        ],
    );
    let kb = pasted_kb(&server, "policy");
    let bot = server.create_bot(json!({"name": "hr", "knowledge_bases": [kb]}));
    let (status, events) = server.chat(
        &format!("/api/bots/{bot}/chat"),
        TOKEN,
        json!({"message": "年假有几天？"}),
    );
    assert_eq!(status, 200);
    assert_eq!(streamed_text(&events), "年假一共十天", "{events:?}");
    let (name, error) = events.last().unwrap();
    assert_eq!(name, "error", "{events:?}");
    assert!(
        error["message"]
            .as_str()
            .unwrap()
            .contains("stopped before finishing"),
        "{error}"
    );
    assert_eq!(error["answer"], "年假一共十天", "{error}");

    // The conversation keeps the partial answer, marked interrupted.
    let conversation = events[0].1["conversation_id"].as_str().unwrap();
    let (_, recorded) = server.get(&format!("/api/conversations/{conversation}"));
    let answer = &recorded["messages"][1];
    assert_eq!(answer["status"], "interrupted", "{recorded}");
    assert_eq!(answer["content"], "年假一共十天", "{recorded}");

    // Retrieval keeps working.
    let (status, found) = server.post(
        &format!("/api/kbs/{kb}/search"),
        json!({"query": "住宿标准"}),
    );
    assert_eq!(status, 200, "{found}");
    assert!(!found["results"].as_array().unwrap().is_empty(), "{found}");
}

#[test]
fn persona_optimisation_suggests_and_saves_nothing() {
    let data = tempfile::tempdir().unwrap();
    let server = Server::start(data.path());
    let bot = server.create_bot(json!({"name": "hr", "persona": "你是HR助手。"}));
    let (status, suggestion) = server.post(
        &format!("/api/bots/{bot}/optimize-persona"),
        json!({"persona": "你是HR助手，回答员工关于请假和报销的问题。"}),
    );
    assert_eq!(status, 200, "{suggestion}");
    assert!(
        !suggestion["persona"].as_str().unwrap().trim().is_empty(),
        "{suggestion}"
    );
    assert_eq!(
        suggestion["original"],
        "你是HR助手，回答员工关于请假和报销的问题。"
    );
    let (_, stored) = server.get(&format!("/api/bots/{bot}"));
    assert_eq!(
        stored["draft"]["persona"], "你是HR助手。",
        "nothing is saved until accepted"
    );
}
