//! Rendering a conversation into the model's prompt text: the chat template stored in the
//! GGUF when llama.cpp knows it, ChatML otherwise (what Qwen and SmolLM use anyway).

use llama_cpp_2::model::{LlamaChatMessage, LlamaChatTemplate, LlamaModel};

use super::ChatMessage;

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
    use crate::llm::Role;

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
