//! Chinese lines that tesseract read as Latin capitals.
//!
//! With `chi_sim+eng` tesseract picks a language per line, and now and then it picks
//! English for a line of Chinese and writes capitals that mean nothing (`ALY, GEST, CRRA,
//! BRAS`): on 21 of 200 scanned CMRC pages, and those pages' error rate was five times the
//! others' (docs/benchmarks.md, "Retrieval over scans"). Such a page is read again with the
//! Chinese languages alone, and that reading is kept when it has far fewer capitals.

/// Whether `c` is a Chinese (or Japanese, Korean) character: what a page "mostly Chinese"
/// is counted in.
fn is_ideograph(c: char) -> bool {
    matches!(c,
        '\u{3040}'..='\u{30FF}'     // kana
        | '\u{3400}'..='\u{4DBF}'   // extension A
        | '\u{4E00}'..='\u{9FFF}'   // unified ideographs
        | '\u{AC00}'..='\u{D7AF}'   // hangul
        | '\u{F900}'..='\u{FAFF}'   // compatibility ideographs
        | '\u{20000}'..='\u{3134F}' // extensions B–G
    )
}

/// The languages of `languages` (`chi_sim+eng`) that read Chinese, Japanese or Korean,
/// joined again, when there are also others to leave out; `None` when a re-read would be
/// the same reading.
pub(crate) fn east_asian_alone(languages: &str) -> Option<String> {
    let (asian, other): (Vec<&str>, Vec<&str>) = languages
        .split('+')
        .partition(|l| ["chi_", "jpn", "kor"].iter().any(|p| l.starts_with(p)));
    (!asian.is_empty() && !other.is_empty()).then(|| asian.join("+"))
}

/// Capital words on a mostly Chinese page from which it is read again: one or two are
/// likely acronyms (CPU, API) and not worth a second reading.
const READ_AGAIN_AT: usize = 3;

/// How many words of `text` look like Chinese read as Latin capitals: on a page with at
/// least as many ideographs as Latin letters, the runs of two or more ASCII letters that
/// are all capitals (`HERTS`, `BK`). Misreads come as whole lines or as the end of a
/// line after Chinese text, mixed with digits and a stray lower-case word, so words are
/// counted, not lines. Genuine acronyms count too; see [`replaces`].
fn capital_words(text: &str) -> usize {
    let ideographs = text.chars().filter(|&c| is_ideograph(c)).count();
    let latin = text.chars().filter(|c| c.is_ascii_alphabetic()).count();
    if ideographs == 0 || ideographs < latin {
        return 0;
    }
    text.split(|c: char| !c.is_ascii_alphabetic())
        .filter(|word| word.len() >= 2 && word.chars().all(|c| c.is_ascii_uppercase()))
        .count()
}

/// Whether `text`, a first reading, should be read again with the Chinese languages
/// alone: its count of capital words when it should.
pub(crate) fn read_again(text: &str) -> Option<usize> {
    let words = capital_words(text);
    (words >= READ_AGAIN_AT).then_some(words)
}

/// Whether `again` replaces a first reading that had `first` capital words: when it has at
/// most half as many. Genuine acronyms are read as capitals in both readings, so a page
/// whose capitals are all real keeps its first reading.
pub(crate) fn replaces(again: &str, first: usize) -> bool {
    capital_words(again) * 2 <= first
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_east_asian_languages_are_read_again() {
        assert_eq!(east_asian_alone("chi_sim+eng").as_deref(), Some("chi_sim"));
        assert_eq!(
            east_asian_alone("chi_sim+chi_tra+eng+fra").as_deref(),
            Some("chi_sim+chi_tra")
        );
        assert_eq!(east_asian_alone("chi_sim"), None);
        assert_eq!(east_asian_alone("eng"), None);
        assert_eq!(east_asian_alone("eng+deu"), None);
    }

    #[test]
    fn capital_words_among_chinese_are_counted_and_an_english_page_has_none() {
        let page = "尤金袋鼠是袋鼠科中体型最小的一种，主要分布在澳大利亚南部和西部的岛屿上，\n\
                    它们以草和树叶为食，夜间活动。状茎币御，具有多数的节; SEA, BK\n\
                    83098; HERTS, FIA, Bee, AIRS, REE, ATE 副";
        assert_eq!(capital_words(page), 7);
        assert_eq!(read_again(page), Some(7));
        // Latin words and one acronym in Chinese text: not worth a second reading.
        let fine =
            "本文介绍 LangChain 框架的用法，它的 API 版本 V1.2 发布于二〇二三年，支持多种大模型。";
        assert_eq!(read_again(fine), None);
        // An English page is never read again, whatever its capitals.
        let english = "THE QUICK BROWN FOX\nJumps over the lazy dog.\nSECTION TWO";
        assert_eq!(read_again(english), None);
    }

    #[test]
    fn a_second_reading_replaces_the_first_only_with_half_the_capitals_or_fewer() {
        let first = "状茎币御，具有多数的节，每节抽生三棱形地上茎一株; SEA, BK, HERTS, FIA";
        let words = read_again(first).unwrap();
        assert!(replaces(
            "状茎匍匐，具有多数的节，每节抽生三棱形地上茎一株，狭线形叶子",
            words
        ));
        // The same acronyms read again: keep the first reading.
        assert!(!replaces(first, words));
    }
}
