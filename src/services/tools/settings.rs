//! A bot's tools as settings: checked when saved, and their secret headers sealed.

use reqwest::header::{HeaderName, HeaderValue};
use serde_json::Value;

use super::http::placeholders;
use crate::error::{Error, Result};
use crate::llm::ToolSpec;
use crate::services::fetch::Fetcher;
use crate::services::secrets::SecretBox;
use crate::store::bot_tools::{BotTool, HttpTool};

/// Most tools one bot may have: each is described to the model in every prompt.
pub const MAX_TOOLS: usize = 16;
/// Longest tool description, in characters.
const MAX_DESCRIPTION_CHARS: usize = 1000;
/// Most headers of one HTTP tool.
const MAX_HEADERS: usize = 16;

fn invalid(message: String) -> Error {
    Error::InvalidInput(message)
}

/// Check a bot's tools: at most [`MAX_TOOLS`], unique names the model can call, and for
/// HTTP tools a description, an http(s) URL template whose `{names}` are parameters, an
/// object schema and valid headers.
pub fn check_tools(tools: &[BotTool]) -> Result<()> {
    if tools.len() > MAX_TOOLS {
        return Err(invalid(format!("a bot may have at most {MAX_TOOLS} tools")));
    }
    for (i, tool) in tools.iter().enumerate() {
        if tools[..i].iter().any(|t| t.name() == tool.name()) {
            return Err(invalid(format!(
                "tools: two tools are named '{}'; each needs a name of its own",
                tool.name()
            )));
        }
        ToolSpec::new(tool.name(), tool.description(), Some(tool.parameters()))
            .map_err(|e| invalid(format!("tools: {e}")))?;
        if let BotTool::Http(http) = tool {
            check_http(http)?;
        }
    }
    Ok(())
}

fn check_http(tool: &HttpTool) -> Result<()> {
    let name = &tool.name;
    if tool.description.trim().is_empty() {
        return Err(invalid(format!(
            "tool '{name}' needs a description: the model decides from it when to call the tool"
        )));
    }
    if tool.description.chars().count() > MAX_DESCRIPTION_CHARS {
        return Err(invalid(format!(
            "the description of tool '{name}' must be at most {MAX_DESCRIPTION_CHARS} characters"
        )));
    }
    let properties = tool.parameters.get("properties").and_then(Value::as_object);
    let mut sample = tool.url.clone();
    for placeholder in placeholders(&tool.url) {
        if !properties.is_some_and(|p| p.contains_key(placeholder)) {
            return Err(invalid(format!(
                "tool '{name}': the URL's {{{placeholder}}} is not one of its parameters"
            )));
        }
        sample = sample.replace(&format!("{{{placeholder}}}"), "x");
    }
    Fetcher::parse(&sample).map_err(|e| invalid(format!("tool '{name}': {e}")))?;
    if tool.headers.len() > MAX_HEADERS {
        return Err(invalid(format!(
            "tool '{name}' may send at most {MAX_HEADERS} headers"
        )));
    }
    for header in &tool.headers {
        if HeaderName::from_bytes(header.name.as_bytes()).is_err() {
            return Err(invalid(format!(
                "tool '{name}': '{}' is not a header name",
                header.name
            )));
        }
        if let Some(value) = &header.value
            && HeaderValue::from_str(value).is_err()
        {
            return Err(invalid(format!(
                "tool '{name}': the value of header '{}' is not valid in a header",
                header.name
            )));
        }
    }
    Ok(())
}

/// Seal the secret headers of `tools` before they are stored: a value given now is
/// sealed; a secret given without a value keeps the one `stored` holds for the same tool
/// and header (what the API shows is the header without its value); one with neither is
/// refused. A sealed value sent by a client is never taken as it is.
pub fn seal_secrets(tools: &mut [BotTool], stored: &[BotTool], secrets: &SecretBox) -> Result<()> {
    for tool in tools.iter_mut() {
        let BotTool::Http(http) = tool else { continue };
        let before = stored.iter().find_map(|t| match t {
            BotTool::Http(old) if old.name == http.name => Some(old),
            _ => None,
        });
        for header in &mut http.headers {
            if !header.secret {
                header.sealed = None;
                continue;
            }
            header.sealed = match header.value.take() {
                Some(value) => Some(secrets.seal(&value)?),
                None => before
                    .and_then(|old| {
                        old.headers
                            .iter()
                            .find(|h| h.secret && h.name == header.name)
                    })
                    .and_then(|h| h.sealed.clone())
                    .ok_or_else(|| {
                        invalid(format!(
                            "tool '{}': the secret header '{}' has no value; give it one",
                            http.name, header.name
                        ))
                    })
                    .map(Some)?,
            };
        }
    }
    Ok(())
}
