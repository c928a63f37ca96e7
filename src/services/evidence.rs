//! How much of an answer the passages hold: the answer is cut into content units (pairs of
//! adjacent CJK characters, whole Latin words, whole numbers), the units it shares with the
//! question are set aside (restating the question proves nothing), and the rest are looked
//! up in the passages the model was given. The share found is the answer's grounding score.
//!
//! This is a check of wording, not of meaning: it cannot see a false statement made of
//! words the passages use. It does catch what a small model invents most often when the
//! knowledge base has no answer: names, numbers and facts that appear nowhere in what it
//! read (for example "由萤火虫工作室和雷明登武器公司合作开发" against passages that name
//! neither).

use std::collections::HashSet;

use unicode_normalization::UnicodeNormalization;

use super::prompt::{Passage, cited_markers};

/// An answer whose score is at least this is grounded. An answer copied from a passage
/// scores 1; paraphrases of one score 0.6–0.9; invented facts beside the question's own
/// words score under 0.4 on the development sets (docs/benchmarks.md).
pub const MIN_GROUNDED_SCORE: f32 = 0.5;

/// A cited sentence keeps its `[n]` only when passage n holds at least this share of the
/// sentence's units.
const MIN_CITED_SHARE: f32 = 0.3;

/// A passage the answer does not cite by marker is credited when it holds at least this
/// share of the answer's units.
const MIN_INFERRED_SHARE: f32 = 0.5;

/// Units of boilerplate that every answer may use without a passage holding it.
const BOILERPLATE: &str = "根据资料，根据提供的资料，根据上述资料，资料中提到，资料显示，知识库中，答案是。\
                           according to the passages, the answer is";

/// One unit of text, normalised.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Unit {
    /// Two adjacent CJK characters.
    Pair(char, char),
    /// A word of letters or a number, lower-cased.
    Word(String),
}

impl Unit {
    /// Numbers count double: a wrong figure is the costliest thing to invent.
    fn weight(&self) -> f32 {
        match self {
            Unit::Word(w) if w.chars().all(|c| c.is_ascii_digit() || c == '.') => 2.0,
            _ => 1.0,
        }
    }
}

/// The content units of `text`: NFKC (full-width forms become ASCII), lower case, citation
/// markers removed, thousands separators inside numbers dropped.
pub fn units(text: &str) -> HashSet<Unit> {
    let text = strip_markers(&text.nfkc().flat_map(char::to_lowercase).collect::<String>());
    let chars: Vec<char> = text.chars().collect();
    let mut out = HashSet::new();
    let mut word = String::new();
    let mut previous_cjk: Option<char> = None;
    for (i, &c) in chars.iter().enumerate() {
        let separator_in_number = c == ','
            && !word.is_empty()
            && word.chars().all(|w| w.is_ascii_digit())
            && chars.get(i + 1).is_some_and(char::is_ascii_digit);
        if separator_in_number {
            continue;
        }
        if is_cjk(c) {
            flush_word(&mut word, &mut out);
            match previous_cjk {
                Some(p) => {
                    out.insert(Unit::Pair(p, c));
                }
                // A lone character between non-CJK text still says something (a name's
                // surname, a unit like 亿).
                None if !chars.get(i + 1).copied().is_some_and(is_cjk) => {
                    out.insert(Unit::Pair(c, c));
                }
                None => {}
            }
            previous_cjk = Some(c);
        } else if c.is_alphanumeric() || (c == '.' && word.ends_with(|w: char| w.is_ascii_digit()))
        {
            previous_cjk = None;
            word.push(c);
        } else {
            previous_cjk = None;
            flush_word(&mut word, &mut out);
        }
    }
    flush_word(&mut word, &mut out);
    out
}

fn flush_word(word: &mut String, out: &mut HashSet<Unit>) {
    let trimmed = word.trim_end_matches('.');
    if !trimmed.is_empty() {
        out.insert(Unit::Word(trimmed.to_string()));
    }
    word.clear();
}

/// CJK ideographs (the unified blocks and compatibility ideographs).
pub fn is_cjk(c: char) -> bool {
    ('\u{3400}'..='\u{9FFF}').contains(&c) || ('\u{F900}'..='\u{FAFF}').contains(&c)
}

/// `text` without `[1]`, `[1, 2]` or `【1】` markers.
pub fn strip_markers(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find(['[', '【']) {
        out.push_str(&rest[..start]);
        let open = rest[start..].chars().next().unwrap_or('[');
        let close = if open == '[' { ']' } else { '】' };
        let after = &rest[start + open.len_utf8()..];
        match after.find(close) {
            Some(end)
                if end <= 24
                    && after[..end]
                        .chars()
                        .all(|c| c.is_ascii_digit() || ", ，、".contains(c)) =>
            {
                rest = &after[end + close.len_utf8()..];
            }
            _ => {
                out.push(open);
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}

/// How well the passages hold an answer.
#[derive(Debug, Clone, PartialEq)]
pub struct Support {
    /// Weighted share of the answer's new units (not in the question, not boilerplate)
    /// that some passage holds; 1 when the answer has none.
    pub score: f32,
    /// `score >= MIN_GROUNDED_SCORE`.
    pub grounded: bool,
    /// The passages to show as citations, by marker: those the answer cites whose cited
    /// sentence they hold, or, when it cites none, those holding most of it.
    pub markers: Vec<usize>,
    /// The markers were matched by shared text, not written by the model.
    pub inferred: bool,
}

/// Score `answer` against the `passages` it was written from, for `question`.
pub fn support(answer: &str, question: &str, passages: &[Passage]) -> Support {
    let passage_units: Vec<HashSet<Unit>> = passages.iter().map(|p| units(&p.text)).collect();
    let mut known = units(question);
    known.extend(units(BOILERPLATE));
    let new: Vec<Unit> = units(answer)
        .into_iter()
        .filter(|u| !known.contains(u))
        .collect();
    let total: f32 = new.iter().map(Unit::weight).sum();
    let found: f32 = new
        .iter()
        .filter(|u| passage_units.iter().any(|p| p.contains(*u)))
        .map(Unit::weight)
        .sum();
    let score = if total == 0.0 { 1.0 } else { found / total };
    let cited = cited_markers(answer, passages.len());
    let (markers, inferred) = if cited.is_empty() {
        let mut shares: Vec<(usize, f32)> = passages
            .iter()
            .zip(&passage_units)
            .map(|(p, held)| (p.marker, share(&new, held)))
            .filter(|&(_, s)| s >= MIN_INFERRED_SHARE)
            .collect();
        shares.sort_by(|a, b| b.1.total_cmp(&a.1));
        (shares.into_iter().map(|(m, _)| m).collect(), true)
    } else {
        (
            held_citations(answer, &known, passages, &passage_units),
            false,
        )
    };
    Support {
        score,
        grounded: score >= MIN_GROUNDED_SCORE,
        markers,
        inferred,
    }
}

/// The markers whose passage holds the sentence that cites it, in order of first use. A
/// sentence with no new units of its own (a bare "见 [2]") keeps its marker.
fn held_citations(
    answer: &str,
    known: &HashSet<Unit>,
    passages: &[Passage],
    passage_units: &[HashSet<Unit>],
) -> Vec<usize> {
    let mut kept = Vec::new();
    for sentence in sentences_with_markers(answer) {
        let sentence_units: Vec<Unit> = units(sentence)
            .into_iter()
            .filter(|u| !known.contains(u))
            .collect();
        for marker in cited_markers(sentence, passages.len()) {
            let held = passage_units.get(marker - 1).is_some_and(|p| {
                sentence_units.is_empty() || share(&sentence_units, p) >= MIN_CITED_SHARE
            });
            if held && !kept.contains(&marker) {
                kept.push(marker);
            }
        }
    }
    kept
}

/// The answer cut after each sentence end, a marker right after an end staying with the
/// sentence before it ("…四小时。[1]").
fn sentences_with_markers(text: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut start = 0;
    let mut chars = text.char_indices().peekable();
    while let Some((i, c)) = chars.next() {
        if !matches!(c, '。' | '！' | '？' | '；' | '!' | '?' | ';' | '\n') {
            continue;
        }
        let mut end = i + c.len_utf8();
        // A marker written after the full stop belongs to the sentence before it.
        let rest = &text[end..];
        let trimmed = rest.trim_start();
        if trimmed.starts_with(['[', '【']) {
            let close = if trimmed.starts_with('[') { ']' } else { '】' };
            if let Some(close_at) = trimmed.find(close) {
                end += rest.len() - trimmed.len() + close_at + close.len_utf8();
                while chars.peek().is_some_and(|&(j, _)| j < end) {
                    chars.next();
                }
            }
        }
        out.push(&text[start..end]);
        start = end;
    }
    if start < text.len() {
        out.push(&text[start..]);
    }
    out
}

/// Weighted share of `wanted` that `held` contains.
fn share(wanted: &[Unit], held: &HashSet<Unit>) -> f32 {
    let total: f32 = wanted.iter().map(Unit::weight).sum();
    if total == 0.0 {
        return 0.0;
    }
    wanted
        .iter()
        .filter(|u| held.contains(*u))
        .map(Unit::weight)
        .sum::<f32>()
        / total
}

#[cfg(test)]
mod tests {
    use super::*;

    fn passage(marker: usize, text: &str) -> Passage {
        Passage {
            marker,
            chunk_id: marker as i64,
            document_id: "d".into(),
            document_name: "n".into(),
            source_url: None,
            page: None,
            label: None,
            text: text.into(),
            score: 1.0,
        }
    }

    #[test]
    fn units_are_pairs_words_and_whole_numbers() {
        let u = units("GPT-2 有１５亿参数[1]，发布于 2019 年; 14,000 tokens");
        assert!(u.contains(&Unit::Word("gpt".into())));
        assert!(u.contains(&Unit::Word("15".into())));
        assert!(u.contains(&Unit::Word("14000".into())));
        assert!(u.contains(&Unit::Pair('亿', '参')));
        assert!(u.contains(&Unit::Pair('年', '年')));
        // The marker is not a number of the answer.
        assert!(!u.contains(&Unit::Word("1".into())));
    }

    #[test]
    fn an_answer_copied_from_a_passage_is_grounded() {
        let passages = [passage(
            1,
            "《战国无双3》是由光荣公司和ω-force合作开发的动作游戏。",
        )];
        let s = support(
            "《战国无双3》是由光荣公司和ω-Force合作开发的[1]。",
            "战国无双3是由哪家公司开发的？",
            &passages,
        );
        assert!(s.grounded, "{s:?}");
        assert!(s.score > 0.9);
        assert_eq!(s.markers, vec![1]);
        assert!(!s.inferred);
    }

    #[test]
    fn an_invented_answer_is_not_grounded_and_cites_nothing() {
        let passages = [
            passage(
                1,
                "《三国无双》系列是一款以三国时代为背景的动作游戏，玩家可操作多名武将。",
            ),
            passage(2, "游戏在日本发售后获得了较好的销量。"),
        ];
        let s = support(
            "《战国无双3》是由萤火虫工作室和雷明登武器公司合作开发的[1]。",
            "战国无双3是由哪家公司开发的？",
            &passages,
        );
        assert!(!s.grounded, "{s:?}");
        assert!(
            s.markers.is_empty(),
            "a passage that holds none of it is not cited"
        );
    }

    #[test]
    fn a_wrong_number_weighs_more_than_a_word() {
        let passages = [passage(
            1,
            "会议室每次预订最长可以使用四小时，费用为 300 元。",
        )];
        let right = support("费用是 300 元[1]。", "会议室费用多少？", &passages);
        let wrong = support("费用是 500 元[1]。", "会议室费用多少？", &passages);
        assert!(right.score > wrong.score);
        assert!(!wrong.grounded);
    }

    #[test]
    fn uncited_answers_are_credited_to_the_passage_holding_them() {
        let passages = [
            passage(1, "会议室每次预订最长可以使用四小时，超时需要重新预订。"),
            passage(2, "出差住宿标准：一线城市每晚不超过六百元。"),
        ];
        let s = support("会议室最长可以使用四小时。", "会议室能用多久？", &passages);
        assert_eq!(s.markers, vec![1]);
        assert!(s.inferred);
    }

    #[test]
    fn a_marker_after_the_full_stop_stays_with_its_sentence() {
        assert_eq!(
            sentences_with_markers("甲是一。[1] 乙是二。【2】丙"),
            vec!["甲是一。[1]", " 乙是二。【2】", "丙"]
        );
    }

    #[test]
    fn a_restated_question_alone_is_not_evidence_against_the_answer() {
        let passages = [passage(1, "年假需提前一周在系统中申请。")];
        let s = support("如何申请年假？", "如何申请年假？", &passages);
        assert_eq!(s.score, 1.0);
    }
}
