//! How chunks are sized when the model runs on another server (`backend = "remote"`),
//! where its tokenizer does not run.
//!
//! The splitter needs a token count that does not fall short of the model's: a chunk
//! counted too small is cut off by the server (or refused: text-embeddings-inference
//! answers 413 past the window unless told to truncate). So:
//!
//! - when the model's folder under `models_dir` has its `tokenizer.json` (the same files the
//!   local backend reads), that tokenizer counts: chunks are exactly as with the local
//!   backend, at the tokenizer's memory (~270 MB for multilingual-e5's 250k vocabulary);
//! - otherwise an estimate that errs high: every non-ASCII character is a token (a CJK
//!   character is one or less in e5's tokenizer) and every three ASCII bytes are one
//!   (English runs ~4.5 bytes a token). English chunks come out about a third smaller
//!   than the tokenizer would make them, so more of them, and more vectors: the price of
//!   never sending more than the window.

use std::path::Path;

use crate::split::TokenCount;
use crate::{Error, Result};

/// The model's own tokenizer, read from `tokenizer.json`, without truncation or padding.
pub(crate) struct TokenizerFile(tokenizers::Tokenizer);

impl TokenizerFile {
    /// The tokenizer in `dir`, or `None` when the folder has none.
    pub(crate) fn find(dir: &Path) -> Result<Option<Self>> {
        let path = dir.join("tokenizer.json");
        if !path.is_file() {
            return Ok(None);
        }
        let mut tokenizer = tokenizers::Tokenizer::from_file(&path)
            .map_err(|e| Error::Model(format!("{}: {e}", path.display())))?;
        tokenizer
            .with_padding(None)
            .with_truncation(None)
            .map_err(|e| Error::Model(format!("{}: {e}", path.display())))?;
        Ok(Some(Self(tokenizer)))
    }
}

impl TokenCount for TokenizerFile {
    fn count(&self, text: &str) -> usize {
        self.0
            .encode_fast(text, false)
            .map(|e| e.len())
            // As the local backend does: a failure must not lose text, and the estimate
            // errs high.
            .unwrap_or_else(|_| CharEstimate.count(text))
    }
}

/// Tokens estimated from characters, erring high (see the module's comment).
pub(crate) struct CharEstimate;

/// ASCII bytes counted as one token.
const ASCII_BYTES_PER_TOKEN: usize = 3;

impl TokenCount for CharEstimate {
    fn count(&self, text: &str) -> usize {
        let ascii = text.bytes().filter(u8::is_ascii).count();
        let other = text.chars().filter(|c| !c.is_ascii()).count();
        other + ascii.div_ceil(ASCII_BYTES_PER_TOKEN)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_estimate_counts_cjk_by_character_and_ascii_by_three_bytes() {
        assert_eq!(CharEstimate.count(""), 0);
        assert_eq!(CharEstimate.count("知识库"), 3);
        assert_eq!(CharEstimate.count("abcdefg"), 3);
        assert_eq!(CharEstimate.count("知识 base"), 2 + 2);
    }

    #[test]
    fn a_folder_without_a_tokenizer_has_none() {
        let dir = tempfile::tempdir().unwrap();
        assert!(TokenizerFile::find(dir.path()).unwrap().is_none());
    }
}
