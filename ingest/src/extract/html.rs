//! HTML: the readable content of a page, as Markdown-flavoured text.
//!
//! Menus, footers, scripts and hidden ads would otherwise be indexed on every page of a site
//! and crowd out real answers, so only `<article>` (else `<main>`, else `<body>`) is read and
//! boilerplate elements are skipped. Headings become `#` lines so the Markdown splitter keeps
//! sections together, and table rows stay on one line.

use scraper::{ElementRef, Html, Node, Selector};

use super::decode::{decode, html_declared_charset};
use super::{DocKind, Extracted, Section};

/// Elements that are never content. `header` is only chrome outside an article or section,
/// where it usually holds the article's own title.
const DROPPED: &[&str] = &[
    "script", "style", "noscript", "template", "nav", "footer", "aside", "form", "iframe", "svg",
    "head", "title", "button", "select", "textarea", "canvas", "object", "embed",
];

/// Elements that start and end a line.
const LINE_BLOCKS: &[&str] = &[
    "div",
    "main",
    "ul",
    "ol",
    "dl",
    "dt",
    "dd",
    "figure",
    "figcaption",
    "address",
    "details",
    "summary",
    "thead",
    "tbody",
    "tfoot",
    "caption",
    "header",
    "center",
];

/// Elements set off by a blank line.
const PARAGRAPH_BLOCKS: &[&str] = &[
    "p",
    "blockquote",
    "table",
    "article",
    "section",
    "pre",
    "hr",
];

/// Deeper nesting is flattened to plain text, so crafted input can't exhaust the stack.
const MAX_DEPTH: usize = 200;

/// The page's content as one section; the title is `<title>`, else the first `<h1>`.
pub(super) fn extract(bytes: &[u8]) -> Extracted {
    let (source, _) = decode(bytes, html_declared_charset(bytes));
    let page = Html::parse_document(&source);
    let mut writer = Writer::default();
    for root in content_roots(&page) {
        writer.article_depth = usize::from(root.value().name() == "article");
        writer.children(root, 0);
        writer.blank_line();
    }
    let title = first_text(&page, "title").or_else(|| first_text(&page, "h1"));
    Extracted {
        kind: DocKind::Html,
        sections: vec![Section {
            page: None,
            title: None,
            text: writer.out,
            ocr: false,
            table: None,
        }],
        page_count: None,
        title,
    }
}

fn select<'a>(page: &'a Html, css: &str) -> Vec<ElementRef<'a>> {
    Selector::parse(css)
        .map(|s| page.select(&s).collect())
        .unwrap_or_default()
}

/// Outermost visible `<article>`s, else `<main>`s, else `<body>`.
fn content_roots(page: &Html) -> Vec<ElementRef<'_>> {
    for css in ["article", "main"] {
        let roots: Vec<_> = select(page, css)
            .into_iter()
            .filter(|el| {
                !is_hidden(el)
                    && !el
                        .ancestors()
                        .filter_map(ElementRef::wrap)
                        .any(|a| a.value().name() == css)
            })
            .collect();
        if !roots.is_empty() {
            return roots;
        }
    }
    let body = select(page, "body");
    if body.is_empty() {
        vec![page.root_element()]
    } else {
        body
    }
}

fn first_text(page: &Html, css: &str) -> Option<String> {
    let el = select(page, css).into_iter().next()?;
    let text = el.text().collect::<Vec<_>>().join(" ");
    let text = text.split_whitespace().collect::<Vec<_>>().join(" ");
    (!text.is_empty()).then_some(text)
}

/// `hidden`, `aria-hidden="true"`, or an inline style that hides it.
fn is_hidden(el: &ElementRef<'_>) -> bool {
    let el = el.value();
    if el.attr("hidden").is_some()
        || el
            .attr("aria-hidden")
            .is_some_and(|v| v.trim().eq_ignore_ascii_case("true"))
    {
        return true;
    }
    el.attr("style").is_some_and(|style| {
        let style: String = style
            .chars()
            .filter(|c| !c.is_whitespace())
            .collect::<String>()
            .to_ascii_lowercase();
        style.contains("display:none") || style.contains("visibility:hidden")
    })
}

/// A footnote or endnote (`<aside epub:type="footnote">` in EPUB 3, `role="doc-endnote"`):
/// content, though it is an `aside`.
fn is_note(el: &ElementRef<'_>) -> bool {
    let el = el.value();
    [el.attr("epub:type"), el.attr("role")]
        .into_iter()
        .flatten()
        .any(|kind| {
            kind.split_whitespace().any(|k| {
                matches!(
                    k.trim_start_matches("doc-"),
                    "footnote" | "endnote" | "rearnote" | "note" | "footnotes" | "endnotes"
                )
            })
        })
}

/// Builds the text while walking the tree.
#[derive(Default)]
struct Writer {
    out: String,
    /// Whitespace was seen and not yet written.
    space: bool,
    /// Inside a heading or table cell: line breaks become spaces.
    inline_depth: usize,
    /// Inside `<pre>`: whitespace is kept.
    pre_depth: usize,
    list_depth: usize,
    article_depth: usize,
    /// Cells written so far in each open table row.
    cells: Vec<usize>,
}

impl Writer {
    fn children(&mut self, el: ElementRef<'_>, depth: usize) {
        for child in el.children() {
            match child.value() {
                Node::Text(text) => self.text(text),
                Node::Element(_) => {
                    if let Some(child) = ElementRef::wrap(child) {
                        self.element(child, depth + 1);
                    }
                }
                _ => {}
            }
        }
    }

    fn element(&mut self, el: ElementRef<'_>, depth: usize) {
        let name = el.value().name();
        let chrome_header = name == "header" && self.article_depth == 0;
        let dropped = DROPPED.contains(&name) && !is_note(&el);
        if dropped || chrome_header || is_hidden(&el) {
            return;
        }
        if depth > MAX_DEPTH {
            self.text(&el.text().collect::<Vec<_>>().join(" "));
            return;
        }
        match name {
            "h1" | "h2" | "h3" | "h4" | "h5" | "h6" => self.heading(el, depth, name),
            "br" => self.newline(),
            "li" => {
                self.newline();
                if self.inline_depth == 0 {
                    self.out
                        .push_str(&"  ".repeat(self.list_depth.saturating_sub(1)));
                    self.out.push_str("- ");
                }
                self.children(el, depth);
                self.newline();
            }
            "ul" | "ol" => {
                self.list_depth += 1;
                self.block(el, depth, false);
                self.list_depth -= 1;
            }
            "tr" => {
                self.newline();
                self.cells.push(0);
                self.children(el, depth);
                self.cells.pop();
                self.newline();
            }
            "td" | "th" => {
                if let Some(count) = self.cells.last_mut() {
                    if *count > 0 {
                        self.out.push_str(" | ");
                        self.space = false;
                    }
                    *count += 1;
                }
                self.inline_depth += 1;
                self.children(el, depth);
                self.inline_depth -= 1;
            }
            "pre" => {
                self.pre_depth += 1;
                self.block(el, depth, true);
                self.pre_depth -= 1;
            }
            "article" | "section" => {
                self.article_depth += 1;
                self.block(el, depth, true);
                self.article_depth -= 1;
            }
            _ if PARAGRAPH_BLOCKS.contains(&name) => self.block(el, depth, true),
            _ if LINE_BLOCKS.contains(&name) => self.block(el, depth, false),
            _ => self.children(el, depth),
        }
    }

    fn block(&mut self, el: ElementRef<'_>, depth: usize, is_paragraph: bool) {
        let edge = |w: &mut Self| {
            if is_paragraph {
                w.blank_line()
            } else {
                w.newline()
            }
        };
        edge(self);
        self.children(el, depth);
        edge(self);
    }

    fn heading(&mut self, el: ElementRef<'_>, depth: usize, name: &str) {
        self.blank_line();
        if self.inline_depth == 0 {
            let level = name[1..].parse::<usize>().unwrap_or(1);
            self.out.push_str(&"#".repeat(level));
            self.out.push(' ');
        }
        self.inline_depth += 1;
        self.children(el, depth);
        self.inline_depth -= 1;
        self.blank_line();
    }

    fn text(&mut self, text: &str) {
        if self.pre_depth > 0 {
            self.out.push_str(text);
            return;
        }
        for c in text.chars() {
            if c.is_whitespace() {
                self.space = true;
                continue;
            }
            if self.space && !self.out.is_empty() && !self.out.ends_with(['\n', ' ']) {
                self.out.push(' ');
            }
            self.space = false;
            self.out.push(c);
        }
    }

    fn newline(&mut self) {
        if self.inline_depth > 0 {
            self.space = true;
            return;
        }
        let kept = self.out.trim_end_matches([' ', '\t']).len();
        self.out.truncate(kept);
        if !self.out.is_empty() && !self.out.ends_with('\n') {
            self.out.push('\n');
        }
        self.space = false;
    }

    fn blank_line(&mut self) {
        self.newline();
        if self.inline_depth == 0 && !self.out.is_empty() && !self.out.ends_with("\n\n") {
            self.out.push('\n');
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "a failed unwrap is a failed test")]
mod tests {
    use super::*;

    fn text_of(html: &str) -> String {
        super::super::decode::normalise(&extract(html.as_bytes()).sections[0].text)
    }

    #[test]
    fn boilerplate_is_dropped() {
        let html = r#"<html><head><title>T</title><style>p{}</style></head><body>
            <header><nav><a href="/">首页</a></nav></header>
            <div style="display: none">广告</div><div hidden>隐藏</div><p aria-hidden="true">读屏不读</p>
            <p>正文 &lt;一&gt; &amp; 二</p><script>track()</script><noscript>开启脚本</noscript>
            <aside>侧栏</aside><form><input value="搜索"></form><footer>版权</footer></body></html>"#;
        assert_eq!(text_of(html), "正文 <一> & 二");
        assert_eq!(extract(html.as_bytes()).title.as_deref(), Some("T"));
    }

    #[test]
    fn article_wins_and_keeps_its_header() {
        let html = "<body><p>站点</p><main><p>主体</p><article><header><h1>标题</h1></header><p>文章</p></article></main></body>";
        assert_eq!(text_of(html), "# 标题\n\n文章");
        assert_eq!(
            text_of("<body><p>外</p><main><p>主体</p></main></body>"),
            "主体"
        );
    }

    #[test]
    fn structure_becomes_lines() {
        let html = "<article><h2>概述</h2><p>一\n  二<br>三</p><ul><li>甲<ul><li>乙</li></ul></li></ul>\
            <table><tr><th>名</th><th>地</th></tr><tr><td><p>信天翁</p></td><td>南 大洋</td></tr></table></article>";
        assert_eq!(
            text_of(html),
            "## 概述\n\n一 二\n三\n\n- 甲\n  - 乙\n\n名 | 地\n信天翁 | 南 大洋"
        );
    }

    #[test]
    fn footnote_asides_are_content() {
        let html = "<body><p>正文<a epub:type=\"noteref\" href=\"#n1\">1</a></p>\
            <aside epub:type=\"footnote\" id=\"n1\"><p>1 注释内容</p></aside>\
            <aside><p>侧栏</p></aside><aside role=\"doc-endnote\"><p>尾注</p></aside></body>";
        assert_eq!(text_of(html), "正文1\n\n1 注释内容\n\n尾注");
    }

    #[test]
    fn title_falls_back_to_h1() {
        assert_eq!(
            extract("<body><h1> 大 标题 </h1></body>".as_bytes())
                .title
                .as_deref(),
            Some("大 标题")
        );
    }
}
