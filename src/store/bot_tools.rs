//! The tools a bot may call while it answers (Coze's plugins): part of a bot's settings,
//! stored with them as JSON. No SQL here; `services::tools` runs them.

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

/// One tool of a bot.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum BotTool {
    /// An HTTP endpoint the server calls with the model's arguments.
    Http(HttpTool),
    /// Today's date and the time now, in the server's time zone.
    CurrentTime,
    /// Arithmetic the model should not do in its head (`(3+4)*2.5`, `sqrt(2)`).
    Calculator,
    /// One read-only SQL SELECT over the knowledge bases' spreadsheets, loaded as tables:
    /// exact counts, sums and averages.
    TableQuery,
    /// A search of the bot's knowledge bases with a query the model writes: the bot
    /// searches when its model decides to, and may search again with other words,
    /// instead of before every answer.
    KnowledgeSearch,
}

/// The function name of the built-in [`BotTool::CurrentTime`].
pub const CURRENT_TIME: &str = "current_time";
/// The function name of the built-in [`BotTool::Calculator`].
pub const CALCULATOR: &str = "calculator";
/// The function name of the built-in [`BotTool::TableQuery`].
pub const TABLE_QUERY: &str = "table_query";
/// The function name of the built-in [`BotTool::KnowledgeSearch`].
pub const KNOWLEDGE_SEARCH: &str = "knowledge_search";

impl BotTool {
    /// The function name the model calls it by.
    pub fn name(&self) -> &str {
        match self {
            Self::Http(tool) => &tool.name,
            Self::CurrentTime => CURRENT_TIME,
            Self::Calculator => CALCULATOR,
            Self::TableQuery => TABLE_QUERY,
            Self::KnowledgeSearch => KNOWLEDGE_SEARCH,
        }
    }

    /// What the model is told the tool does.
    pub fn description(&self) -> &str {
        match self {
            Self::Http(tool) => &tool.description,
            Self::CurrentTime => {
                "今天的日期、星期和现在的时间。Today's date, weekday and the time now."
            }
            // No worked example: the 1.5B copied one's numbers into its own expression.
            Self::Calculator => {
                "计算算术表达式的准确值：用问题里的数字写出表达式（+ - * / ^、括号、sqrt）。Evaluates an arithmetic expression written with the question's numbers."
            }
            // The tables themselves are added by `services::tools` (they depend on the KBs).
            Self::TableQuery => {
                "对知识库里的表格执行一条只读 SQL 查询（SQLite 语法，SELECT），得到准确的行数、合计、平均、最大最小值和筛选结果；问到表格里的数量、总和、平均、排名时调用。Runs one read-only SQL SELECT over the tables below. 表格："
            }
            Self::KnowledgeSearch => {
                "在知识库中检索资料：回答知识库里的事实、数字、人名、规定或文档内容之前调用，用问题的关键词作查询；没找到时可以换个说法再查。Searches the knowledge base for passages."
            }
        }
    }

    /// The JSON schema of its arguments.
    pub fn parameters(&self) -> Value {
        match self {
            Self::Http(tool) => tool.parameters.clone(),
            Self::CurrentTime => json!({"type": "object", "properties": {}}),
            Self::TableQuery => json!({
                "type": "object",
                "properties": {
                    "sql": {
                        "type": "string",
                        "description": "one SELECT statement over the tables, e.g. SELECT SUM(列) FROM 表 WHERE 列 = '值'"
                    }
                },
                "required": ["sql"]
            }),
            Self::KnowledgeSearch => json!({
                "type": "object",
                "properties": {
                    "query": {
                        "type": "string",
                        "description": "what to look for: the question's key words"
                    }
                },
                "required": ["query"]
            }),
            Self::Calculator => json!({
                "type": "object",
                "properties": {
                    "expression": {
                        "type": "string",
                        "description": "the expression, with the question's numbers"
                    }
                },
                "required": ["expression"]
            }),
        }
    }
}

/// HTTP methods a tool may use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "UPPERCASE")]
pub enum HttpMethod {
    /// Arguments not in the URL template go in the query string.
    #[default]
    Get,
    /// Arguments not in the URL template go in a JSON body.
    Post,
    /// As POST.
    Put,
    /// As POST.
    Patch,
    /// As GET.
    Delete,
}

impl HttpMethod {
    /// Whether the arguments left over after the URL template go in a JSON body.
    pub fn has_body(self) -> bool {
        matches!(self, Self::Post | Self::Put | Self::Patch)
    }
}

/// An endpoint the server calls for the model: the one-endpoint form of the UI, or one
/// operation of an OpenAPI document.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(default)]
pub struct HttpTool {
    /// Function name (letters, digits, `_` and `-`; up to 64), unique within the bot.
    pub name: String,
    /// What it does and when to call it: the model decides from this.
    pub description: String,
    /// HTTP method.
    pub method: HttpMethod,
    /// The URL, with `{parameter}` where an argument goes
    /// (`https://api.example.com/orders/{order_id}`).
    pub url: String,
    /// JSON schema of the arguments (an object schema).
    #[schema(value_type = Object)]
    pub parameters: Value,
    /// Headers sent with every call.
    pub headers: Vec<ToolHeader>,
}

impl Default for HttpTool {
    fn default() -> Self {
        Self {
            name: String::new(),
            description: String::new(),
            method: HttpMethod::Get,
            url: String::new(),
            parameters: json!({"type": "object", "properties": {}}),
            headers: Vec::new(),
        }
    }
}

/// A header of an HTTP tool. A secret one (an API key) is kept encrypted and never shown
/// again: the API returns it with `value: null`, and a setting saved with `value: null`
/// keeps the stored secret.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(default)]
pub struct ToolHeader {
    /// Header name.
    pub name: String,
    /// Its value (null for a stored secret).
    pub value: Option<String>,
    /// Keep it encrypted and never return it.
    pub secret: bool,
    /// The encrypted value of a secret header (stored only; never in the API).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(ignore)]
    pub sealed: Option<String>,
}

/// `tools` with every secret's stored form removed: what the API shows.
pub fn redacted(tools: &[BotTool]) -> Vec<BotTool> {
    tools
        .iter()
        .cloned()
        .map(|mut tool| {
            if let BotTool::Http(http) = &mut tool {
                for header in &mut http.headers {
                    header.sealed = None;
                    if header.secret {
                        header.value = None;
                    }
                }
            }
            tool
        })
        .collect()
}
