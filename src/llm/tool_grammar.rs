//! The grammar a local model's tool calls are decoded under, so that every call names an
//! offered tool and its arguments match that tool's JSON schema. llama.cpp's own
//! converter (`json_schema_to_grammar`, the one its server uses) turns the schemas into
//! GBNF; around it go the Hermes-style markers the chat template taught the model
//! ([`CALL_OPEN`] … [`CALL_CLOSE`]).

use serde_json::Value;

use super::tools::{CALL_CLOSE, CALL_OPEN, ToolChoice, ToolUse};
use crate::error::{Error, Result};

/// The rule the converted schema's root becomes.
const BODY_RULE: &str = "tool-call-body";

/// A grammar for a request's tool calls.
#[derive(Debug, Clone, PartialEq)]
pub struct ToolGrammar {
    /// GBNF, its root rule `root`.
    pub gbnf: String,
    /// Whether it applies only once a call begins (the model may answer in text instead:
    /// `tool_choice` auto) or from the first token (a call is required).
    pub lazy: bool,
    /// What begins a call, for a lazy grammar: regular expressions over the reply so far,
    /// the grammar applying from the first group (or the match) on. [`CALL_OPEN`]
    /// anywhere, or a reply that opens with the object of a call to an offered tool, in a
    /// Markdown block or bare (what small models write as often).
    pub triggers: Vec<String>,
}

/// The grammar for `tools`, or `None` when no tool may be called.
pub fn tool_grammar(tools: &ToolUse) -> Result<Option<ToolGrammar>> {
    let callable = tools.callable();
    if callable.is_empty() {
        return Ok(None);
    }
    // Written out by hand rather than with `json!`: serde_json sorts an object's keys, and
    // the converter keeps them in the order given, so "arguments" would have to come
    // before "name" — not what the model writes.
    let bodies: Vec<String> = callable
        .iter()
        .map(|tool| {
            format!(
                r#"{{"type":"object","properties":{{"name":{{"const":{}}},"arguments":{}}},"required":["name","arguments"],"additionalProperties":false}}"#,
                Value::String(tool.name.clone()),
                tool.parameters
            )
        })
        .collect();
    let schema = match bodies.as_slice() {
        [one] => one.clone(),
        _ => format!(r#"{{"oneOf":[{}]}}"#, bodies.join(",")),
    };
    let converted = llama_cpp_2::json_schema_to_grammar(&schema).map_err(|e| {
        Error::InvalidInput(format!(
            "the tools' parameters are not a JSON schema llama.cpp can follow: {e}"
        ))
    })?;
    let mut renamed = false;
    let mut rules: Vec<String> = converted
        .lines()
        .map(|line| match line.strip_prefix("root ::=") {
            Some(rest) => {
                renamed = true;
                format!("{BODY_RULE} ::={rest}")
            }
            None => line.to_string(),
        })
        .collect();
    if !renamed {
        return Err(Error::Llm(
            "llama.cpp's schema converter gave a grammar without a root rule".into(),
        ));
    }
    let call = format!(
        "{} space {BODY_RULE} space {}",
        gbnf_literal(CALL_OPEN),
        gbnf_literal(CALL_CLOSE)
    );
    let tagged = if tools.parallel {
        format!("{call} (space {call})*")
    } else {
        call
    };
    rules.insert(
        0,
        format!(
            "root ::= {tagged} | \"```\" \"json\"? space {BODY_RULE} space \"```\" | {BODY_RULE} | \"{{\" space {BODY_RULE} space \"}}\""
        ),
    );
    if !rules.iter().any(|r| r.starts_with("space ::=")) {
        rules.push(r#"space ::= | " " | "\n"{1,2} [ \t]{0,20}"#.into());
    }
    // Tool names are letters, digits, `_` and `-` (`ToolSpec::new`): nothing to escape.
    let names: Vec<&str> = callable.iter().map(|t| t.name.as_str()).collect();
    // The text a trigger matches is replayed into the grammar, and llama.cpp aborts the
    // process on text its grammar refuses: between the tokens the triggers allow only
    // the whitespace the converter's `space` rule does.
    const SPACE: &str = r"(?: |\n{1,2}[ \t]{0,20})?";
    let named = format!(
        r#"\{{{SPACE}"name"{SPACE}:{SPACE}"(?:{})""#,
        names.join("|")
    );
    let triggers = vec![
        CALL_OPEN.to_string(),
        format!(r"^\s*(```(?:json)?{SPACE}{named})[\s\S]*$"),
        // A bare object may come with its braces doubled (see `CallReader`).
        format!(r"^\s*(\{{?{SPACE}{named})[\s\S]*$"),
    ];
    Ok(Some(ToolGrammar {
        gbnf: rules.join("\n"),
        lazy: tools.choice == ToolChoice::Auto,
        triggers,
    }))
}

/// `text` as a GBNF string literal.
fn gbnf_literal(text: &str) -> String {
    format!("\"{}\"", text.replace('\\', "\\\\").replace('"', "\\\""))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::llm::tools::ToolSpec;
    use serde_json::json;

    fn weather() -> ToolSpec {
        ToolSpec::new(
            "get_weather",
            "Weather now",
            Some(json!({"type": "object", "properties": {"location": {"type": "string"}}, "required": ["location"]})),
        )
        .unwrap()
    }

    #[test]
    fn no_grammar_when_no_tool_may_be_called() {
        let tools = ToolUse::new(vec![weather()], ToolChoice::None, true).unwrap();
        assert_eq!(tool_grammar(&tools).unwrap(), None);
    }

    #[test]
    fn a_required_call_is_constrained_from_the_first_token() {
        let tools = ToolUse::new(vec![weather()], ToolChoice::Required, false).unwrap();
        let grammar = tool_grammar(&tools).unwrap().unwrap();
        assert!(!grammar.lazy);
        assert!(
            grammar.gbnf.starts_with(
                "root ::= \"<tool_call>\" space tool-call-body space \"</tool_call>\" | \"```\""
            ),
            "{}",
            grammar.gbnf
        );
        assert!(grammar.gbnf.contains("get_weather"), "{}", grammar.gbnf);
        // The name comes first, as the model writes it.
        let body = grammar
            .gbnf
            .lines()
            .find(|l| l.starts_with("tool-call-body ::="))
            .unwrap();
        assert!(
            body.find("name").unwrap() < body.find("arguments").unwrap(),
            "{body}"
        );
        assert!(grammar.gbnf.contains("location"), "{}", grammar.gbnf);
        let auto = ToolUse::new(vec![weather()], ToolChoice::Auto, true).unwrap();
        let grammar = tool_grammar(&auto).unwrap().unwrap();
        assert!(
            grammar.lazy && grammar.gbnf.contains(")*"),
            "{}",
            grammar.gbnf
        );
        assert!(
            grammar.triggers[1].contains(r#""(?:get_weather)""#),
            "{:?}",
            grammar.triggers
        );
    }
}
