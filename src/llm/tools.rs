//! OpenAI tool calling in the language model's terms: the functions a request offers
//! ([`ToolSpec`], [`ToolUse`]), the calls a model makes ([`ToolCall`]), and reading those
//! calls out of generated text ([`CallReader`]).
//!
//! Models trained for tool calling with a Hermes-style chat template (Qwen2.5, and the
//! many fine-tunes that copied its format) write each call as
//! `<tool_call>\n{"name": …, "arguments": {…}}\n</tool_call>`. Small ones, the default
//! Qwen2.5-Coder-1.5B among them, as often open their reply with the same object in a
//! Markdown block (`` ```json ``) or bare; that is read as a call too when it names an
//! offered tool. The local engine constrains a call, once begun, with a grammar built from
//! the tools' JSON schemas (`tool_grammar`), so it always parses; [`CallReader`] turns
//! the text back into calls. A remote server does this itself and returns calls as
//! OpenAI does.

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::error::{Error, Result};

/// What opens a call in the generated text.
pub const CALL_OPEN: &str = "<tool_call>";
/// What closes it.
pub const CALL_CLOSE: &str = "</tool_call>";

/// Most tools one request may offer (OpenAI's limit).
pub const MAX_TOOLS: usize = 128;

/// A function the model may call: OpenAI's `tools[].function`.
#[derive(Debug, Clone, PartialEq)]
pub struct ToolSpec {
    /// Its name: letters, digits, `_` and `-`, at most 64.
    pub name: String,
    /// What it does, for the model.
    pub description: String,
    /// Its arguments as a JSON schema of an object.
    pub parameters: Value,
}

impl ToolSpec {
    /// A checked tool: a usable name, and parameters that are a JSON schema of an object
    /// (none: no arguments).
    pub fn new(name: &str, description: &str, parameters: Option<Value>) -> Result<Self> {
        let valid_name = !name.is_empty()
            && name.len() <= 64
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
        if !valid_name {
            return Err(Error::InvalidInput(format!(
                "tool name '{name}' must be 1 to 64 letters, digits, '_' or '-'"
            )));
        }
        let parameters = match parameters {
            None | Some(Value::Null) => json!({"type": "object", "properties": {}}),
            Some(Value::Object(schema)) => {
                if schema.get("type").is_some_and(|t| t != "object") {
                    return Err(Error::InvalidInput(format!(
                        "the parameters of tool '{name}' must be a JSON schema of type object"
                    )));
                }
                Value::Object(schema)
            }
            Some(_) => {
                return Err(Error::InvalidInput(format!(
                    "the parameters of tool '{name}' must be a JSON schema object"
                )));
            }
        };
        Ok(Self {
            name: name.to_string(),
            description: description.to_string(),
            parameters,
        })
    }

    /// As OpenAI's `tools[]` entry (what chat templates and remote servers read).
    pub fn to_openai(&self) -> Value {
        json!({"type": "function", "function": {
            "name": self.name,
            "description": self.description,
            "parameters": self.parameters,
        }})
    }
}

/// Whether and which tool the model must call: OpenAI's `tool_choice`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ToolChoice {
    /// The model decides between answering and calling.
    Auto,
    /// The model answers in text.
    None,
    /// The model calls at least one tool.
    Required,
    /// The model calls this tool.
    Function(String),
}

/// The tools of one request and how they may be used.
#[derive(Debug, Clone, PartialEq)]
pub struct ToolUse {
    /// The functions offered.
    pub tools: Vec<ToolSpec>,
    /// Whether one must be called.
    pub choice: ToolChoice,
    /// Whether one reply may call several (OpenAI's `parallel_tool_calls`).
    pub parallel: bool,
}

impl ToolUse {
    /// Checked: at most [`MAX_TOOLS`], distinct names, and a named choice among them.
    pub fn new(tools: Vec<ToolSpec>, choice: ToolChoice, parallel: bool) -> Result<Self> {
        if tools.len() > MAX_TOOLS {
            return Err(Error::InvalidInput(format!(
                "at most {MAX_TOOLS} tools may be given"
            )));
        }
        for (i, tool) in tools.iter().enumerate() {
            if tools[..i].iter().any(|t| t.name == tool.name) {
                return Err(Error::InvalidInput(format!(
                    "tool '{}' is given twice",
                    tool.name
                )));
            }
        }
        if choice != ToolChoice::None && choice != ToolChoice::Auto && tools.is_empty() {
            return Err(Error::InvalidInput(
                "tool_choice asks for a tool call but no tools are given".into(),
            ));
        }
        if let ToolChoice::Function(name) = &choice
            && !tools.iter().any(|t| &t.name == name)
        {
            return Err(Error::InvalidInput(format!(
                "tool_choice names '{name}', which is not among the tools"
            )));
        }
        Ok(Self {
            tools,
            choice,
            parallel,
        })
    }

    /// A reader of the calls of a reply to this request.
    pub fn reader(&self) -> CallReader {
        CallReader::new(self.callable().iter().map(|t| t.name.clone()).collect())
    }

    /// The tools the model may call now: none when the choice is `none`, only the named
    /// one when one is named.
    pub fn callable(&self) -> Vec<&ToolSpec> {
        match &self.choice {
            ToolChoice::None => Vec::new(),
            ToolChoice::Function(name) => self.tools.iter().filter(|t| &t.name == name).collect(),
            ToolChoice::Auto | ToolChoice::Required => self.tools.iter().collect(),
        }
    }
}

/// One call the model made: OpenAI's `tool_calls[]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(into = "OpenAiCall", try_from = "OpenAiCall")]
pub struct ToolCall {
    /// Its id, which the tool's result names (`call_…`).
    pub id: String,
    /// The function.
    pub name: String,
    /// Its arguments, a JSON object as text.
    pub arguments: String,
}

impl ToolCall {
    /// A call with a fresh id.
    pub fn new(name: impl Into<String>, arguments: impl Into<String>) -> Self {
        Self {
            id: format!("call_{}", &uuid::Uuid::new_v4().simple().to_string()[..24]),
            name: name.into(),
            arguments: arguments.into(),
        }
    }

    /// The arguments as JSON (as chat templates want them); text that is not JSON stays
    /// a string.
    pub fn arguments_json(&self) -> Value {
        serde_json::from_str(&self.arguments).unwrap_or_else(|_| json!(self.arguments))
    }
}

/// A call as OpenAI writes it.
#[derive(Serialize, Deserialize)]
struct OpenAiCall {
    id: String,
    #[serde(rename = "type", default = "function_type")]
    kind: String,
    function: OpenAiFunction,
}

#[derive(Serialize, Deserialize)]
struct OpenAiFunction {
    name: String,
    #[serde(default)]
    arguments: String,
}

fn function_type() -> String {
    "function".into()
}

impl From<ToolCall> for OpenAiCall {
    fn from(call: ToolCall) -> Self {
        Self {
            id: call.id,
            kind: function_type(),
            function: OpenAiFunction {
                name: call.name,
                arguments: call.arguments,
            },
        }
    }
}

impl TryFrom<OpenAiCall> for ToolCall {
    type Error = String;

    fn try_from(call: OpenAiCall) -> std::result::Result<Self, String> {
        if call.kind != "function" {
            return Err(format!(
                "tool call type must be 'function', not '{}'",
                call.kind
            ));
        }
        Ok(Self {
            id: call.id,
            name: call.function.name,
            arguments: call.function.arguments,
        })
    }
}

/// A piece of generated text, read: answer text or a complete call.
#[derive(Debug, Clone, PartialEq)]
pub enum Piece {
    /// Text of the answer.
    Text(String),
    /// A call.
    Call(ToolCall),
}

impl From<Piece> for super::LlmEvent {
    fn from(piece: Piece) -> Self {
        match piece {
            Piece::Text(t) => Self::Token(t),
            Piece::Call(c) => Self::ToolCall(c),
        }
    }
}

/// Reads calls out of generated text as it streams: text outside calls passes through
/// at once, except an end that may be the start of [`CALL_OPEN`]; a call comes out when
/// its [`CALL_CLOSE`] arrives. A call whose body is not `{"name": …, "arguments": …}`
/// comes out as the text it was, so nothing generated is lost.
#[derive(Debug, Default)]
pub struct CallReader {
    pending: String,
    in_call: bool,
    calls: usize,
    /// Whether answer text has been given out (a call in a block counts only before).
    answered: bool,
    /// The tools a call written in a block or bare may name.
    names: Vec<String>,
}

impl CallReader {
    /// A reader of calls to the tools called `names`.
    pub fn new(names: Vec<String>) -> Self {
        Self {
            names,
            ..Self::default()
        }
    }

    /// Calls read so far.
    pub fn calls(&self) -> usize {
        self.calls
    }

    /// Read `text`; what is complete comes out.
    pub fn push(&mut self, text: &str) -> Vec<Piece> {
        self.pending.push_str(text);
        let mut out = Vec::new();
        if !self.answered && self.calls == 0 && !self.in_call {
            match self.opening_call() {
                Opening::Undecided => return out,
                Opening::Call(call, end) => {
                    self.pending.drain(..end);
                    self.calls += 1;
                    out.push(Piece::Call(call));
                }
                Opening::Text => {}
            }
        }
        loop {
            if self.in_call {
                let Some(end) = self.pending.find(CALL_CLOSE) else {
                    break;
                };
                let body = self.pending[..end].to_string();
                self.pending.drain(..end + CALL_CLOSE.len());
                self.in_call = false;
                match parse_call(&body) {
                    Some(call) => {
                        self.calls += 1;
                        out.push(Piece::Call(call));
                    }
                    None => self.text(format!("{CALL_OPEN}{body}{CALL_CLOSE}"), &mut out),
                }
            } else if let Some(start) = self.pending.find(CALL_OPEN) {
                let before: String = self.pending.drain(..start).collect();
                self.text(before, &mut out);
                self.pending.drain(..CALL_OPEN.len());
                self.in_call = true;
            } else {
                let keep = partial_suffix(&self.pending, CALL_OPEN);
                let ready: String = self.pending.drain(..self.pending.len() - keep).collect();
                self.text(ready, &mut out);
                break;
            }
        }
        out
    }

    /// The end of the text: what was held back comes out as text (an unclosed call
    /// included).
    pub fn finish(&mut self) -> Vec<Piece> {
        let mut rest = std::mem::take(&mut self.pending);
        if std::mem::take(&mut self.in_call) {
            rest.insert_str(0, CALL_OPEN);
        }
        let mut out = Vec::new();
        self.text(rest, &mut out);
        out
    }

    /// Text between or after calls is only the whitespace that separates them.
    fn text(&mut self, text: String, out: &mut Vec<Piece>) {
        let skip = text.is_empty() || (self.calls > 0 && text.trim().is_empty());
        if !skip {
            self.answered |= !text.trim().is_empty();
            out.push(Piece::Text(text));
        }
    }

    /// Whether the reply so far opens with a call in a Markdown block or bare JSON.
    fn opening_call(&self) -> Opening {
        let text = self.pending.trim_start();
        let lead = self.pending.len() - text.len();
        if text.is_empty() {
            return Opening::Undecided;
        }
        if "```".starts_with(text) {
            return Opening::Undecided;
        }
        let (body, end) = if let Some(rest) = text.strip_prefix("```") {
            if rest.len() < 6 && "json\n".starts_with(rest.trim_end_matches(' ')) {
                return Opening::Undecided;
            }
            let Some(open) = rest.find('\n') else {
                return Opening::Undecided;
            };
            if !matches!(rest[..open].trim(), "" | "json") {
                return Opening::Text;
            }
            let Some(close) = rest[open..].find("```") else {
                return Opening::Undecided;
            };
            (&rest[open..open + close], 3 + open + close + 3)
        } else if text.starts_with('{') {
            match json_end(text) {
                // `{{"name": …}}`: Qwen2.5's GGUF template shows the call's form with its
                // braces doubled (a Jinja escape left in a string), and models copy it.
                Some(end) if text.starts_with("{{") => (&text[1..end - 1], end),
                Some(end) => (&text[..end], end),
                None => return Opening::Undecided,
            }
        } else {
            return Opening::Text;
        };
        match parse_call(body) {
            Some(call) if self.names.contains(&call.name) => Opening::Call(call, lead + end),
            _ => Opening::Text,
        }
    }
}

/// What the start of a reply is.
enum Opening {
    /// Not known yet: more text is needed.
    Undecided,
    /// A call, and where its text ends.
    Call(ToolCall, usize),
    /// Answer text.
    Text,
}

/// The end of the JSON object `text` opens with, once it is complete.
fn json_end(text: &str) -> Option<usize> {
    let mut depth = 0usize;
    let mut in_string = false;
    let mut escaped = false;
    for (i, c) in text.char_indices() {
        match (in_string, c) {
            (true, _) if escaped => escaped = false,
            (true, '\\') => escaped = true,
            (true, '"') => in_string = false,
            (true, _) => {}
            (false, '"') => in_string = true,
            (false, '{' | '[') => depth += 1,
            (false, '}' | ']') => {
                depth = depth.checked_sub(1)?;
                if depth == 0 {
                    return Some(i + 1);
                }
            }
            (false, _) => {}
        }
    }
    None
}

/// `{"name": …, "arguments": …}` as a call; the arguments kept as JSON text.
fn parse_call(body: &str) -> Option<ToolCall> {
    let value: Value = serde_json::from_str(body.trim()).ok()?;
    let name = value.get("name")?.as_str()?;
    let arguments = match value.get("arguments") {
        None | Some(Value::Null) => "{}".to_string(),
        Some(Value::String(text)) => text.clone(),
        Some(other) => other.to_string(),
    };
    Some(ToolCall::new(name, arguments))
}

/// Bytes at the end of `text` that begin `marker` (and may be completed by the next text).
fn partial_suffix(text: &str, marker: &str) -> usize {
    (1..marker.len().min(text.len() + 1))
        .rev()
        .find(|&n| {
            text.is_char_boundary(text.len() - n) && marker.starts_with(&text[text.len() - n..])
        })
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(chunks: &[&str]) -> Vec<Piece> {
        let mut reader = CallReader::new(vec!["get_weather".into(), "now".into()]);
        let mut out: Vec<Piece> = chunks.iter().flat_map(|c| reader.push(c)).collect();
        out.extend(reader.finish());
        out
    }

    fn texts(pieces: &[Piece]) -> String {
        pieces
            .iter()
            .filter_map(|p| match p {
                Piece::Text(t) => Some(t.as_str()),
                Piece::Call(_) => None,
            })
            .collect()
    }

    #[test]
    fn text_without_calls_passes_through() {
        let pieces = read(&["北京今天", "<b>晴</b>", " <tool"]);
        assert_eq!(texts(&pieces), "北京今天<b>晴</b> <tool");
    }

    #[test]
    fn calls_split_across_chunks_are_read_whole() {
        let pieces = read(&[
            "<tool_",
            "call>\n{\"name\": \"get_weather\", \"argu",
            "ments\": {\"location\": \"北京\"}}\n</tool_call>\n<tool_call>\n{\"name\": \"now\", \"arguments\": {}}\n</tool_call>",
        ]);
        let calls: Vec<&ToolCall> = pieces
            .iter()
            .filter_map(|p| match p {
                Piece::Call(c) => Some(c),
                Piece::Text(_) => None,
            })
            .collect();
        assert_eq!(calls.len(), 2, "{pieces:?}");
        assert_eq!(calls[0].name, "get_weather");
        assert_eq!(calls[0].arguments, r#"{"location":"北京"}"#);
        assert_eq!(calls[1].arguments, "{}");
        assert!(calls[0].id.starts_with("call_") && calls[0].id != calls[1].id);
        assert_eq!(texts(&pieces), "", "{pieces:?}");
    }

    #[test]
    fn a_reply_that_opens_with_a_call_in_a_block_or_bare_is_a_call() {
        for reply in [
            "```json\n{\n  \"name\": \"get_weather\",\n  \"arguments\": {\"location\": \"{北京}\"}\n}\n```",
            " {\"name\": \"get_weather\", \"arguments\": {\"location\": \"{北京}\"}}",
            "{{\"name\": \"get_weather\", \"arguments\": {\"location\": \"{北京}\"}}}",
        ] {
            let chunks: Vec<String> = reply.chars().map(String::from).collect();
            let chunks: Vec<&str> = chunks.iter().map(String::as_str).collect();
            let pieces = read(&chunks);
            assert_eq!(pieces.len(), 1, "{pieces:?}");
            let Piece::Call(call) = &pieces[0] else {
                panic!("{pieces:?}");
            };
            assert_eq!(call.arguments, r#"{"location":"{北京}"}"#);
        }
        // Code that is not a call of an offered tool, or comes after text, is text.
        for reply in [
            "```json\n{\"name\": \"other\", \"arguments\": {}}\n```",
            "```python\nprint(1)\n```",
            "如下：{\"name\": \"now\", \"arguments\": {}}",
            "{\"a\": 1} 是一个对象",
        ] {
            assert_eq!(texts(&read(&[reply])), reply);
        }
    }

    #[test]
    fn a_call_that_does_not_parse_stays_text() {
        let pieces = read(&["好的<tool_call>not json</tool_call>", "<tool_call>{\"na"]);
        assert_eq!(
            texts(&pieces),
            "好的<tool_call>not json</tool_call><tool_call>{\"na"
        );
    }

    #[test]
    fn calls_serialise_as_openai_writes_them() {
        let call = ToolCall {
            id: "call_1".into(),
            name: "f".into(),
            arguments: "{\"a\":1}".into(),
        };
        let value = serde_json::to_value(&call).unwrap();
        assert_eq!(
            value,
            json!({"id": "call_1", "type": "function", "function": {"name": "f", "arguments": "{\"a\":1}"}})
        );
        assert_eq!(serde_json::from_value::<ToolCall>(value).unwrap(), call);
    }

    #[test]
    fn bad_tools_are_refused_with_the_reason() {
        assert!(ToolSpec::new("get weather", "", None).is_err());
        assert!(ToolSpec::new("f", "", Some(json!({"type": "string"}))).is_err());
        let f = ToolSpec::new("f", "", None).unwrap();
        assert_eq!(f.parameters["type"], "object");
        let twice = ToolUse::new(vec![f.clone(), f.clone()], ToolChoice::Auto, true);
        assert!(twice.is_err());
        let unknown = ToolUse::new(vec![f.clone()], ToolChoice::Function("g".into()), true);
        assert!(unknown.unwrap_err().to_string().contains("'g'"));
        let none = ToolUse::new(vec![f], ToolChoice::None, true).unwrap();
        assert!(none.callable().is_empty());
    }
}
