//! Calling an HTTP tool: the model's arguments put into the URL template, the rest in the
//! query string (GET, DELETE) or a JSON body (POST, PUT, PATCH), the secret headers
//! opened, one request to addresses checked as a fetched web page's are, and the answer
//! given back as text.

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use reqwest::Method;
use reqwest::header::{HeaderName, HeaderValue};
use serde_json::{Map, Value};

use crate::services::fetch::{Fetcher, error_chain};
use crate::services::secrets::SecretBox;
use crate::store::bot_tools::{HttpMethod, HttpTool};

/// Characters an argument keeps in a URL: RFC 3986's unreserved ones.
const ARGUMENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

/// Call `tool` with `arguments`; the answer's text, or why there is none.
pub(super) async fn call(
    fetcher: &Fetcher,
    secrets: &SecretBox,
    tool: &HttpTool,
    arguments: &Value,
) -> std::result::Result<String, String> {
    let Value::Object(arguments) = arguments else {
        return Err(format!(
            "the arguments must be a JSON object, not {arguments}"
        ));
    };
    let (url, rest) = fill_template(&tool.url, arguments)?;
    let mut url = Fetcher::parse(&url).map_err(|e| e.to_string())?;
    if !tool.method.has_body() && !rest.is_empty() {
        let mut pairs = url.query_pairs_mut();
        for (name, value) in &rest {
            pairs.append_pair(name, &plain(value));
        }
    }
    let client = fetcher
        .pinned_client(&url)
        .await
        .map_err(|e| e.to_string())?;
    let mut request = client.request(method(tool.method), url.clone());
    for header in &tool.headers {
        let value = match (&header.sealed, &header.value) {
            (Some(sealed), _) if header.secret => {
                secrets.open(sealed).map_err(|e| e.to_string())?
            }
            (_, Some(value)) => value.clone(),
            _ => continue,
        };
        let name = HeaderName::from_bytes(header.name.as_bytes())
            .map_err(|_| format!("'{}' is not a header name", header.name))?;
        let value = HeaderValue::from_str(&value)
            .map_err(|_| format!("the value of header '{}' is not valid", header.name))?;
        request = request.header(name, value);
    }
    if tool.method.has_body() {
        request = request.json(&Value::Object(rest));
    }
    let limit_ms = fetcher.timeout.as_millis();
    let too_slow = || {
        format!(
            "{url} did not answer within {limit_ms} ms ({})",
            fetcher.keys.timeout
        )
    };
    let exchange = async {
        let response = request.send().await.map_err(|e| match e.is_timeout() {
            true => too_slow(),
            false => format!("cannot reach {url}: {}", error_chain(&e)),
        })?;
        let status = response.status();
        let body = fetcher
            .read_body(&url, response)
            .await
            .map_err(|e| e.to_string())?;
        Ok::<_, String>((status, body))
    };
    let (status, body) = tokio::time::timeout(fetcher.timeout, exchange)
        .await
        .map_err(|_| too_slow())??;
    let text = readable(&body);
    if status.is_success() {
        Ok(text)
    } else {
        Err(format!("HTTP {status}: {text}"))
    }
}

/// The URL with each `{name}` replaced by that argument (percent-encoded), and the
/// arguments the template did not take.
fn fill_template(
    template: &str,
    arguments: &Map<String, Value>,
) -> std::result::Result<(String, Map<String, Value>), String> {
    let mut url = template.to_string();
    let mut rest = arguments.clone();
    for name in placeholders(template) {
        let value = arguments
            .get(name)
            .filter(|v| !v.is_null())
            .ok_or_else(|| format!("the argument '{name}' is required (the URL needs it)"))?;
        // Encoded, a value holds no brace: a later placeholder cannot be found inside it.
        let encoded = utf8_percent_encode(&plain(value), ARGUMENT).to_string();
        url = url.replace(&format!("{{{name}}}"), &encoded);
        rest.remove(name);
    }
    Ok((url, rest))
}

/// The `{names}` of a URL template, in order.
pub(super) fn placeholders(template: &str) -> Vec<&str> {
    let mut found = Vec::new();
    let mut left = template;
    while let Some(open) = left.find('{') {
        let Some(close) = left[open..].find('}') else {
            break;
        };
        found.push(&left[open + 1..open + close]);
        left = &left[open + close + 1..];
    }
    found
}

/// An argument as text: a string as it is, anything else as JSON.
fn plain(value: &Value) -> String {
    match value {
        Value::String(text) => text.clone(),
        other => other.to_string(),
    }
}

/// A response body as the model reads it: JSON without its indentation (every space is
/// prompt), anything else as text.
fn readable(body: &[u8]) -> String {
    match serde_json::from_slice::<Value>(body) {
        Ok(json) => json.to_string(),
        Err(_) => String::from_utf8_lossy(body).trim().to_string(),
    }
}

fn method(method: HttpMethod) -> Method {
    match method {
        HttpMethod::Get => Method::GET,
        HttpMethod::Post => Method::POST,
        HttpMethod::Put => Method::PUT,
        HttpMethod::Patch => Method::PATCH,
        HttpMethod::Delete => Method::DELETE,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn arguments_fill_the_template_encoded_and_the_rest_is_left() {
        let args = json!({"city": "北京 市", "order_id": 42, "units": "metric"});
        let Value::Object(args) = args else { panic!() };
        let (url, rest) =
            fill_template("https://api.example.com/w/{city}/o/{order_id}", &args).unwrap();
        assert_eq!(
            url,
            "https://api.example.com/w/%E5%8C%97%E4%BA%AC%20%E5%B8%82/o/42"
        );
        assert_eq!(rest.keys().collect::<Vec<_>>(), ["units"]);
        let e = fill_template("https://x.example/{missing}", &args).unwrap_err();
        assert!(e.contains("'missing' is required"), "{e}");
    }

    #[test]
    fn a_slash_in_an_argument_cannot_change_the_path() {
        let Value::Object(args) = json!({"id": "../admin?x=1"}) else {
            panic!()
        };
        let (url, _) = fill_template("https://x.example/orders/{id}", &args).unwrap();
        assert_eq!(url, "https://x.example/orders/..%2Fadmin%3Fx%3D1");
    }
}
