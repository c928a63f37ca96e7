//! `zhiku kb create|list|delete`.

use clap::Subcommand;

use super::{print_json, reader_state, writer_state};
use crate::config::Config;
use crate::error::Result;
use crate::services::knowledge::CreateKb;

/// Knowledge base commands.
#[derive(Debug, Subcommand)]
pub enum KbCommand {
    /// Create a knowledge base.
    Create {
        /// Its name.
        name: String,
        /// A description.
        #[arg(long, default_value = "")]
        description: String,
    },
    /// List knowledge bases.
    List {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Delete a knowledge base and everything in it.
    Delete {
        /// Name or id.
        name: String,
    },
}

pub(super) async fn run(config: Config, cmd: KbCommand) -> Result<()> {
    match cmd {
        KbCommand::Create { name, description } => {
            // Creating only writes SQLite, which is safe beside a running server.
            let (state, _lock) = reader_state(config).await?;
            let kb = state
                .knowledge
                .create_kb(CreateKb {
                    name,
                    description,
                    ..CreateKb::default()
                })
                .await?;
            println!("created knowledge base '{}' ({})", kb.name, kb.id);
        }
        KbCommand::List { json } => {
            let (state, _lock) = reader_state(config).await?;
            let kbs = state.knowledge.list_kbs().await?;
            if json {
                return print_json(&kbs);
            }
            if kbs.is_empty() {
                println!("no knowledge bases yet; create one with `zhiku kb create NAME`");
            }
            for kb in kbs {
                println!(
                    "{:<24} {:>5} docs {:>7} chunks  {}  {}",
                    kb.name, kb.document_count, kb.chunk_count, kb.embedding_model, kb.id
                );
            }
        }
        KbCommand::Delete { name } => {
            let (state, _lock) = writer_state(config).await?;
            state.knowledge.delete_kb(&name).await?;
            println!("deleted knowledge base '{name}'");
        }
    }
    Ok(())
}
