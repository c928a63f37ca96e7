//! `/api/tools`: what helps a person give a bot its tools — HTTP tools made from an
//! OpenAPI document, to add to a draft.

use axum::Json;
use serde::{Deserialize, Serialize};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::error::{AppJson, ErrorBody};
use super::openapi::TAG_BOTS;
use crate::app::AppState;
use crate::error::Result;
use crate::services::tools::tools_from_openapi;
use crate::store::bot_tools::BotTool;

/// Routes under `/api/tools`.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(from_openapi))
}

/// Body of `POST /api/tools/openapi`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct OpenApiImport {
    /// The OpenAPI 3 document, JSON or YAML.
    document: String,
}

/// The tools an OpenAPI document describes.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct ImportedTools {
    /// One HTTP tool per operation; a secret header the document's security names has no
    /// value yet.
    tools: Vec<BotTool>,
}

/// HTTP tools from an OpenAPI 3 document, one per operation, to add to a bot's draft
/// (nothing is saved).
#[utoipa::path(post, path = "/tools/openapi", tag = TAG_BOTS, operation_id = "tools_from_openapi",
    request_body = OpenApiImport,
    responses(
        (status = 200, description = "The tools", body = ImportedTools),
        (status = 400, description = "Not an OpenAPI 3 document, or nothing to import", body = ErrorBody),
    ))]
async fn from_openapi(AppJson(body): AppJson<OpenApiImport>) -> Result<Json<ImportedTools>> {
    let tools = tools_from_openapi(&body.document)?;
    Ok(Json(ImportedTools {
        tools: tools.into_iter().map(BotTool::Http).collect(),
    }))
}
