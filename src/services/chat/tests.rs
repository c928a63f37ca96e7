//! The question path with a stand-in model and embedder: retrieval, the no-recall reply,
//! the answerability gate, citations and recording, with no model files.

use super::*;
use crate::llm::scripted::ScriptedLlm;
use crate::services::search::SearchMode;
use crate::services::testing::Fixture;

const LEAVE: &str = "Leave: every employee has fifteen days of paid leave a year.";

async fn fixture() -> Fixture {
    let mut f = Fixture::new().await;
    f.add_document(&[
        "Travel: hotel rooms are refunded up to 500 yuan a night.",
        LEAVE,
    ])
    .await;
    f
}

/// Chat over the fixture's KB with `llm`, declining below 0.5 by default.
fn chat(f: &Fixture, llm: &Arc<ScriptedLlm>) -> ChatService {
    ChatService {
        store: f.store.clone(),
        search: f.search.clone(),
        llm: llm.clone(),
        default_min_answerable: 0.5,
        tools: Arc::new(ToolService::new(
            &crate::config::ToolsConfig {
                timeout_ms: 2_000,
                max_response_bytes: 10_000,
                max_result_chars: 500,
                max_calls_per_answer: 6,
                max_rounds: 3,
                allow_private: true,
                table_max_rows: 30,
                table_query_timeout_ms: 2_000,
            },
            Arc::new(crate::services::secrets::SecretBox::with_key("test")),
            f.store.clone(),
            f.search.clone(),
        )),
    }
}

fn settings(f: &Fixture) -> BotSettings {
    let mut s = BotSettings {
        name: "hr".into(),
        knowledge_bases: vec![f.kb_id.clone()],
        ..BotSettings::default()
    };
    s.retrieval.mode = SearchMode::Fulltext;
    s
}

fn turn(settings: BotSettings, question: &str) -> Turn {
    Turn::new(
        "bot".into(),
        settings,
        question.into(),
        History::Given {
            extra_system: String::new(),
            messages: Vec::new(),
        },
    )
}

/// A traced `question` asked after one earlier turn, `earlier` (question, answer).
fn follow_up(settings: BotSettings, earlier: (&str, &str), question: &str) -> Turn {
    let mut asked = turn(settings, question);
    asked.history = History::Given {
        extra_system: String::new(),
        messages: vec![
            ChatMessage::new(crate::llm::Role::User, earlier.0),
            ChatMessage::new(crate::llm::Role::Assistant, earlier.1),
        ],
    };
    asked.trace = true;
    asked
}

/// The streamed text and the outcome of an answer.
async fn answer(chat: &ChatService, turn: Turn) -> (String, ChatOutcome) {
    let mut stream = chat.start(turn).await.unwrap();
    let mut text = String::new();
    while let Some(event) = stream.events.recv().await {
        match event {
            ChatEvent::Token(t) => text.push_str(&t),
            // The outcome lists them.
            ChatEvent::ToolCall(_) | ChatEvent::ToolRun(_) | ChatEvent::ToolResult(_) => {}
            ChatEvent::Done(outcome) => return (text, *outcome),
            ChatEvent::Failed { message, .. } => panic!("the answer failed: {message}"),
        }
    }
    panic!("the stream ended without an outcome")
}

#[tokio::test]
async fn nothing_retrieved_gives_the_no_recall_reply_without_the_model() {
    let f = fixture().await;
    let llm = Arc::new(ScriptedLlm::new(["never said"]));
    let s = settings(&f);
    let reply = s.no_recall.reply.clone();
    let (text, outcome) = answer(&chat(&f, &llm), turn(s, "火星天气怎么样")).await;
    assert_eq!(text, reply);
    assert_eq!(outcome.answer, reply);
    assert!(outcome.no_recall);
    assert_eq!(outcome.grounded, Some(false));
    assert!(outcome.citations.is_empty());
    assert!(llm.requests().is_empty(), "the model was asked");
}

#[tokio::test]
async fn a_verdict_below_the_threshold_declines() {
    let f = fixture().await;
    let llm = Arc::new(ScriptedLlm::new(["Fifteen days [1]."]).with_verdict(0.2));
    // The passages question, whose bar is the bot's threshold unscaled.
    let mut s = settings(&f);
    s.model.quote_first = false;
    let reply = s.no_recall.reply.clone();
    let (text, outcome) = answer(&chat(&f, &llm), turn(s, "how many days of paid leave")).await;
    assert_eq!(text, reply);
    assert!(outcome.no_recall);
    assert_eq!(outcome.answerable, Some(0.2));
    assert_eq!(outcome.grounded, Some(false));
    assert!(outcome.citations.is_empty());
    let asked = llm.requests();
    assert_eq!(asked.len(), 1);
    let gate = asked[0].gate.as_ref().expect("the gate is asked");
    // The passages hold 3 of the question's 4 words (many, days, paid, leave): the bar is
    // 7.5 % below the bot's 0.5.
    assert!(
        (gate.min_proceed - 0.4625).abs() < 1e-6,
        "{}",
        gate.min_proceed
    );
}

#[tokio::test]
async fn the_bar_rises_when_the_passages_hold_little_of_the_question() {
    let f = fixture().await;
    // Sure enough for the bot's 0.5, not for passages that hold only "paid" and "leave"
    // of "paid leave for interns in paris".
    let llm = Arc::new(ScriptedLlm::new(["Fifteen days [1]."]).with_verdict(0.505));
    let mut s = settings(&f);
    s.model.quote_first = false;
    let reply = s.no_recall.reply.clone();
    let (text, outcome) = answer(&chat(&f, &llm), turn(s, "paid leave for interns in paris")).await;
    assert_eq!(text, reply);
    assert!(outcome.no_recall);
    let gate = llm.requests()[0].gate.clone().expect("the gate is asked");
    assert!(
        (gate.min_proceed - 0.515).abs() < 1e-6,
        "{}",
        gate.min_proceed
    );
}

#[test]
fn the_bar_is_the_threshold_at_half_the_question_and_scales_with_it() {
    assert!((answerable_bar(0.88, 0.5) - 0.88).abs() < 1e-6);
    assert!((answerable_bar(0.88, 0.0) - 1.0).abs() < 1e-6);
    assert!((answerable_bar(0.88, 1.0) - 0.748).abs() < 1e-6);
    // "Ask, never decline" stays that way.
    assert!(answerable_bar(0.000_001, 0.0) < 0.000_002);
    assert_eq!(answerable_bar(0.0, 0.0), 0.0);
}

#[tokio::test]
async fn a_scripted_answer_cites_the_passage_it_uses() {
    let f = fixture().await;
    let said = "Every employee has fifteen days of paid leave a year [1].";
    let llm = Arc::new(ScriptedLlm::new([said]).with_verdict(0.9));
    let (text, outcome) = answer(
        &chat(&f, &llm),
        turn(settings(&f), "how many days of paid leave"),
    )
    .await;
    assert_eq!(text, said);
    assert!(!outcome.no_recall);
    assert_eq!(outcome.answerable, Some(0.9));
    assert_eq!(outcome.grounded, Some(true));
    assert_eq!(outcome.citations.len(), 1, "{:?}", outcome.citations);
    let cited = &outcome.citations[0];
    assert_eq!(cited.marker, 1);
    assert!(!cited.inferred);
    assert_eq!(cited.snippet, LEAVE);
    // The model read the passage it cites.
    let prompt = &llm.requests()[0].messages;
    assert!(
        prompt.iter().any(|m| m.content.contains(LEAVE)),
        "{prompt:?}"
    );
}

#[tokio::test]
async fn a_bot_with_the_check_off_is_not_gated_and_one_without_knowledge_is_not_grounded() {
    let f = fixture().await;
    let llm = Arc::new(ScriptedLlm::new(["Fifteen days [1].", "Hello!"]).with_verdict(0.0));
    let mut s = settings(&f);
    s.no_recall.min_answerable = Some(0.0);
    let (_, outcome) = answer(&chat(&f, &llm), turn(s, "paid leave days")).await;
    assert_eq!(outcome.answer, "Fifteen days [1].");
    assert_eq!(outcome.answerable, None);

    let plain = BotSettings {
        name: "chat".into(),
        ..BotSettings::default()
    };
    let (_, outcome) = answer(&chat(&f, &llm), turn(plain, "hi")).await;
    assert_eq!(outcome.answer, "Hello!");
    assert_eq!(outcome.grounded, None);
    assert!(outcome.citations.is_empty());
    assert!(llm.requests().iter().all(|r| r.gate.is_none()));
}

#[tokio::test]
async fn a_recorded_turn_keeps_the_question_and_the_answer() {
    let f = fixture().await;
    let said = "Every employee has fifteen days of paid leave a year [1].";
    let llm = Arc::new(ScriptedLlm::new([said]));
    let s = settings(&f);
    let bot = f.store.create_bot(&s).await.unwrap();
    let recorded = Turn::new(
        bot.bot_id,
        s,
        "how many days of paid leave".into(),
        History::Stored {
            conversation_id: None,
            channel: Channel::Debug,
            key_id: None,
        },
    );
    let (_, outcome) = answer(&chat(&f, &llm), recorded).await;
    let id = outcome.conversation_id.expect("a new conversation");
    let messages = f.store.list_messages(&id).await.unwrap();
    assert_eq!(messages.len(), 2);
    assert_eq!(messages[0].role, Role::User);
    assert_eq!(messages[1].content, said);
    assert_eq!(messages[1].status, MessageStatus::Complete);
    assert_eq!(Some(messages[1].message_id), outcome.message_id);
}

#[tokio::test]
async fn an_answer_from_passages_opens_with_a_quote_unless_the_bot_turns_it_off() {
    let f = fixture().await;
    let llm = Arc::new(ScriptedLlm::new(["a", "b", "c"]).with_verdict(1.0));
    answer(&chat(&f, &llm), turn(settings(&f), "paid leave days")).await;
    let mut free = settings(&f);
    free.model.quote_first = false;
    answer(&chat(&f, &llm), turn(free, "paid leave days")).await;
    let plain = BotSettings {
        name: "chat".into(),
        ..BotSettings::default()
    };
    answer(&chat(&f, &llm), turn(plain, "hi")).await;

    let openings: Vec<_> = llm.requests().into_iter().map(|r| r.opening).collect();
    assert_eq!(
        openings[0].as_deref(),
        Some("Leave: every employee has fifteen days of paid leave a year [1]."),
        "{openings:?}"
    );
    assert!(openings[1].is_none() && openings[2].is_none());
    // The check asks whether that sentence answers, with its own bar; without a quote it
    // asks whether the passages do.
    let gates: Vec<_> = llm.requests().into_iter().map(|r| r.gate).collect();
    let asked = |i: usize| {
        let gate = gates[i].as_ref().expect("a checked answer");
        let last = gate.messages.last().expect("a question");
        (last.content.clone(), gate.min_proceed)
    };
    let (quoted, quoted_bar) = asked(0);
    let (free, free_bar) = asked(1);
    assert!(
        quoted.ends_with("fifteen days of paid leave a year [1].）"),
        "{quoted}"
    );
    assert!(free.ends_with(prompt::ANSWERABLE.text), "{free}");
    let scale = prompt::QUOTE_ANSWERS.bar_scale;
    assert!(
        (quoted_bar - free_bar * scale).abs() < 1e-6,
        "{quoted_bar} {free_bar}"
    );
}

fn weather_tools(choice: crate::llm::ToolChoice) -> ToolUse {
    let weather = crate::llm::ToolSpec::new(
        "get_weather",
        "The weather in a city now",
        Some(json!({"type": "object", "properties": {"city": {"type": "string"}}})),
    )
    .unwrap();
    ToolUse::new(vec![weather], choice, true).unwrap()
}

#[tokio::test]
async fn a_model_given_tools_may_call_one_and_no_passage_check_stands_in_its_way() {
    let f = fixture().await;
    // A verdict that would decline, and a question the knowledge does not answer.
    let llm = Arc::new(
        ScriptedLlm::new([
            "<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Beijing\"}}\n</tool_call>",
        ])
        .with_verdict(0.0),
    );
    let mut asked = turn(settings(&f), "what is the weather in Beijing today");
    asked.tools = Some(weather_tools(crate::llm::ToolChoice::Auto));
    let (text, outcome) = answer(&chat(&f, &llm), asked).await;
    assert_eq!(text, "");
    assert_eq!(outcome.finish_reason, FinishReason::ToolCalls);
    assert!(!outcome.no_recall);
    assert_eq!(outcome.tool_calls.len(), 1);
    assert_eq!(outcome.tool_calls[0].name, "get_weather");
    assert_eq!(outcome.tool_calls[0].arguments, r#"{"city":"Beijing"}"#);
    // Passages are not what supports an answer from a tool.
    assert_eq!(outcome.grounded, None);
    let request = &llm.requests()[0];
    assert!(request.gate.is_none() && request.opening.is_none());
    assert!(request.tools.is_some());
}

#[tokio::test]
async fn the_model_goes_on_from_the_tool_results_after_the_question() {
    let f = fixture().await;
    let llm = Arc::new(ScriptedLlm::new(["It is sunny in Beijing."]));
    let mut call = ChatMessage::new(crate::llm::Role::Assistant, "");
    call.tool_calls = vec![ToolCall::new("get_weather", r#"{"city":"Beijing"}"#)];
    let mut result = ChatMessage::new(crate::llm::Role::Tool, "sunny, 21 °C");
    result.tool_call_id = Some(call.tool_calls[0].id.clone());
    let mut asked = turn(settings(&f), "what is the weather in Beijing today");
    asked.tools = Some(weather_tools(crate::llm::ToolChoice::Auto));
    asked.tool_steps = vec![call, result];
    let (text, outcome) = answer(&chat(&f, &llm), asked).await;
    assert_eq!(text, "It is sunny in Beijing.");
    assert_eq!(outcome.finish_reason, FinishReason::Stop);
    let messages = &llm.requests()[0].messages;
    let roles: Vec<_> = messages.iter().map(|m| m.role).collect();
    use crate::llm::Role as R;
    assert_eq!(roles, [R::System, R::User, R::Assistant, R::Tool]);
    assert_eq!(messages[3].content, "sunny, 21 °C");
}

#[tokio::test]
async fn the_bots_own_tools_run_and_the_model_answers_with_their_results() {
    use crate::store::bot_tools::BotTool;
    let f = fixture().await;
    let llm = Arc::new(
        ScriptedLlm::new([
            r#"<tool_call>{"name": "calculator", "arguments": {"expression": "15*2"}}</tool_call>"#,
            // The same call again: not run twice, and the model must then answer.
            r#"<tool_call>{"arguments": {"expression":"15*2"}, "name": "calculator"}</tool_call>"#,
            "Every employee has fifteen days a year, so 30 days in two years [1].",
        ])
        // Judged not to hold the answer, the passages are answered from with the tools.
        .with_verdict(0.2),
    );
    let mut s = settings(&f);
    s.tools = vec![BotTool::Calculator, BotTool::CurrentTime];
    let chat = chat(&f, &llm);
    let mut stream = chat
        .start(turn(s, "how many days of paid leave in two years"))
        .await
        .unwrap();
    let mut events = Vec::new();
    let outcome = loop {
        match stream.events.recv().await.expect("an outcome") {
            ChatEvent::Done(outcome) => break *outcome,
            ChatEvent::Failed { message, .. } => panic!("{message}"),
            ChatEvent::ToolCall(_) => panic!("a bot tool's call is not the caller's"),
            ChatEvent::ToolRun(call) => events.push(format!("run {}", call.name)),
            ChatEvent::ToolResult(step) => events.push(format!("result {}", step.result)),
            ChatEvent::Token(_) => {}
        }
    };
    assert_eq!(
        events,
        [
            "run calculator",
            "result 15*2 = 30",
            "run calculator",
            "result 15*2 = 30"
        ]
    );
    assert_eq!(
        outcome.answer,
        "Every employee has fifteen days a year, so 30 days in two years [1]."
    );
    assert_eq!(outcome.finish_reason, FinishReason::Stop);
    assert!(outcome.tool_calls.is_empty());
    assert_eq!(outcome.tool_steps.len(), 2);
    // Supported by the passage and the tool's result together, cited by the passage.
    assert_eq!(
        outcome.grounded,
        Some(true),
        "{:?}",
        outcome.grounding_score
    );
    assert_eq!(outcome.citations.len(), 1, "{:?}", outcome.citations);
    let mut asked = llm.requests();
    assert_eq!(asked.len(), 4);
    // First asked as a bot without tools is: the check, no tools.
    let checked = asked.remove(0);
    assert!(checked.gate.is_some() && checked.tools.is_none());
    let offered = |i: usize| asked[i].tools.as_ref().map(|t| t.callable().len());
    assert_eq!(offered(0), Some(2));
    assert!(asked[0].gate.is_none() && asked[0].opening.is_none());
    assert_eq!(offered(1), Some(2), "a second round offers the tools again");
    assert_eq!(
        offered(2),
        None,
        "after a repeat the model answers without tools"
    );
    // The answer is asked for as one from passages: the result is one of them, after
    // the knowledge base's.
    let last = &asked[2].messages;
    assert!(last.iter().all(|m| m.role != crate::llm::Role::Tool));
    let user = &last.last().unwrap().content;
    assert!(
        user.contains("《工具 calculator 的结果》\n15*2 = 30"),
        "{user}"
    );
    assert!(user.contains(LEAVE), "{user}");
}

#[tokio::test]
async fn an_answer_after_a_decline_that_no_tool_result_supports_is_not_given() {
    use crate::store::bot_tools::BotTool;
    let f = fixture().await;
    let mut s = settings(&f);
    s.tools = vec![BotTool::CurrentTime];
    let reply = s.no_recall.reply.clone();
    // Declined, the model calls the date tool for a question about a date in the past,
    // and answers with a year neither the result nor the passages hold.
    let llm = Arc::new(
        ScriptedLlm::new([
            r#"<tool_call>{"name": "current_time", "arguments": {}}</tool_call>"#,
            "Paid leave was introduced in 1860.",
        ])
        .with_verdict(0.1),
    );
    let (text, outcome) = answer(&chat(&f, &llm), turn(s, "when was paid leave introduced")).await;
    assert_eq!(text, reply, "the invented year was never shown");
    assert_eq!(outcome.answer, reply);
    assert!(outcome.no_recall);
    assert_eq!(outcome.tool_steps.len(), 1);
    let asked = llm.requests();
    assert_eq!(asked.len(), 3, "the check, the tools, the answer");
    assert!(asked[0].gate.is_some() && asked[1].tools.is_some());
}

#[tokio::test]
async fn a_call_that_failed_fixably_is_shown_its_error_and_called_once_more() {
    use crate::llm::ToolChoice;
    use crate::store::bot_tools::BotTool;
    let f = fixture().await;
    let llm = Arc::new(ScriptedLlm::new([
        r#"<tool_call>{"name": "calculator", "arguments": {"expression": "15 x 2"}}</tool_call>"#,
        r#"<tool_call>{"name": "calculator", "arguments": {"expression": "15*2"}}</tool_call>"#,
        "30 days in two years [1].",
    ])
    .with_verdict(0.2));
    let mut s = settings(&f);
    s.tools = vec![BotTool::Calculator];
    let mut chat = chat(&f, &llm);
    Arc::get_mut(&mut chat.tools).unwrap().max_rounds = 1;
    let mut stream = chat
        .start(turn(s, "how many days of paid leave in two years"))
        .await
        .unwrap();
    let mut results = Vec::new();
    let outcome = loop {
        match stream.events.recv().await.expect("an outcome") {
            ChatEvent::Done(outcome) => break *outcome,
            ChatEvent::Failed { message, .. } => panic!("{message}"),
            ChatEvent::ToolResult(step) => results.push(step.ok),
            _ => {}
        }
    };
    assert_eq!(
        results,
        [false, true],
        "the second call put the first right"
    );
    assert_eq!(outcome.answer, "30 days in two years [1].");
    let mut asked = llm.requests();
    // The check that declined the passages, then the rounds with tools.
    assert!(asked.remove(0).gate.is_some());
    assert_eq!(asked.len(), 3, "one round beyond tools.max_rounds = 1");
    let choice = |i: usize| asked[i].tools.as_ref().map(|t| t.choice.clone());
    assert_eq!(
        choice(1),
        Some(ToolChoice::Required),
        "shown its error, it must call"
    );
    assert_eq!(choice(2), None);
}

#[tokio::test]
async fn a_bots_tools_wait_until_the_passages_are_judged_not_to_hold_the_answer() {
    use crate::store::bot_tools::BotTool;
    let f = fixture().await;
    let mut s = settings(&f);
    s.tools = vec![BotTool::Calculator];
    let reply = s.no_recall.reply.clone();

    // Passages that hold it: answered as a bot without tools answers, quote first.
    let llm = Arc::new(ScriptedLlm::new(["Fifteen days [1]."]));
    let (text, outcome) = answer(&chat(&f, &llm), turn(s.clone(), "paid leave days")).await;
    assert_eq!(text, "Fifteen days [1].");
    assert!(outcome.tool_steps.is_empty());
    let asked = llm.requests();
    assert_eq!(asked.len(), 1);
    assert!(asked[0].tools.is_none() && asked[0].gate.is_some());
    assert!(asked[0].opening.is_some());

    // Passages that do not, and a model that calls nothing: the no-recall reply, and the
    // model's own words are never shown.
    let llm = Arc::new(ScriptedLlm::new(["Mars is sunny today."]).with_verdict(0.1));
    let (text, outcome) = answer(&chat(&f, &llm), turn(s, "paid leave on Mars")).await;
    assert_eq!(text, reply);
    assert_eq!(outcome.answer, reply);
    assert!(outcome.no_recall);
    let asked = llm.requests();
    assert_eq!(asked.len(), 2, "the tools were offered after the decline");
    assert!(asked[1].tools.is_some());
}

#[tokio::test]
async fn knowledge_search_searches_when_the_model_asks_and_its_passages_are_cited() {
    use crate::store::bot_tools::BotTool;
    let f = fixture().await;
    // The model judged that the question needs no search (its first verdict), and then
    // searched all the same.
    let llm = Arc::new(
        ScriptedLlm::new([
            r#"<tool_call>{"name": "knowledge_search", "arguments": {"query": "paid leave"}}</tool_call>"#,
            "Fifteen days of paid leave a year [1].",
        ])
        .with_verdicts([0.1]),
    );
    let mut s = settings(&f);
    s.tools = vec![BotTool::KnowledgeSearch];
    let (text, outcome) = answer(&chat(&f, &llm), turn(s.clone(), "How long is my leave?")).await;
    assert_eq!(text, "Fifteen days of paid leave a year [1].");
    assert_eq!(outcome.tool_steps.len(), 1);
    assert!(outcome.tool_steps[0].ok, "{:?}", outcome.tool_steps[0]);
    assert!(outcome.tool_steps[0].result.contains(LEAVE));
    // The passage it found is cited as the knowledge base's own.
    assert_eq!(outcome.grounded, Some(true));
    assert_eq!(outcome.citations.len(), 1, "{:?}", outcome.citations);
    assert!(outcome.citations[0].chunk_id > 0);
    assert!(outcome.citations[0].snippet.starts_with("Leave:"));
    let mut asked = llm.requests();
    assert_eq!(asked.len(), 3);
    // First the verdict on the question alone, then nothing was searched before the
    // model asked: the question came alone.
    let verdict = asked.remove(0);
    assert!(verdict.gate.is_some() && verdict.tools.is_none());
    let verdict_asked = &verdict.messages.last().unwrap().content;
    assert!(
        verdict_asked.starts_with("How long is my leave?"),
        "{verdict_asked}"
    );
    assert!(verdict_asked.contains("闲聊"), "{verdict_asked}");
    let first = &asked[0];
    assert_eq!(
        first.messages.last().unwrap().content,
        "How long is my leave?"
    );
    assert!(first.messages[0].content.contains("knowledge_search"));
    assert!(first.gate.is_none());
    let answer_prompt = &asked[1].messages.last().unwrap().content;
    assert!(answer_prompt.contains(LEAVE), "{answer_prompt}");

    // A search that finds nothing may search again; found nothing twice, the bot gives
    // its no-recall reply, as when its own retrieval finds nothing.
    let searches = [
        r#"<tool_call>{"name": "knowledge_search", "arguments": {"query": "Mars"}}</tool_call>"#,
        r#"<tool_call>{"name": "knowledge_search", "arguments": {"query": "planet"}}</tool_call>"#,
        "The knowledge base does not say.",
    ];
    let llm = Arc::new(ScriptedLlm::new(searches).with_verdicts([0.1]));
    let mut fixed = chat(&f, &llm);
    Arc::get_mut(&mut fixed.tools).unwrap().max_rounds = 1;
    let (text, outcome) = answer(&fixed, turn(s.clone(), "weather on Mars")).await;
    assert_eq!(text, s.no_recall.reply);
    assert!(outcome.no_recall);
    assert_eq!(outcome.grounded, Some(false));
    assert_eq!(outcome.tool_steps.len(), 2);
    assert!(outcome.tool_steps.iter().all(|s| !s.ok));
    assert!(outcome.citations.is_empty());
    let asked = llm.requests();
    assert_eq!(asked.len(), 3);
    assert_eq!(
        asked[2].tools.as_ref().map(|t| t.choice.clone()),
        Some(crate::llm::ToolChoice::Required)
    );

    // A bot that lets the model answer when nothing is found asks it.
    let llm = Arc::new(ScriptedLlm::new(searches).with_verdicts([0.1]));
    let mut free = chat(&f, &llm);
    Arc::get_mut(&mut free.tools).unwrap().max_rounds = 1;
    let mut model_says = s;
    model_says.no_recall.mode = NoRecallMode::Model;
    let (text, _) = answer(&free, turn(model_says, "weather on Mars")).await;
    assert_eq!(text, "The knowledge base does not say.");
    assert!(llm.requests()[3].tools.is_none());
}

#[tokio::test]
async fn small_talk_is_answered_without_a_search_and_not_judged_against_the_knowledge() {
    use crate::store::bot_tools::BotTool;
    let f = fixture().await;
    let mut s = settings(&f);
    s.tools = vec![BotTool::KnowledgeSearch];
    let llm = Arc::new(ScriptedLlm::new(["Hello! How can I help?"]).with_verdicts([0.3]));
    let mut greeting = turn(s, "hello");
    greeting.trace = true;
    let (text, outcome) = answer(&chat(&f, &llm), greeting).await;
    assert_eq!(text, "Hello! How can I help?");
    assert!(!outcome.no_recall);
    assert_eq!(
        outcome.grounded, None,
        "a greeting is not marked unsupported"
    );
    assert!(outcome.citations.is_empty());
    assert_eq!(
        outcome.trace.as_ref().and_then(|t| t.search_verdict),
        Some(0.3)
    );
    let asked = llm.requests();
    assert_eq!(asked.len(), 2, "the verdict, then the answer");
    assert!(asked[1].tools.is_some(), "the search is still on offer");
}

#[tokio::test]
async fn a_question_the_model_says_needs_the_knowledge_is_searched_first_and_checked() {
    use crate::store::bot_tools::BotTool;
    let f = fixture().await;
    let mut s = settings(&f);
    s.tools = vec![BotTool::KnowledgeSearch, BotTool::Calculator];

    // Searched before the answer, as a bot without the tool: quote, check, citation.
    let llm = Arc::new(ScriptedLlm::new(["Fifteen days [1]."]).with_verdicts([0.9]));
    let (text, outcome) = answer(&chat(&f, &llm), turn(s.clone(), "paid leave days")).await;
    assert_eq!(text, "Fifteen days [1].");
    assert!(outcome.tool_steps.is_empty());
    assert_eq!(outcome.grounded, Some(true));
    assert_eq!(outcome.citations.len(), 1, "{:?}", outcome.citations);
    let asked = llm.requests();
    assert_eq!(asked.len(), 2, "the verdict, then the answer");
    let answering = &asked[1];
    assert!(answering.gate.is_some() && answering.opening.is_some());
    assert!(answering.tools.is_none());
    assert!(answering.messages.last().unwrap().content.contains(LEAVE));

    // Declined by the check: the other tools are offered, not the search again (it
    // would find the passages the check turned down), and calling none, the bot gives
    // its no-recall reply.
    let llm = Arc::new(ScriptedLlm::new(["Mars is sunny today."]).with_verdicts([0.9, 0.1]));
    let (text, outcome) = answer(&chat(&f, &llm), turn(s.clone(), "paid leave on Mars")).await;
    assert_eq!(text, s.no_recall.reply);
    assert!(outcome.no_recall);
    let asked = llm.requests();
    assert_eq!(
        asked.len(),
        3,
        "the verdict, the declined answer, the tools"
    );
    let offered: Vec<String> = asked[2]
        .tools
        .as_ref()
        .unwrap()
        .callable()
        .iter()
        .map(|t| t.name.clone())
        .collect();
    assert_eq!(offered, ["calculator"]);
}

#[tokio::test]
async fn a_follow_up_is_searched_with_the_question_it_leans_on_and_no_model_call() {
    let f = fixture().await;
    let llm = Arc::new(ScriptedLlm::new(["Yes, per night."]).with_verdict(0.9));
    let asked = follow_up(
        settings(&f),
        (
            "What do the travel rules refund for hotel rooms?",
            "Up to 500 yuan [1].",
        ),
        "Is it per night?",
    );
    let (_, outcome) = answer(&chat(&f, &llm), asked).await;
    let trace = outcome.trace.expect("a traced answer");
    assert_eq!(
        trace.rewritten_query.as_deref(),
        Some("What do the travel rules refund for hotel rooms? Is it per night?")
    );
    // The model is asked once: the answer (and its check), nothing before the search.
    let requests = llm.requests();
    assert_eq!(requests.len(), 1, "{requests:?}");
    assert_eq!(
        requests[0].opening.as_deref(),
        Some("Travel: hotel rooms are refunded up to 500 yuan a night [1]."),
    );
}

#[tokio::test]
async fn a_follow_up_is_measured_by_the_question_it_leans_on() {
    let f = fixture().await;
    // Sure enough when the passages hold 40 % of what was searched, not when they hold
    // 20 % of what the follow-up is about.
    let llm = Arc::new(ScriptedLlm::new(["Up to 500 yuan [1]."]).with_verdict(0.53));
    let mut s = settings(&f);
    s.model.quote_first = false;
    let reply = s.no_recall.reply.clone();
    let asked = follow_up(
        s,
        (
            "Which hotel do visitors to the Berlin office book?",
            "The Adlon.",
        ),
        "Are its rooms refunded per night?",
    );
    let (text, outcome) = answer(&chat(&f, &llm), asked).await;
    // The travel passage holds the follow-up's rooms, refunds and nights, and of the
    // earlier question only "hotel": not who stays there.
    assert_eq!(text, reply);
    assert!(outcome.no_recall);
    let trace = outcome.trace.expect("a traced answer");
    let coverage = trace.question_coverage.expect("passages were read");
    assert!((coverage - 0.2).abs() < 1e-6, "{coverage}");
    let gate = llm.requests()[0].gate.clone().expect("the gate is asked");
    assert!(
        (gate.min_proceed - 0.545).abs() < 1e-6,
        "{}",
        gate.min_proceed
    );
    // The check itself is told what "its" refers to.
    let asked = &gate.messages.last().expect("a question").content;
    assert!(
        asked.contains("接着前面的问题：Which hotel do visitors to the Berlin office book?"),
        "{asked}"
    );
}
