//! The links of a web page and the addresses of a sitemap, for crawling a site.
//!
//! Only the raw `href`s and `<loc>`s come out: resolving them against the page's address,
//! and deciding which to follow (same host, depth, page cap), is the server's business.

use scraper::{Html, Selector};

use super::decode::{decode, html_declared_charset};

/// Most links taken from one page: a crawl has a page cap anyway, and a page of a million
/// anchors must not cost a million lookups.
const MAX_LINKS: usize = 10_000;

/// The `href` of every `<a>` of an HTML page, in document order, without fragments-only
/// links (`#top`) and scripts (`javascript:`, `mailto:`), duplicates removed.
pub fn page_links(bytes: &[u8]) -> Vec<String> {
    let (source, _) = decode(bytes, html_declared_charset(bytes));
    let page = Html::parse_document(&source);
    let Ok(anchors) = Selector::parse("a[href]") else {
        return Vec::new();
    };
    let mut seen = std::collections::HashSet::new();
    page.select(&anchors)
        .filter_map(|a| a.value().attr("href"))
        .map(str::trim)
        .filter(|href| {
            let lower = href.to_ascii_lowercase();
            !href.is_empty()
                && !href.starts_with('#')
                && !lower.starts_with("javascript:")
                && !lower.starts_with("mailto:")
                && !lower.starts_with("tel:")
                && !lower.starts_with("data:")
        })
        .filter(|href| seen.insert(href.to_string()))
        .take(MAX_LINKS)
        .map(str::to_string)
        .collect()
}

/// The `<loc>` addresses of an XML sitemap (`<urlset>`) or sitemap index
/// (`<sitemapindex>`); `None` when the bytes are not a sitemap.
pub fn sitemap_locations(bytes: &[u8]) -> Option<Vec<String>> {
    let (text, _) = decode(bytes, None);
    let head: String = text.chars().take(4096).collect();
    if !(head.contains("<urlset") || head.contains("<sitemapindex")) {
        return None;
    }
    let mut found = Vec::new();
    let mut rest = text.as_str();
    while let Some(start) = rest.find("<loc>") {
        rest = &rest[start + "<loc>".len()..];
        let Some(end) = rest.find("</loc>") else {
            break;
        };
        let loc = rest[..end].trim();
        // A sitemap is XML: `&amp;` is the only escape a URL usually carries.
        let loc = loc
            .trim_start_matches("<![CDATA[")
            .trim_end_matches("]]>")
            .replace("&amp;", "&");
        if !loc.is_empty() && found.len() < MAX_LINKS {
            found.push(loc);
        }
        rest = &rest[end..];
    }
    Some(found)
}

/// Whether an XML sitemap is a sitemap index (`<sitemapindex>`), whose `<loc>`s are
/// other sitemaps rather than pages.
pub fn is_sitemap_index(bytes: &[u8]) -> bool {
    let (text, _) = decode(bytes, None);
    let head: String = text.chars().take(4096).collect();
    head.contains("<sitemapindex")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn links_keep_pages_and_drop_scripts_and_anchors() {
        let html = br##"<html><body><a href="/a">A</a> <a href="#top">top</a>
            <a href="javascript:void(0)">x</a> <a href="b.html">B</a> <a href="/a">again</a>
            <a href="mailto:x@example.com">mail</a></body></html>"##;
        assert_eq!(page_links(html), ["/a", "b.html"]);
    }

    #[test]
    fn sitemaps_are_read_and_other_xml_is_not() {
        let xml =
            b"<?xml version=\"1.0\"?><urlset xmlns=\"http://www.sitemaps.org/schemas/sitemap/0.9\">
            <url><loc>https://example.com/a?x=1&amp;y=2</loc></url>
            <url><loc> https://example.com/b </loc></url></urlset>";
        assert_eq!(
            sitemap_locations(xml).unwrap(),
            ["https://example.com/a?x=1&y=2", "https://example.com/b"]
        );
        assert!(sitemap_locations(b"<html><body>hi</body></html>").is_none());
        assert!(!is_sitemap_index(xml));
        let index = b"<?xml version=\"1.0\"?><sitemapindex xmlns=\"http://www.sitemaps.org/schemas/sitemap/0.9\">
            <sitemap><loc>https://example.com/s1.xml</loc></sitemap></sitemapindex>";
        assert!(is_sitemap_index(index));
        assert_eq!(
            sitemap_locations(index).unwrap(),
            ["https://example.com/s1.xml"]
        );
    }
}
