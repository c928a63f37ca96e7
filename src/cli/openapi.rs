//! `zhiku openapi`: print the OpenAPI description of the HTTP API, the same document
//! `GET /openapi.json` serves, without starting anything (for client generators and CI).

use clap::Args;

use crate::error::{Error, Result};

/// Arguments of `zhiku openapi`.
#[derive(Debug, Args)]
pub struct OpenapiArgs {
    /// One line instead of indented JSON.
    #[arg(long)]
    pub compact: bool,
}

/// Print the description to stdout.
pub(super) fn run(args: &OpenapiArgs) -> Result<()> {
    let spec = crate::http::openapi_spec();
    let text = if args.compact {
        spec.to_json()
    } else {
        spec.to_pretty_json()
    }
    .map_err(|e| Error::Internal(e.to_string()))?;
    println!("{text}");
    Ok(())
}
