//! Judging a bot's answers without a judge model: does the answer contain a gold answer,
//! and did the bot decline when the knowledge base could not answer?
//!
//! Both checks compare normalised text: NFKC (full-width letters, digits and punctuation
//! become their ASCII forms), lower case, and only letters and digits kept, so
//! "14,000 亿" matches "14000亿" and "ＧＰＴ－２" matches "gpt-2".

use unicode_normalization::UnicodeNormalization;

/// Phrases by which the model says the knowledge base does not have the answer. The
/// prompt's rules tell it to "直接说知识库中没有相关信息" in that case (see
/// `services::prompt`), and the model answers in the question's language.
const DECLINE_PHRASES: &[&str] = &[
    "知识库中没有",
    "知识库里没有",
    "资料中没有",
    "没有找到相关",
    "没有相关信息",
    "没有提到",
    "未提及",
    "无法回答",
    "not in the knowledge base",
    "no relevant information",
    "does not contain",
    "doesn't contain",
    "do not contain",
    "not mentioned",
];

/// Text reduced to what an answer comparison should see.
pub fn normalise(text: &str) -> String {
    text.nfkc()
        .flat_map(char::to_lowercase)
        .filter(|c| c.is_alphanumeric())
        .collect()
}

/// Whether `answer` contains any of the `gold` answers (after [`normalise`]). Gold
/// answers that normalise to nothing are ignored.
pub fn contains_gold(answer: &str, gold: &[String]) -> bool {
    let answer = normalise(answer);
    gold.iter()
        .map(|g| normalise(g))
        .any(|g| !g.is_empty() && answer.contains(&g))
}

/// Whether a bot's `answer` contains any of the `gold` answers, its citation markers
/// (`[1]`, `[1, 2]`) left out first: a marker the model puts between the parts of a
/// gold answer ("…作为上品 [1]；木材…") is not a different answer.
pub fn answer_contains_gold(answer: &str, gold: &[String]) -> bool {
    contains_gold(&crate::services::evidence::strip_markers(answer), gold)
}

/// Whether the model's answer declines: it says the knowledge base has nothing on it, or
/// repeats the bot's fixed no-recall reply.
pub fn is_decline(answer: &str, no_recall_reply: &str) -> bool {
    let answer = normalise(answer);
    let reply = normalise(no_recall_reply);
    (!reply.is_empty() && answer.contains(&reply))
        || DECLINE_PHRASES
            .iter()
            .any(|p| answer.contains(&normalise(p)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalising_ignores_case_width_space_and_punctuation() {
        assert_eq!(normalise("ＧＰＴ－２ Model。"), "gpt2model");
        assert_eq!(normalise("14,000 亿"), "14000亿");
    }

    #[test]
    fn gold_answers_are_found_inside_the_answer() {
        let gold = vec!["Harrison Chase".to_string(), "哈里森".to_string()];
        assert!(contains_gold("它由 harrison  chase 推出 [1]。", &gold));
        assert!(contains_gold(
            "LLaMA 用了约 14000亿 个 token",
            &["14,000亿".into()]
        ));
        assert!(!contains_gold("不知道", &gold));
        assert!(!contains_gold("anything", &["  ".to_string()]));
    }

    #[test]
    fn citation_markers_inside_an_answer_do_not_hide_its_gold_answer() {
        let gold = vec!["作为上品；木材可制成猎鸟的矛".to_string()];
        let answer = "此树的用途广泛，在大型活动上作为上品 [1]；木材可制成猎鸟的矛 [1]。";
        assert!(!contains_gold(answer, &gold));
        assert!(answer_contains_gold(answer, &gold));
        assert!(answer_contains_gold("它有 [3] 个", &["它有个".to_string()]));
    }

    #[test]
    fn declines_are_recognised() {
        let reply = "抱歉，知识库中没有找到与这个问题相关的内容。";
        assert!(is_decline(reply, reply));
        assert!(is_decline("知识库中没有相关信息。", reply));
        assert!(is_decline("The passages do not contain this.", reply));
        assert!(!is_decline("答案是 Qwen [1]。", reply));
    }
}
