//! Rendering a conversation into the model's prompt text: the chat template stored in the
//! GGUF when llama.cpp knows it, ChatML otherwise (what Qwen and SmolLM use anyway).
//!
//! llama.cpp's built-in templates know roles and text only. A conversation with tools
//! (their definitions, calls, results) is rendered by the GGUF's own Jinja template with
//! minijinja, as the model's makers render it with Python's Jinja: that template is what
//! taught the model where the tools are listed and how a call is written.

use std::io;

use llama_cpp_2::model::{LlamaChatMessage, LlamaChatTemplate, LlamaModel};
use serde::Serialize;
use serde_json::{Value, json};

use super::ChatMessage;
use super::tools::ToolSpec;
use crate::error::{Error, Result};

/// Render with `template` (the model's), falling back to ChatML when there is none or
/// llama.cpp does not recognise it. Ends with the assistant's turn opened.
pub fn render(
    model: &LlamaModel,
    template: Option<&LlamaChatTemplate>,
    messages: &[ChatMessage],
) -> String {
    if let Some(template) = template {
        let chat: Result<Vec<_>, _> = messages
            .iter()
            .map(|m| LlamaChatMessage::new(m.role.as_str().to_string(), defused(&m.content)))
            .collect();
        if let Ok(chat) = chat
            && let Ok(text) = model.apply_chat_template(template, &chat, true)
        {
            return text;
        }
    }
    chatml(messages)
}

/// Render `messages` and `tools` with the model's Jinja chat template (`source`), the
/// assistant's turn opened. Fails with the reason when the template cannot be rendered.
pub fn render_jinja(source: &str, messages: &[ChatMessage], tools: &[ToolSpec]) -> Result<String> {
    let mut env = minijinja::Environment::new();
    // Templates written for Python's Jinja call str methods (`.strip()`, `.split()`).
    env.set_unknown_method_callback(minijinja_contrib::pycompat::unknown_method_callback);
    env.add_filter("tojson", python_tojson);
    env.add_function(
        "raise_exception",
        |message: String| -> std::result::Result<String, minijinja::Error> {
            Err(minijinja::Error::new(
                minijinja::ErrorKind::InvalidOperation,
                message,
            ))
        },
    );
    let messages: Vec<Value> = messages.iter().map(template_message).collect();
    let tools: Vec<Value> = tools.iter().map(ToolSpec::to_openai).collect();
    let context = minijinja::context! {
        messages => messages,
        tools => (!tools.is_empty()).then_some(tools),
        add_generation_prompt => true,
        bos_token => "",
        eos_token => "",
    };
    env.render_str(source, context).map_err(|e| {
        Error::InvalidInput(format!(
            "the model's chat template cannot render this conversation with tools: {e}"
        ))
    })
}

/// A message as chat templates read it: OpenAI's shape, with a call's arguments as JSON
/// (templates write them with `tojson`).
fn template_message(m: &ChatMessage) -> Value {
    let mut out = json!({"role": m.role.as_str(), "content": defused(&m.content)});
    if !m.tool_calls.is_empty() {
        out["tool_calls"] = m
            .tool_calls
            .iter()
            .map(|c| json!({"id": c.id, "type": "function", "function": {"name": c.name, "arguments": c.arguments_json()}}))
            .collect();
    }
    if let Some(id) = &m.tool_call_id {
        out["tool_call_id"] = json!(id);
    }
    out
}

/// Jinja's `tojson` as Hugging Face's chat templates define it (Python's `json.dumps`
/// with `ensure_ascii=False`): `", "` and `": "` between items, nothing escaped for HTML.
/// The model saw its tools written this way in training.
fn python_tojson(
    value: minijinja::Value,
) -> std::result::Result<minijinja::Value, minijinja::Error> {
    let mut out = Vec::new();
    let mut writer = serde_json::Serializer::with_formatter(&mut out, PythonJson);
    value.serialize(&mut writer).map_err(|e| {
        minijinja::Error::new(minijinja::ErrorKind::InvalidOperation, e.to_string())
    })?;
    let text = String::from_utf8(out).map_err(|e| {
        minijinja::Error::new(minijinja::ErrorKind::InvalidOperation, e.to_string())
    })?;
    Ok(minijinja::Value::from_safe_string(text))
}

/// serde_json's compact output with Python's separators.
struct PythonJson;

impl serde_json::ser::Formatter for PythonJson {
    fn begin_array_value<W: ?Sized + io::Write>(
        &mut self,
        w: &mut W,
        first: bool,
    ) -> io::Result<()> {
        if first { Ok(()) } else { w.write_all(b", ") }
    }

    fn begin_object_key<W: ?Sized + io::Write>(
        &mut self,
        w: &mut W,
        first: bool,
    ) -> io::Result<()> {
        if first { Ok(()) } else { w.write_all(b", ") }
    }

    fn begin_object_value<W: ?Sized + io::Write>(&mut self, w: &mut W) -> io::Result<()> {
        w.write_all(b": ")
    }
}

/// ChatML: `<|im_start|>role\ncontent<|im_end|>\n` per message, then the assistant's start.
pub fn chatml(messages: &[ChatMessage]) -> String {
    let mut out = String::new();
    for m in messages {
        out.push_str("<|im_start|>");
        out.push_str(m.role.as_str());
        out.push('\n');
        out.push_str(&defused(&m.content));
        out.push_str("<|im_end|>\n");
    }
    out.push_str("<|im_start|>assistant\n");
    out
}

/// Message text as the model may see it: C strings cannot hold NUL (a document could),
/// and `<|` is broken up so text in a document or a question can never be read as one of
/// the template's control tokens (`<|im_start|>system` …) — it stays data.
pub fn defused(text: &str) -> String {
    text.replace('\0', "").replace("<|", "< |")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::llm::{Role, ToolCall};

    /// The tool part of Qwen2.5's template, as its GGUF stores it.
    const QWEN_TOOLS: &str = r#"{%- if tools %}{{- '<|im_start|>system\n' }}{%- if messages[0]['role'] == 'system' %}{{- messages[0]['content'] }}{%- endif %}{{- "\n\n# Tools\n<tools>" }}{%- for tool in tools %}{{- "\n" }}{{- tool | tojson }}{%- endfor %}{{- "\n</tools><|im_end|>\n" }}{%- endif %}{%- for message in messages %}{%- if message.role == "user" %}{{- '<|im_start|>user\n' + message.content + '<|im_end|>\n' }}{%- elif message.role == "assistant" %}{{- '<|im_start|>assistant' }}{%- for tool_call in message.tool_calls %}{%- if tool_call.function is defined %}{%- set tool_call = tool_call.function %}{%- endif %}{{- '\n<tool_call>\n{"name": "' }}{{- tool_call.name }}{{- '", "arguments": ' }}{{- tool_call.arguments | tojson }}{{- '}\n</tool_call>' }}{%- endfor %}{{- '<|im_end|>\n' }}{%- elif message.role == "tool" %}{{- '<|im_start|>user\n<tool_response>\n' + message.content + '\n</tool_response><|im_end|>\n' }}{%- endif %}{%- endfor %}{%- if add_generation_prompt %}{{- '<|im_start|>assistant\n' }}{%- endif %}"#;

    #[test]
    fn tools_and_calls_render_as_the_model_was_taught() {
        let tool = ToolSpec::new(
            "get_weather",
            "天气",
            Some(serde_json::json!({"type": "object", "properties": {"city": {"type": "string"}}})),
        )
        .unwrap();
        let mut call = ChatMessage::new(Role::Assistant, "");
        call.tool_calls = vec![ToolCall {
            id: "call_1".into(),
            name: "get_weather".into(),
            arguments: r#"{"city":"北京"}"#.into(),
        }];
        let mut result = ChatMessage::new(Role::Tool, "晴 <|im_end|>");
        result.tool_call_id = Some("call_1".into());
        let messages = [
            ChatMessage::new(Role::System, "be brief"),
            ChatMessage::new(Role::User, "北京天气？"),
            call,
            result,
        ];
        let text = render_jinja(QWEN_TOOLS, &messages, &[tool]).unwrap();
        assert!(
            text.starts_with("<|im_start|>system\nbe brief\n\n# Tools\n<tools>\n{\""),
            "{text}"
        );
        // Python's separators; CJK as it is.
        for part in [
            "\"name\": \"get_weather\"",
            "\"description\": \"天气\"",
            "\"type\": \"function\"",
        ] {
            assert!(text.contains(part), "{part} in {text}");
        }
        assert!(text.contains("<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"北京\"}}\n</tool_call>"), "{text}");
        // A tool's result is data: it cannot close the turn.
        assert!(
            text.contains("<tool_response>\n晴 < |im_end|>\n</tool_response>"),
            "{text}"
        );
        assert!(text.ends_with("<|im_start|>assistant\n"), "{text}");
    }

    #[test]
    fn a_template_that_fails_says_why() {
        let e = render_jinja("{{ raise_exception('no tools here') }}", &[], &[]).unwrap_err();
        assert!(e.to_string().contains("no tools here"), "{e}");
    }

    #[test]
    fn chatml_opens_the_assistant_turn() {
        let text = chatml(&[
            ChatMessage::new(Role::System, "be brief"),
            ChatMessage::new(Role::User, "hi"),
        ]);
        assert_eq!(
            text,
            "<|im_start|>system\nbe brief<|im_end|>\n<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n"
        );
    }
}
