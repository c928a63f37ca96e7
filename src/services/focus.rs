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

/// Characters that mostly join words rather than name anything: particles, pronouns,
/// prepositions and conjunctions.
const FUNCTION_CHARS: &str =
    "的了是在和与及或而也都就还又把被让给对从向于以之其这那些么吗呢吧啊着过得地所将";

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
    /// The pool index of the sentence that leads in to this one ([`lead_ins`]).
    lead: Option<usize>,
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
        if kept[i] || used + pool[i].cost > budget_tokens {
            continue;
        }
        kept[i] = true;
        used += pool[i].cost;
        // A sentence is read with what leads in to it (the heading or question it
        // answers), when that fits too.
        if let Some(lead) = pool[i].lead
            && !kept[lead]
            && used + pool[lead].cost <= budget_tokens
        {
            kept[lead] = true;
            used += pool[lead].cost;
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
    let mut pool: Vec<Sentence<'a>> = Vec::new();
    for (passage, text) in passages.iter().enumerate() {
        let mine = sentences(text);
        let first = pool.len();
        for (s, lead) in mine.iter().zip(lead_ins(text, &mine)) {
            pool.push(Sentence {
                passage,
                text: s,
                units: units(s),
                cost: estimate_tokens(s),
                lead: lead.map(|l| first + l),
            });
        }
    }
    // The question's words each sentence holds or is led in to.
    let held: Vec<Vec<&Unit>> = pool
        .iter()
        .map(|s| {
            let lead = s.lead.map(|l| &pool[l].units);
            asked
                .iter()
                .filter(|u| s.units.contains(*u) || lead.is_some_and(|l| l.contains(*u)))
                .collect()
        })
        .collect();
    // A word counts for every sentence that holds it or is led in to it: a heading's
    // words, held by the sentences under it too, tell those apart no more than a name
    // they all repeat.
    let mut holding: HashMap<&Unit, usize> = HashMap::new();
    for u in held.iter().flatten() {
        *holding.entry(*u).or_default() += 1;
    }
    let n = pool.len() as f32;
    let score = |(s, held): (&Sentence<'_>, &Vec<&Unit>)| {
        let words: f32 = held
            .iter()
            .map(|u| (1.0 + n / holding.get(*u).copied().unwrap_or(1) as f32).ln())
            .sum();
        // The first passage's sentences count double, the third's a third more.
        words * (1.0 + 1.0 / (s.passage + 1) as f32)
    };
    let scores: Vec<f32> = pool.iter().zip(&held).map(score).collect();
    let mut order: Vec<usize> = (0..pool.len()).collect();
    // Best first; ties to the better passage, then to the earlier sentence.
    order.sort_by(|&a, &b| scores[b].total_cmp(&scores[a]).then(a.cmp(&b)));
    (pool, scores, order)
}

/// The longest line taken for a heading.
const MAX_HEADING_CHARS: usize = 40;

/// How many sentences a heading, question or "…如下：" leads in to (a table's header
/// leads in to all its rows): a document's title is not what its fifth sentence says.
const MAX_LED_SENTENCES: usize = 3;

/// For each of `sentences` (of `text`, in order), the index of the one that leads in to
/// it, when one does: the nearest earlier heading (a short line of its own with no closing
/// mark), question, or line ending in "：" — and for a table's row, the table's header
/// row. The person's question mostly restates the heading or the FAQ's question, not the
/// sentence under it that answers: "部门经理级别的人出差可以坐什么交通工具？" shares its
/// words with "第三条乘坐交通工具的标准如下：", and only "部门经理" with the line under it
/// that says "飞机经济舱". So a sentence is scored with the words of its lead-in as well
/// as its own, and one that adds a word asked about is preferred to the lead-in itself.
fn lead_ins(text: &str, sentences: &[&str]) -> Vec<Option<usize>> {
    let mut out = Vec::with_capacity(sentences.len());
    let mut lead = None;
    // While in a table: the lead-in before it (its header row leads in to its rows).
    let mut outside_table: Option<Option<usize>> = None;
    for (i, sentence) in sentences.iter().enumerate() {
        let start = offset_in(text, sentence);
        let whole_line = (start == 0
            || text[..start].ends_with('\n')
            || sentence.trim_start_matches([' ', '\t']).starts_with('\n'))
            && (sentence.trim_end_matches([' ', '\t']).ends_with('\n')
                || start + sentence.len() == text.len());
        let body = sentence.trim();
        if whole_line && is_row(body) {
            out.push(lead);
            if outside_table.is_none() {
                outside_table = Some(lead);
                lead = Some(i);
            }
            continue;
        }
        if let Some(outside) = outside_table.take() {
            lead = outside;
        }
        if lead.is_some_and(|l| i - l > MAX_LED_SENTENCES) {
            lead = None;
        }
        // Where a cut passage left sentences out, what led in to the ones before may
        // not lead in to the ones after.
        if body == "…" {
            lead = None;
        }
        out.push(lead);
        // A bulleted item is one of a list, not the heading of the next.
        let heading = whole_line
            && body.chars().count() <= MAX_HEADING_CHARS
            && !body.starts_with(['-', '*', '•', '·', '+'])
            && !body.ends_with(['。', '！', '；', '，', '、', '.', '!', ';', ',']);
        let asks_or_introduces = body.ends_with(['：', ':', '？', '?']);
        if (heading || asks_or_introduces) && body.chars().any(char::is_alphanumeric) {
            lead = Some(i);
        }
    }
    out
}

/// The byte offset of `part` (a slice of `text`) in `text`.
fn offset_in(text: &str, part: &str) -> usize {
    (part.as_ptr() as usize).saturating_sub(text.as_ptr() as usize)
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
///
/// Two characters of which one is a particle, pronoun or preposition ("了攻", "计的", "是为")
/// mostly straddle two words and are held by any passage, so they are not counted: with
/// them a paraphrased question ("LSTM…当初是为了攻克什么难题而设计的？") seemed barely
/// covered by the sentence that answers it, and the bar rose against it (docs/benchmarks.md).
pub fn question_coverage(passages: &[&str], question: &str) -> f32 {
    let asked: HashSet<Unit> = asked_units(question)
        .into_iter()
        .filter(|u| !matches!(u, Unit::Pair(a, b) if FUNCTION_CHARS.contains([*a, *b])))
        .collect();
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
    let asked = asked_units(question);
    let subject = naming_passage(passages, context);
    let mut best: Vec<(usize, &'a str)> = order
        .into_iter()
        .filter(|&i| scores[i] > 0.0)
        .map(|i| (pool[i].passage, with_lead_in(&pool, i, passages, &asked)))
        .collect();
    // Stable: each side keeps its order.
    best.sort_by_key(|(passage, _)| Some(*passage) != subject);
    best
}

/// The longest lead-in quoted with the sentence under it.
const MAX_QUOTED_LEAD_IN_CHARS: usize = 60;

/// Sentence `i` of `pool`, from its lead-in on when that is the sentence right before it,
/// short, and holds a word `asked` that `i` lacks: "LLM应用范式3——API微调" says
/// which paradigm the steps under it are, and a table's header says what the figure in
/// the row under it is.
fn with_lead_in<'a>(
    pool: &[Sentence<'a>],
    i: usize,
    passages: &[&'a str],
    asked: &HashSet<Unit>,
) -> &'a str {
    let sentence = &pool[i];
    let Some(lead) = sentence.lead.filter(|&l| l + 1 == i).map(|l| &pool[l]) else {
        return sentence.text;
    };
    let text = passages[sentence.passage];
    let start = offset_in(text, lead.text);
    let end = offset_in(text, sentence.text) + sentence.text.len();
    let adds = asked
        .iter()
        .any(|u| lead.units.contains(u) && !sentence.units.contains(u));
    match adds && lead.text.trim().chars().count() <= MAX_QUOTED_LEAD_IN_CHARS {
        true => &text[start..end],
        false => sentence.text,
    }
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
        // Closing quotes and brackets stay with the sentence they close, and so does the
        // line break after it: it says the next sentence starts a line.
        let mut line_ended = c == '\n';
        while let Some(&(j, next)) = iter.peek() {
            let closes = matches!(next, '”' | '」' | '）' | ')' | '"');
            if closes || (next == '\n' && !line_ended) {
                line_ended |= next == '\n';
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
    (is_row(line) && line.chars().count() <= MAX_ROW_CHARS).then_some(at + line_bytes)
}

/// Whether `line` is a table row: cells joined with " | ", or a Markdown row.
fn is_row(line: &str) -> bool {
    line.contains(" | ") || line.trim_start().starts_with('|')
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

    const TRAVEL: &str = "员工差旅报销制度\n第一章总则\n第一条为规范差旅费用管理，特制定本制度。\n\
        第二条出差须事先提交出差申请，经部门负责人审批。\n第三条乘坐交通工具的标准如下：\n\
        部门经理及以上人员可乘坐飞机经济舱或高铁一等座；\n其他员工乘坐高铁二等座；\n\
        第四条住宿费按城市类别限额报销，标准见下表：\n城市类别 | 代表城市 | 每晚住宿上限（元）\n\
        一类 | 北京、上海 | 600\n二类 | 省会城市及计划单列市 | 450\n三类 | 其他城市 | 350\n\
        第五条本制度由财务部负责解释。";

    fn best(passages: &[&str], question: &str) -> String {
        best_sentences(passages, question, "")
            .first()
            .map(|(_, s)| s.trim().to_string())
            .unwrap_or_default()
    }

    #[test]
    fn the_sentence_under_a_heading_the_question_restates_answers_it() {
        // The list item is scored with its heading's words, and quoted with it.
        assert_eq!(
            best(&[TRAVEL], "部门经理级别的人出差可以坐什么交通工具？"),
            "第三条乘坐交通工具的标准如下：\n部门经理及以上人员可乘坐飞机经济舱或高铁一等座；"
        );
        // A table's row with its header's words: the header says what "450" is.
        assert_eq!(
            best(&[TRAVEL], "去省会城市出差，每晚住宿最多能报多少钱？"),
            "二类 | 省会城市及计划单列市 | 450"
        );
        // A FAQ's question leads in to its answer.
        let faq = "编号,问题,答案\n1,如何重置密码？,在登录页点击“忘记密码”。\n\
                   2,发票多久能开出来？,付款成功后 3 个工作日内开具电子发票。";
        assert_eq!(
            best(&[faq], "付完款以后多久能拿到电子发票？"),
            "2,发票多久能开出来？,付款成功后 3 个工作日内开具电子发票。"
        );
        // A heading that answers is still quoted when nothing under it adds a word asked.
        assert_eq!(
            best(&[TRAVEL], "第三条说的是什么标准？"),
            "第三条乘坐交通工具的标准如下："
        );
    }

    #[test]
    fn a_title_leads_in_to_its_first_sentences_only() {
        let sentences = sentences(TRAVEL);
        let leads = lead_ins(TRAVEL, &sentences);
        assert_eq!(sentences[0].trim(), "员工差旅报销制度");
        // "第一章总则" is a heading of its own, and "第三条…如下：" leads in to its list.
        assert_eq!(leads[1], Some(0));
        assert_eq!(leads[3], Some(1));
        assert_eq!(leads[5], Some(4), "{:?}", sentences[5]);
        // Three sentences on, a heading leads in no more.
        let long = "标题\n一。二。三。四。";
        assert_eq!(
            lead_ins(long, &super::sentences(long)),
            [None, Some(0), Some(0), Some(0), None]
        );
        // Every row of a table is led in to by its header, whatever its length.
        let header = sentences
            .iter()
            .position(|s| s.starts_with("城市类别"))
            .unwrap();
        assert_eq!(leads[header + 3], Some(header));
        // And after the table, what led in to it does again, within its reach.
        assert_eq!(leads[header + 1], Some(header));
        // A gap where a cut passage left sentences out ends what a lead-in reaches.
        let cut = "第三条交通标准如下：\n…\n其他员工乘坐高铁二等座；";
        let sentences_cut = super::sentences(cut);
        assert_eq!(lead_ins(cut, &sentences_cut), [None, None, None]);
    }

    #[test]
    fn a_kept_sentence_is_read_with_its_heading() {
        let focused = focus(&[TRAVEL], "去省会城市出差，每晚住宿最多能报多少钱？", 40);
        assert!(
            focused[0].contains(
                "城市类别 | 代表城市 | 每晚住宿上限（元）…二类 | 省会城市及计划单列市 | 450"
            ),
            "{focused:?}"
        );
    }

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

    #[test]
    fn pairs_that_straddle_a_particle_do_not_count_against_a_paraphrase() {
        let answer = "LSTM是RNN的一种变体,专门设计用来解决长期依赖问题。";
        // Of lstm, rnn, 变体, 体当, 当初, 攻克, 克什, 难题 and 设计 it holds four; the nine
        // pairs such as "为了", "了攻" and "计的" are counted neither way (with them, 4 of 18).
        let held = question_coverage(
            &[answer],
            "LSTM 这种 RNN 变体当初是为了攻克什么难题而设计的？",
        );
        assert!((held - 4.0 / 9.0).abs() < 1e-6, "{held}");
    }
}
