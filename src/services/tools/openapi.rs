//! HTTP tools from an OpenAPI 3 document (JSON or YAML), one per operation, as Coze makes
//! plugins from one: the server URL and path as the URL template (OpenAPI writes path
//! parameters as `{name}` too), the path and query parameters and a JSON request body's
//! properties as the arguments' schema, and an API key the document's security names as
//! a secret header to fill in. Header and cookie parameters are left out: a tool's
//! arguments go in the URL or the body.

use serde_json::{Map, Value, json};

use super::settings::MAX_TOOLS;
use crate::error::{Error, Result};
use crate::store::bot_tools::{HttpMethod, HttpTool, ToolHeader};

/// Longest document read, in bytes.
const MAX_OPENAPI_BYTES: usize = 1 << 20;
/// How deep `$ref`s are followed inside a schema (a recursive schema stops there).
const MAX_REF_DEPTH: usize = 8;

fn invalid(message: String) -> Error {
    Error::InvalidInput(message)
}

/// The operations of `document` as HTTP tools (not yet saved: a secret header has no
/// value until a person gives it one).
pub fn tools_from_openapi(document: &str) -> Result<Vec<HttpTool>> {
    if document.len() > MAX_OPENAPI_BYTES {
        return Err(invalid(format!(
            "the OpenAPI document is larger than {MAX_OPENAPI_BYTES} bytes"
        )));
    }
    let doc: Value = match serde_json::from_str(document) {
        Ok(doc) => doc,
        Err(_) => serde_yaml_ng::from_str(document).map_err(|e| {
            invalid(format!(
                "not an OpenAPI document (neither JSON nor YAML): {e}"
            ))
        })?,
    };
    let version = doc
        .get("openapi")
        .and_then(Value::as_str)
        .unwrap_or_default();
    if !version.starts_with('3') {
        let found = doc
            .get("swagger")
            .and_then(Value::as_str)
            .map_or("no \"openapi\" field".to_string(), |v| {
                format!("Swagger {v}")
            });
        return Err(invalid(format!(
            "only OpenAPI 3 documents can be imported ({found}); convert it first"
        )));
    }
    let base = server_url(&doc)?;
    let key_header = api_key_header(&doc);
    let mut tools = Vec::new();
    let paths = doc.get("paths").and_then(Value::as_object);
    for (path, item) in paths.into_iter().flatten() {
        for (verb, method) in [
            ("get", HttpMethod::Get),
            ("post", HttpMethod::Post),
            ("put", HttpMethod::Put),
            ("patch", HttpMethod::Patch),
            ("delete", HttpMethod::Delete),
        ] {
            let Some(op) = item.get(verb) else { continue };
            tools.push(operation(
                &doc,
                &base,
                path,
                item,
                verb,
                method,
                op,
                key_header.as_deref(),
            ));
        }
    }
    if tools.is_empty() {
        return Err(invalid(
            "the OpenAPI document has no operations under \"paths\"".into(),
        ));
    }
    if tools.len() > MAX_TOOLS {
        return Err(invalid(format!(
            "the OpenAPI document has {} operations and a bot may have at most {MAX_TOOLS} tools: import a document with the ones the bot needs",
            tools.len()
        )));
    }
    Ok(tools)
}

/// `servers[0].url` with its variables' defaults, which must be an absolute http(s) URL.
fn server_url(doc: &Value) -> Result<String> {
    let server = doc.pointer("/servers/0");
    let mut url = server
        .and_then(|s| s.get("url"))
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    for (name, var) in server
        .and_then(|s| s.get("variables"))
        .and_then(Value::as_object)
        .into_iter()
        .flatten()
    {
        if let Some(default) = var.get("default").and_then(Value::as_str) {
            url = url.replace(&format!("{{{name}}}"), default);
        }
    }
    if !(url.starts_with("http://") || url.starts_with("https://")) {
        return Err(invalid(format!(
            "the OpenAPI document needs an absolute server URL in servers[0].url (found {url:?}): the tools call it"
        )));
    }
    Ok(url.trim_end_matches('/').to_string())
}

/// The header of an API key the document's top-level security requires, if any.
fn api_key_header(doc: &Value) -> Option<String> {
    let schemes = doc.pointer("/components/securitySchemes")?.as_object()?;
    let required: Vec<&String> = doc
        .get("security")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_object)
        .flat_map(Map::keys)
        .collect();
    required.into_iter().find_map(|name| {
        let scheme = schemes.get(name)?;
        match scheme.get("type").and_then(Value::as_str)? {
            "apiKey" if scheme.get("in").and_then(Value::as_str) == Some("header") => scheme
                .get("name")
                .and_then(Value::as_str)
                .map(str::to_string),
            "http" => Some("Authorization".to_string()),
            _ => None,
        }
    })
}

#[allow(clippy::too_many_arguments)]
fn operation(
    doc: &Value,
    base: &str,
    path: &str,
    item: &Value,
    verb: &str,
    method: HttpMethod,
    op: &Value,
    key_header: Option<&str>,
) -> HttpTool {
    let text = |key: &str| {
        op.get(key)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .trim()
    };
    let name = match op.get("operationId").and_then(Value::as_str) {
        Some(id) => function_name(id),
        None => function_name(&format!("{verb}_{path}")),
    };
    let mut description = [text("summary"), text("description")]
        .into_iter()
        .filter(|t| !t.is_empty())
        .collect::<Vec<_>>()
        .join(" — ");
    if description.is_empty() {
        description = format!("{} {path}", verb.to_uppercase());
    }
    let description: String = description.chars().take(1000).collect();
    let mut properties = Map::new();
    let mut required: Vec<Value> = Vec::new();
    let parameters = [item.get("parameters"), op.get("parameters")];
    for param in parameters
        .into_iter()
        .flatten()
        .filter_map(Value::as_array)
        .flatten()
    {
        let param = resolve(doc, param, 0);
        let place = param.get("in").and_then(Value::as_str).unwrap_or_default();
        let Some(pname) = param.get("name").and_then(Value::as_str) else {
            continue;
        };
        if place != "path" && place != "query" {
            continue;
        }
        let mut schema = param
            .get("schema")
            .map(|s| resolve(doc, s, 0))
            .unwrap_or_else(|| json!({"type": "string"}));
        if let (Some(d), Some(obj)) = (param.get("description"), schema.as_object_mut()) {
            obj.entry("description").or_insert(d.clone());
        }
        properties.insert(pname.to_string(), schema);
        if place == "path" || param.get("required").and_then(Value::as_bool) == Some(true) {
            required.push(json!(pname));
        }
    }
    if let Some(body) = op.pointer("/requestBody/content/application~1json/schema") {
        let body = resolve(doc, body, 0);
        for (pname, schema) in body
            .get("properties")
            .and_then(Value::as_object)
            .into_iter()
            .flatten()
        {
            properties.insert(pname.clone(), schema.clone());
        }
        if let Some(names) = body.get("required").and_then(Value::as_array) {
            required.extend(names.iter().cloned());
        }
    }
    let mut schema = json!({"type": "object", "properties": properties});
    if !required.is_empty() {
        schema["required"] = Value::Array(required);
    }
    HttpTool {
        name,
        description,
        method,
        url: format!("{base}{path}"),
        parameters: schema,
        headers: key_header
            .map(|h| ToolHeader {
                name: h.to_string(),
                value: None,
                secret: true,
                sealed: None,
            })
            .into_iter()
            .collect(),
    }
}

/// A function name from an operation id or a method and path: letters, digits, `_` and
/// `-` only, at most 64.
fn function_name(raw: &str) -> String {
    let name: String = raw
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect();
    let name = name.trim_matches('_');
    let name: String = name.chars().take(64).collect();
    if name.is_empty() {
        "operation".into()
    } else {
        name
    }
}

/// `value` with the document's local `$ref`s (`#/components/…`) replaced by what they
/// point to, to [`MAX_REF_DEPTH`].
fn resolve(doc: &Value, value: &Value, depth: usize) -> Value {
    match value {
        Value::Object(map) => {
            if let Some(target) = map.get("$ref").and_then(Value::as_str) {
                let found = target.strip_prefix('#').and_then(|p| doc.pointer(p));
                return match found {
                    Some(found) if depth < MAX_REF_DEPTH => resolve(doc, found, depth + 1),
                    _ => json!({}),
                };
            }
            Value::Object(
                map.iter()
                    .map(|(k, v)| (k.clone(), resolve(doc, v, depth)))
                    .collect(),
            )
        }
        Value::Array(items) => Value::Array(items.iter().map(|v| resolve(doc, v, depth)).collect()),
        other => other.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PETSTORE: &str = r#"
openapi: 3.0.3
info: {title: Orders, version: "1"}
servers:
  - url: https://{region}.shop.example.com/v1
    variables: {region: {default: cn}}
security: [{key: []}]
components:
  securitySchemes:
    key: {type: apiKey, in: header, name: X-Api-Key}
  schemas:
    NewOrder:
      type: object
      required: [sku]
      properties:
        sku: {type: string, description: 商品编号}
        count: {type: integer}
paths:
  /orders/{order_id}:
    parameters:
      - {name: order_id, in: path, required: true, schema: {type: string}, description: 订单号}
    get:
      operationId: getOrder
      summary: 查询订单状态
  /orders:
    get:
      summary: List orders
      parameters:
        - {name: status, in: query, schema: {type: string, enum: [paid, shipped]}}
        - {name: X-Trace, in: header, schema: {type: string}}
    post:
      operationId: createOrder
      requestBody:
        content:
          application/json:
            schema: {$ref: '#/components/schemas/NewOrder'}
"#;

    #[test]
    fn each_operation_becomes_a_tool() {
        let tools = tools_from_openapi(PETSTORE).unwrap();
        let names: Vec<&str> = tools.iter().map(|t| t.name.as_str()).collect();
        // Paths in name order (JSON objects here keep no order of their own).
        assert_eq!(names, ["get__orders", "createOrder", "getOrder"]);
        let get = &tools[2];
        assert_eq!(get.url, "https://cn.shop.example.com/v1/orders/{order_id}");
        assert_eq!(get.description, "查询订单状态");
        assert_eq!(
            get.parameters["properties"]["order_id"]["description"],
            "订单号"
        );
        assert_eq!(get.parameters["required"], json!(["order_id"]));
        assert_eq!(get.headers[0].name, "X-Api-Key");
        assert!(get.headers[0].secret && get.headers[0].value.is_none());
        let list = &tools[0];
        assert_eq!(
            list.parameters["properties"]["status"]["enum"],
            json!(["paid", "shipped"])
        );
        assert!(list.parameters["properties"].get("X-Trace").is_none());
        let create = &tools[1];
        assert_eq!(create.method, HttpMethod::Post);
        assert_eq!(
            create.parameters["properties"]["sku"]["description"],
            "商品编号"
        );
        assert_eq!(create.parameters["required"], json!(["sku"]));
        // What it gives passes the checks a saved tool must pass, but for the key's value.
        let as_tools: Vec<_> = tools
            .into_iter()
            .map(crate::store::bot_tools::BotTool::Http)
            .collect();
        super::super::check_tools(&as_tools).unwrap();
    }

    #[test]
    fn what_cannot_be_imported_says_why() {
        for (document, want) in [
            ("swagger: '2.0'\npaths: {}", "Swagger 2.0"),
            ("{not json: [", "neither JSON nor YAML"),
            (
                r#"{"openapi": "3.1.0", "paths": {"/a": {"get": {}}}}"#,
                "servers[0].url",
            ),
            (
                r#"{"openapi": "3.1.0", "servers": [{"url": "https://a.example"}], "paths": {}}"#,
                "no operations",
            ),
        ] {
            let e = tools_from_openapi(document).unwrap_err().to_string();
            assert!(e.contains(want), "{want}: {e}");
        }
    }
}
