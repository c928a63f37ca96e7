//! Markdown: kept as Markdown (the splitter reads its headings), minus what readers never see.
//!
//! YAML front matter is metadata and HTML comments are notes to editors; neither should be
//! retrieved as content. Comment syntax inside fenced code is code, so it stays.

use super::decode::decode;
use super::{DocKind, Extracted, Section};

/// The whole file as one section; the title comes from front matter or the first heading.
pub(super) fn extract(bytes: &[u8]) -> Extracted {
    let (text, _) = decode(bytes, None);
    let text = text.replace("\r\n", "\n");
    let (front_matter, body) = split_front_matter(&text);
    let body = strip_comments(body);
    let title = front_matter
        .and_then(front_matter_title)
        .or_else(|| first_heading(&body));
    Extracted {
        kind: DocKind::Markdown,
        sections: vec![Section {
            page: None,
            title: None,
            text: body,
            ocr: false,
            table: None,
        }],
        page_count: None,
        title,
    }
}

/// A leading `---` … `---` (or `...`) block, and the rest.
fn split_front_matter(text: &str) -> (Option<&str>, &str) {
    let Some(rest) = text.strip_prefix("---\n") else {
        return (None, text);
    };
    let mut offset = 0;
    for line in rest.split_inclusive('\n') {
        let bare = line.trim_end();
        if bare == "---" || bare == "..." {
            return (Some(&rest[..offset]), &rest[offset + line.len()..]);
        }
        offset += line.len();
    }
    // No closing fence: a thematic break at the top, not front matter.
    (None, text)
}

fn front_matter_title(yaml: &str) -> Option<String> {
    let value = yaml.lines().find_map(|l| l.strip_prefix("title:"))?.trim();
    let value = value.trim_matches(|c| c == '"' || c == '\'').trim();
    (!value.is_empty()).then(|| value.to_owned())
}

/// A code fence opener/closer: up to three spaces, then at least three backticks or tildes.
fn fence_of(line: &str) -> Option<(char, usize)> {
    let indent = line.len() - line.trim_start_matches(' ').len();
    let rest = &line[indent..];
    let marker = rest.chars().next().filter(|c| *c == '`' || *c == '~')?;
    let count = rest.chars().take_while(|c| *c == marker).count();
    (indent <= 3 && count >= 3).then_some((marker, count))
}

/// Drop `<!-- … -->` (possibly over several lines) outside fenced code.
fn strip_comments(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut fence: Option<(char, usize)> = None;
    let mut in_comment = false;
    for line in text.split_inclusive('\n') {
        if let Some((marker, count)) = fence {
            out.push_str(line);
            if fence_of(line).is_some_and(|(m, n)| {
                m == marker && n >= count && line.trim().chars().all(|c| c == m)
            }) {
                fence = None;
            }
            continue;
        }
        let mut rest = line;
        loop {
            if in_comment {
                match rest.find("-->") {
                    Some(end) => {
                        rest = &rest[end + 3..];
                        in_comment = false;
                    }
                    None => break,
                }
            } else if let Some(start) = rest.find("<!--") {
                out.push_str(&rest[..start]);
                rest = &rest[start + 4..];
                in_comment = true;
            } else {
                out.push_str(rest);
                break;
            }
        }
        if in_comment && !out.ends_with('\n') && line.ends_with('\n') {
            out.push('\n');
        }
        if !in_comment {
            fence = fence_of(line);
        }
    }
    out
}

/// The first ATX (`# x`) or Setext (`x` over `===`/`---`) heading outside fenced code.
fn first_heading(text: &str) -> Option<String> {
    let mut fence: Option<(char, usize)> = None;
    let mut previous = "";
    for line in text.lines() {
        if let Some((marker, _)) = fence {
            if fence_of(line).is_some_and(|(m, _)| m == marker) {
                fence = None;
            }
            continue;
        }
        if let Some(found) = fence_of(line) {
            fence = Some(found);
            continue;
        }
        let trimmed = line.trim();
        if let Some(heading) = trimmed.strip_prefix('#') {
            let heading = heading.trim_start_matches('#');
            if heading.starts_with(' ') && !heading.trim().is_empty() {
                return Some(heading.trim().trim_end_matches('#').trim().to_owned());
            }
        }
        let is_underline = trimmed.len() >= 2
            && (trimmed.chars().all(|c| c == '=') || trimmed.chars().all(|c| c == '-'));
        if is_underline && !previous.trim().is_empty() {
            return Some(previous.trim().to_owned());
        }
        previous = line;
    }
    None
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "a failed unwrap is a failed test")]
mod tests {
    use super::*;

    #[test]
    fn front_matter_is_dropped_and_gives_the_title() {
        let doc = extract("---\ntitle: \"小抄\"\ntags: [a]\n---\n\n正文\n".as_bytes());
        assert_eq!(doc.sections[0].text, "\n正文\n");
        assert_eq!(doc.title.as_deref(), Some("小抄"));
    }

    #[test]
    fn an_unclosed_rule_is_not_front_matter() {
        assert_eq!(split_front_matter("---\ntext"), (None, "---\ntext"));
    }

    #[test]
    fn comments_go_but_code_stays() {
        let md = "a <!-- x --> b\n<!-- one\ntwo -->\nc\n```html\n<!-- kept -->\n```\nd<!--e-->\n";
        assert_eq!(
            strip_comments(md),
            "a  b\n\nc\n```html\n<!-- kept -->\n```\nd\n"
        );
    }

    #[test]
    fn title_from_the_first_real_heading() {
        assert_eq!(
            first_heading("```\n# not a title\n```\n## 指南 ##\n").as_deref(),
            Some("指南")
        );
        assert_eq!(
            first_heading("向量检索\n======\n").as_deref(),
            Some("向量检索")
        );
        assert_eq!(first_heading("#hashtag\n"), None);
    }
}
