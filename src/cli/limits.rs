//! `zhiku limits`: the limits the server enforces under this configuration, the same JSON
//! as `GET /api/limits` (the CLI's own commands go through the same services, so the same
//! checks).

use super::print_json;
use crate::config::Config;
use crate::error::Result;
use crate::http::limits::LimitsView;
use crate::services::limits::limits;

/// Print the limits as JSON.
pub(super) fn run(config: &Config) -> Result<()> {
    print_json(&LimitsView::from(limits(config)))
}
