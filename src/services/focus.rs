//! The part of the passages the model reads. On a CPU every prompt token is paid for before
//! the first answer token (about 70 a second for the default model on two cores), and a
//! retrieved chunk is mostly sentences beside the one that answers. So the passages of one
//! question are cut together to a budget: their sentences are pooled and the ones that
//! share most with the question are kept, best first, until the budget is spent.
//!
//! A sentence's score is the question's words it holds, each weighted by how rare it is
//! among the pooled sentences (a name that every sentence repeats says little about which
//! one answers), raised for the better-ranked passages. Pooling lets a passage that matches
//! well keep more than one that barely does; a passage left with nothing is not given to
//! the model at all. Kept sentences stay in their order, and "…" marks what was left out.
//! On CMRC, three chunks cut to 300 tokens keep 40 % of their text and a gold answer in
//! 91 % of the questions, against 97 % for the whole chunks (docs/benchmarks.md).

use std::collections::{HashMap, HashSet};

use super::evidence::{Unit, units};

/// Question words that say what is asked, not what about: a sentence is not closer to
/// the question for containing them.
const QUESTION_WORDS: &str = "什么 哪些 哪个 哪里 哪一 多少 几个 怎么 如何 为什么 是否 是谁 谁是 吗 呢 \
                              what which who whom whose when where why how is are was were does did do the of a an in to";

/// A rough token count, the same estimate the remote backend uses: a CJK character is
/// about one token, other text about four bytes a token.
pub fn estimate_tokens(text: &str) -> usize {
    crate::llm::remote::estimate_tokens(text)
}

/// One sentence of one passage.
struct Sentence<'a> {
    passage: usize,
    text: &'a str,
    units: HashSet<Unit>,
    cost: usize,
}

/// `passages` (best first) cut to about `budget_tokens` (estimated) in all, around what
/// `question` asks; each as it is when they fit or when `budget_tokens` is 0. An empty
/// string is a passage that kept nothing.
pub fn focus(passages: &[&str], question: &str, budget_tokens: usize) -> Vec<String> {
    let total: usize = passages.iter().map(|p| estimate_tokens(p)).sum();
    if budget_tokens == 0 || total <= budget_tokens {
        return passages.iter().map(|p| (*p).to_string()).collect();
    }
    let (pool, _, order) = scored(passages, question);
    let mut kept = vec![false; pool.len()];
    let mut used = 0;
    for &i in &order {
        if used + pool[i].cost <= budget_tokens {
            kept[i] = true;
            used += pool[i].cost;
        }
    }
    if !kept.iter().any(|k| *k) {
        // Not one sentence fits: the best one, cut to the budget.
        let best = order.first().map_or(0, |&i| pool[i].passage);
        return (0..passages.len())
            .map(|p| match p == best {
                true => cut_to(passages[p], budget_tokens),
                false => String::new(),
            })
            .collect();
    }
    (0..passages.len())
        .map(|p| {
            let mine: Vec<usize> = (0..pool.len()).filter(|&i| pool[i].passage == p).collect();
            joined(&mine, &kept, &pool)
        })
        .collect()
}

/// The sentences of `passages` (best first), how much each shares with `question`, and
/// their indexes from the one that shares most.
fn scored<'a>(passages: &[&'a str], question: &str) -> (Vec<Sentence<'a>>, Vec<f32>, Vec<usize>) {
    let asked = asked_units(question);
    let pool: Vec<Sentence<'a>> = passages
        .iter()
        .enumerate()
        .flat_map(|(passage, text)| {
            sentences(text).into_iter().map(move |s| Sentence {
                passage,
                text: s,
                units: units(s),
                cost: estimate_tokens(s),
            })
        })
        .collect();
    let mut holding: HashMap<&Unit, usize> = HashMap::new();
    for s in &pool {
        for u in s.units.intersection(&asked) {
            *holding.entry(u).or_default() += 1;
        }
    }
    let n = pool.len() as f32;
    let score = |s: &Sentence<'_>| {
        let words: f32 = s
            .units
            .intersection(&asked)
            .map(|u| (1.0 + n / holding.get(u).copied().unwrap_or(1) as f32).ln())
            .sum();
        // The first passage's sentences count double, the third's a third more.
        words * (1.0 + 1.0 / (s.passage + 1) as f32)
    };
    let scores: Vec<f32> = pool.iter().map(score).collect();
    let mut order: Vec<usize> = (0..pool.len()).collect();
    // Best first; ties to the better passage, then to the earlier sentence.
    order.sort_by(|&a, &b| scores[b].total_cmp(&scores[a]).then(a.cmp(&b)));
    (pool, scores, order)
}

/// The units of what `question` asks about: its words less the words that ask.
fn asked_units(question: &str) -> HashSet<Unit> {
    let mut asked = units(question);
    for u in units(QUESTION_WORDS) {
        asked.remove(&u);
    }
    asked
}

/// The share of what `question` asks about (its words less the words that ask) that
/// `passages` hold, 0–1; 1 for a question with no such word.
///
/// Passages retrieved for a question they do not answer mostly lack its names and terms:
/// on CMRC with the gold document disabled they held at most 44 % of the question, where
/// the passages of answerable questions held 29–100 %, most over half. The model's own
/// verdict overlaps more between the two, and by a different amount in each knowledge
/// base; the answerability check weighs both (`services::chat`).
pub fn question_coverage(passages: &[&str], question: &str) -> f32 {
    let asked = asked_units(question);
    if asked.is_empty() {
        return 1.0;
    }
    let mut held: HashSet<&Unit> = HashSet::new();
    for passage in passages {
        let found = units(passage);
        held.extend(asked.iter().filter(|u| found.contains(*u)));
    }
    held.len() as f32 / asked.len() as f32
}

/// The sentences of `passages` (best first) that share anything with `question`, the
/// one that shares most first, each with the index of its passage.
///
/// A follow-up's `context` (the earlier questions it leans on; "" for none) says what
/// "它" is: the sentences of the passage that holds most of its words come first. Its own
/// sentence often says "它" too ("它是一个占地约两平方公里的热带植物公园"), so the passage
/// decides, and another page's "占地面积70亩" is not taken for the park's size.
pub(crate) fn best_sentences<'a>(
    passages: &[&'a str],
    question: &str,
    context: &str,
) -> Vec<(usize, &'a str)> {
    let (pool, scores, order) = scored(passages, question);
    let subject = naming_passage(passages, context);
    let mut best: Vec<(usize, &'a str)> = order
        .into_iter()
        .filter(|&i| scores[i] > 0.0)
        .map(|i| (pool[i].passage, pool[i].text))
        .collect();
    // Stable: each side keeps its order.
    best.sort_by_key(|(passage, _)| Some(*passage) != subject);
    best
}

/// The passage that holds most of `context`'s words, each weighted by how few passages
/// hold it; `None` when none holds any (or there is no context).
fn naming_passage(passages: &[&str], context: &str) -> Option<usize> {
    let named = asked_units(context);
    if named.is_empty() {
        return None;
    }
    let held: Vec<HashSet<Unit>> = passages.iter().map(|p| units(p)).collect();
    let n = passages.len() as f32;
    let weight = |u: &Unit| {
        let holding = held.iter().filter(|h| h.contains(u)).count();
        match holding {
            0 => 0.0,
            k => (1.0 + n / k as f32).ln(),
        }
    };
    let scores: Vec<f32> = held
        .iter()
        .map(|h| named.iter().filter(|u| h.contains(*u)).map(weight).sum())
        .collect();
    // The first of the best: passages come best first.
    let (index, best) = scores
        .iter()
        .enumerate()
        .fold((0, 0.0_f32), |(bi, bs), (i, &s)| match s > bs {
            true => (i, s),
            false => (bi, bs),
        });
    (best > 0.0).then_some(index)
}

/// One passage's kept sentences in order, "…" where sentences were left out, and a line
/// break where two kept ones were on separate lines: a heading run into the sentence
/// under it ("萱侬律萱侬律(又名…") would be read, and quoted, as one sentence.
fn joined(mine: &[usize], kept: &[bool], pool: &[Sentence<'_>]) -> String {
    if !mine.iter().any(|&i| kept[i]) {
        return String::new();
    }
    let mut out = String::new();
    let mut gap = false;
    let mut line_ended = false;
    for &i in mine {
        let text = pool[i].text;
        if kept[i] {
            if gap {
                out.push('…');
            } else if line_ended || text.trim_start_matches([' ', '\t']).starts_with('\n') {
                out.push('\n');
            }
            out.push_str(text.trim());
            gap = false;
        } else {
            gap = true;
        }
        line_ended = text.trim_end_matches([' ', '\t']).ends_with('\n');
    }
    if gap {
        out.push('…');
    }
    out
}

/// Brackets and quotation marks, each with what closes it: within them "；" or "。" ends
/// no sentence.
pub(crate) const BRACKETS: [(char, char); 6] = [
    ('（', '）'),
    ('(', ')'),
    ('“', '”'),
    ('《', '》'),
    ('「', '」'),
    ('【', '】'),
];

/// The longest bracket a sentence is kept whole across: a bracket left open by a typo
/// must not swallow the rest of its paragraph.
const MAX_BRACKET_CHARS: usize = 160;

/// Sentences, each keeping its end mark. A mark inside brackets ends nothing: an
/// encyclopedia's first sentence, "萱侬律(又名：「东芭乐园」；泰文：…)位于泰国…", says what
/// its subject is only after the bracket.
fn sentences(text: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut start = 0;
    // Byte offset where the table row or bracket being read through ends, when in one.
    let mut inside_until: Option<usize> = None;
    let mut iter = text.char_indices().peekable();
    while let Some((i, c)) = iter.next() {
        if inside_until.is_some_and(|until| i >= until) {
            inside_until = None;
        }
        if i == 0 || text[..i].ends_with('\n') {
            inside_until = table_row_end(text, i);
        }
        if inside_until.is_none() {
            inside_until = closing_bracket(text, i, c);
        }
        let ends = inside_until.is_none()
            && match c {
                '。' | '！' | '？' | '；' | '\n' => true,
                // An English full stop ends a sentence only before a space (not in 3.5
                // or e.g.).
                '.' | '!' | '?' | ';' => iter.peek().is_none_or(|&(_, next)| next.is_whitespace()),
                _ => false,
            };
        if !ends {
            continue;
        }
        let mut end = i + c.len_utf8();
        // Closing quotes and brackets stay with the sentence they close.
        while let Some(&(j, next)) = iter.peek() {
            if matches!(next, '”' | '」' | '）' | ')' | '"') {
                end = j + next.len_utf8();
                iter.next();
            } else {
                break;
            }
        }
        out.push(&text[start..end]);
        start = end;
    }
    if start < text.len() {
        out.push(&text[start..]);
    }
    out.retain(|s| !s.trim().is_empty());
    out
}

/// The longest table row kept whole.
const MAX_ROW_CHARS: usize = 200;

/// Where the line starting at byte `at` of `text` ends, when it is a table row (cells
/// joined with " | ", as extraction writes a sheet's or a document's table, or a
/// Markdown row) of at most [`MAX_ROW_CHARS`]: a row is one record, and a "。" in its
/// first cell must not part it from the cell that answers ("不会用工具: 不能利用外部的工具。
/// 比如,用计算器来算sin(x) | 函数调用 |").
fn table_row_end(text: &str, at: usize) -> Option<usize> {
    let line_bytes = text[at..].find('\n').unwrap_or(text.len() - at);
    let line = &text[at..at + line_bytes];
    let row = line.contains(" | ") || line.trim_start().starts_with('|');
    (row && line.chars().count() <= MAX_ROW_CHARS).then_some(at + line_bytes)
}

/// Where the bracket `open` at byte `at` of `text` closes, when it does within the line
/// and [`MAX_BRACKET_CHARS`]; `None` when `open` opens no bracket.
fn closing_bracket(text: &str, at: usize, open: char) -> Option<usize> {
    let &(_, close) = BRACKETS.iter().find(|(o, _)| *o == open)?;
    let mut depth = 0usize;
    for (offset, c) in text[at..].char_indices().take(MAX_BRACKET_CHARS) {
        if c == '\n' {
            return None;
        }
        if c == open {
            depth += 1;
        } else if c == close {
            depth -= 1;
            if depth == 0 {
                return Some(at + offset);
            }
        }
    }
    None
}

/// The start of `text` within `budget_tokens`, marked as cut.
fn cut_to(text: &str, budget_tokens: usize) -> String {
    let mut out = String::new();
    let mut used = 0;
    for c in text.chars() {
        let cost = estimate_tokens(c.encode_utf8(&mut [0; 4]));
        if used + cost > budget_tokens {
            out.push('…');
            break;
        }
        used += cost;
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const POLICY: &str = "公司制度汇编。第一章总则，适用于全体员工。\
        第二章考勤，上班时间为九点。第三章出差，住宿标准为一线城市每晚不超过六百元。\
        出差需提前在系统中申请。第四章附则，本制度自发布之日起施行。";

    #[test]
    fn passages_that_fit_are_left_whole() {
        assert_eq!(
            focus(&["住宿不超过六百元。", "会议室四小时。"], "住宿标准？", 100),
            ["住宿不超过六百元。", "会议室四小时。"]
        );
        assert_eq!(focus(&[POLICY], "住宿标准？", 0), [POLICY]);
    }

    #[test]
    fn the_sentences_that_match_are_kept_and_gaps_are_marked() {
        let focused = focus(&[POLICY], "出差住宿标准是多少？", 40);
        let text = &focused[0];
        assert!(
            text.contains("住宿标准为一线城市每晚不超过六百元。"),
            "{text}"
        );
        assert!(!text.contains("总则"), "{text}");
        assert!(text.starts_with('…') && text.ends_with('…'), "{text}");
        assert!(estimate_tokens(text) <= 44, "{text}");
    }

    #[test]
    fn a_passage_that_matches_nothing_is_left_out_when_the_budget_is_short() {
        let other = "天气预报说明天有雨。".repeat(6);
        let focused = focus(&[&other, POLICY], "出差住宿标准是多少？", 40);
        assert_eq!(focused[0], "", "{focused:?}");
        assert!(focused[1].contains("六百元"), "{focused:?}");
    }

    #[test]
    fn a_name_every_sentence_repeats_weighs_less_than_the_word_asked_about() {
        let text = "尤金袋鼠是袋鼠科中细小的成员。尤金袋鼠分布在澳洲南部岛屿。\
                    尤金袋鼠的体重约只有8公斤。尤金袋鼠最初于1628年被发现。";
        let focused = focus(&[text], "尤金袋鼠的体重是多少？", 16);
        assert!(focused[0].contains("8公斤"), "{focused:?}");
    }

    #[test]
    fn english_sentences_split_on_full_stops_before_spaces() {
        let text = "Version 3.5 was released in 2020. It was trained on 300 billion tokens. \
                    The model has 175 billion parameters. It costs a lot to run.";
        let focused = focus(&[text], "How many parameters does the model have?", 12);
        assert!(focused[0].contains("175 billion parameters"), "{focused:?}");
        assert!(!focused[0].contains("3.5"), "{focused:?}");
    }

    #[test]
    fn kept_sentences_on_separate_lines_stay_on_separate_lines() {
        let text = "萱侬律\n\n萱侬律位于泰国春武里府。它占地约两平方公里。园内有兰花园。\
                    园内有法国花园。园内有欧洲花园。园内有石景园。";
        let focused = focus(&[text], "萱侬律位于哪里，占地多大？", 30);
        assert!(
            focused[0].starts_with("萱侬律\n萱侬律位于泰国春武里府。它占地约两平方公里。…"),
            "{focused:?}"
        );
    }

    #[test]
    fn a_mark_inside_brackets_ends_no_sentence() {
        let text = "萱侬律(又名：「东芭乐园」；泰文：สวนนงนุช)位于泰国春武里府。\
                    园内有兰花园（约五千种；多为杂交种）。有人漏写了括号（后面的话。第三句。";
        assert_eq!(
            sentences(text),
            [
                "萱侬律(又名：「东芭乐园」；泰文：สวนนงนุช)位于泰国春武里府。",
                "园内有兰花园（约五千种；多为杂交种）。",
                "有人漏写了括号（后面的话。",
                "第三句。",
            ]
        );
    }

    #[test]
    fn a_table_row_is_one_sentence() {
        let text = "LLM局限 | 解决办法 |\n不会用工具: 不能利用外部的工具。比如,用计算器来算sin(x) | 函数调用 |\n\
                    学废了。有些知识学的不对。";
        assert_eq!(
            sentences(text),
            [
                "LLM局限 | 解决办法 |\n",
                "不会用工具: 不能利用外部的工具。比如,用计算器来算sin(x) | 函数调用 |\n",
                "学废了。",
                "有些知识学的不对。",
            ]
        );
    }

    #[test]
    fn one_overlong_sentence_is_cut_to_the_budget() {
        let text = "甲".repeat(300) + "。" + &"乙".repeat(300) + "。";
        let focused = focus(&[&text], "甲", 50);
        assert!(estimate_tokens(&focused[0]) <= 51, "{focused:?}");
        assert!(focused[0].starts_with('甲'));
    }

    #[test]
    fn coverage_is_the_share_of_what_the_question_asks_about_that_the_passages_hold() {
        assert_eq!(question_coverage(&[POLICY], "住宿标准？"), 1.0);
        // Passages about something else hold nothing of it.
        let other = question_coverage(&["尤金袋鼠约只有8公斤重。"], "住宿标准？");
        assert_eq!(other, 0.0);
        let half = question_coverage(&["出差需提前申请。", "报销流程。"], "出差住宿");
        assert!((half - 1.0 / 3.0).abs() < 1e-6, "{half}");
        // A question made only of the words that ask leaves nothing to check.
        assert_eq!(question_coverage(&[POLICY], "什么？"), 1.0);
    }
}
