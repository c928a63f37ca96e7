//! A tantivy tokenizer that segments Chinese with jieba (search mode, without its HMM) and
//! keeps English words whole, so one analyzer serves both languages; lower-casing and
//! English stemming are applied as filters in [`analyzer`].
//!
//! jieba's HMM guesses words missing from its dictionary, and it guesses differently in a
//! short question than in the passage it came from, so the question's word then misses the
//! passage's. Without it an unknown string falls apart into single characters on both
//! sides and still matches: BM25 recall@1/@5 0.930/0.981 with the HMM, 0.943/0.988
//! without, on cmrc2018-trial + distractors-zh (scripts/jieba_modes.py).

use std::sync::{Arc, LazyLock};

use jieba_rs::{Jieba, TokenizeMode};
use tantivy::tokenizer::{
    Language, LowerCaser, RemoveLongFilter, Stemmer, TextAnalyzer, Token, TokenStream, Tokenizer,
};

/// The name the schema uses for this analyzer.
pub const ANALYZER: &str = "zh_en";

/// What the analyzer emits, written beside each full-text index. Change it whenever the
/// tokens change: an index built with other tokens would miss the queries' terms, so it
/// is rebuilt from SQLite instead of opened.
pub const ANALYZER_VERSION: &str =
    "zh_en 2: jieba search mode without HMM, lower case, English stems";

static JIEBA: LazyLock<Arc<Jieba>> = LazyLock::new(|| Arc::new(Jieba::new()));

/// jieba segmentation as a tantivy tokenizer.
#[derive(Clone)]
pub struct JiebaTokenizer {
    jieba: Arc<Jieba>,
}

impl Default for JiebaTokenizer {
    fn default() -> Self {
        Self {
            jieba: JIEBA.clone(),
        }
    }
}

/// The tokens of one text.
pub struct JiebaTokenStream {
    tokens: Vec<Token>,
    index: usize,
}

impl Tokenizer for JiebaTokenizer {
    type TokenStream<'a> = JiebaTokenStream;

    fn token_stream<'a>(&'a mut self, text: &'a str) -> JiebaTokenStream {
        // jieba reports character offsets; tantivy wants byte offsets.
        let byte_at: Vec<usize> = text
            .char_indices()
            .map(|(b, _)| b)
            .chain([text.len()])
            .collect();
        let tokens = self
            .jieba
            .tokenize(text, TokenizeMode::Search, false)
            .into_iter()
            .filter(|t| t.word.chars().any(char::is_alphanumeric))
            .enumerate()
            .map(|(position, t)| Token {
                offset_from: byte_at.get(t.start).copied().unwrap_or(text.len()),
                offset_to: byte_at.get(t.end).copied().unwrap_or(text.len()),
                position,
                text: t.word.to_string(),
                position_length: 1,
            })
            .collect();
        JiebaTokenStream { tokens, index: 0 }
    }
}

impl TokenStream for JiebaTokenStream {
    fn advance(&mut self) -> bool {
        if self.index < self.tokens.len() {
            self.index += 1;
            true
        } else {
            false
        }
    }

    fn token(&self) -> &Token {
        &self.tokens[self.index - 1]
    }

    fn token_mut(&mut self) -> &mut Token {
        &mut self.tokens[self.index - 1]
    }
}

/// jieba + long-token removal + lower case + English stemming.
pub fn analyzer() -> TextAnalyzer {
    TextAnalyzer::builder(JiebaTokenizer::default())
        .filter(RemoveLongFilter::limit(40))
        .filter(LowerCaser)
        .filter(Stemmer::new(Language::English))
        .build()
}

/// The terms of `text` as the index sees them.
pub fn terms(text: &str) -> Vec<String> {
    let mut analyzer = analyzer();
    let mut stream = analyzer.token_stream(text);
    let mut out = Vec::new();
    while stream.advance() {
        out.push(stream.token().text.clone());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segments_chinese_and_stems_english() {
        let t = terms("大语言模型的Running costs，很高！");
        assert!(t.contains(&"语言".to_string()), "{t:?}");
        assert!(t.contains(&"模型".to_string()), "{t:?}");
        assert!(t.contains(&"run".to_string()), "{t:?}");
        assert!(t.contains(&"cost".to_string()), "{t:?}");
        assert!(!t.iter().any(|w| w == "，" || w == "！"), "{t:?}");
    }

    #[test]
    fn a_word_missing_from_the_dictionary_matches_in_question_and_passage() {
        // A name jieba does not know: the same characters on both sides, however the
        // sentence around them runs.
        let passage = terms("泡泡战士由韩国Nexon开发，中国大陆由盛大游戏运营。");
        let question = terms("泡泡战士是谁开发的？");
        let shared = question.iter().filter(|t| passage.contains(t)).count();
        assert!(shared >= 3, "{question:?} / {passage:?}");
    }
}
