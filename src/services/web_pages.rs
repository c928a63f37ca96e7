//! Web pages as documents: added by URL, fetched by their job, re-synced on request, and
//! whole sites crawled page by page.
//!
//! A URL becomes a document at once (`queued`, no body yet) with its job, in the same
//! transaction as an upload, so a crash loses nothing: the job fetches the page (see
//! [`fetch_for_job`]), stores the body like an uploaded file, and goes on as an upload's
//! job does. A page that cannot be fetched is a failed document with the reason; the other
//! URLs of the request are not affected.
//!
//! A crawl is the same thing repeated: each page of a crawl is a document whose job, once
//! it has fetched an HTML page, adds the page's links (same host only) as documents of
//! their own, one link deeper, until the crawl's depth or page cap is reached. A sitemap is
//! read when the request is made, and its pages are added as documents.
//!
//! A sitemap's pages are one crawl that follows no links, whose first page stands for the
//! sitemap. Syncing pages again, and re-crawling, is [`super::web_sync`].

use std::path::Path;

use ingest::pipeline::sha256_hex;
use reqwest::Url;
use serde::Deserialize;
use tracing::{info, instrument, warn};

use super::fetch::{Fetched, FetchedPage, Fetcher, Validators};
use super::files::FileStore;
use super::knowledge::{KnowledgeService, UploadOutcome, UploadSettings};
use crate::error::{Error, Result};
use crate::store::Store;
use crate::store::documents::{CrawlPlace, DocumentRow, FetchRecord, NewDocument};

/// Most URLs one request may add.
pub const MAX_URLS_PER_REQUEST: usize = 100;
/// Deepest crawl: links followed from the start page.
pub const MAX_CRAWL_DEPTH: u32 = 5;
/// Most pages one crawl (or one sitemap) adds.
pub const MAX_CRAWL_PAGES: u32 = 1_000;
/// Most sitemaps of one sitemap index that are read.
pub const MAX_CHILD_SITEMAPS: usize = 50;
/// Longest document name made from a URL, in characters.
const MAX_URL_NAME_CHARS: usize = 200;

/// How far a crawl goes from its start page.
#[derive(Debug, Clone, Copy, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CrawlSettings {
    /// Links followed from the start page (0: the start page only; at most 5).
    #[serde(default = "default_depth")]
    #[schema(minimum = 0, maximum = 5, default = 1)]
    pub max_depth: u32,
    /// Most pages the crawl adds, the start page included (1 to 1000).
    #[serde(default = "default_pages")]
    #[schema(minimum = 1, maximum = 1000, default = 50)]
    pub max_pages: u32,
}

fn default_depth() -> u32 {
    1
}

pub(super) fn default_pages() -> u32 {
    50
}

impl CrawlSettings {
    fn validate(&self) -> Result<()> {
        if self.max_depth > MAX_CRAWL_DEPTH {
            return Err(Error::InvalidInput(format!(
                "crawl.max_depth must be at most {MAX_CRAWL_DEPTH}"
            )));
        }
        if !(1..=MAX_CRAWL_PAGES).contains(&self.max_pages) {
            return Err(Error::InvalidInput(format!(
                "crawl.max_pages must be between 1 and {MAX_CRAWL_PAGES}"
            )));
        }
        Ok(())
    }
}

/// Where a page added by URL stands.
#[derive(Debug, Clone, Copy)]
enum Placement<'a> {
    /// On its own.
    Alone,
    /// The start page of a crawl with these bounds.
    CrawlStart(CrawlSettings),
    /// A page a sitemap listed: the first one added (`start: None`) stands for the
    /// sitemap, the others belong to its crawl.
    SitemapPage {
        sitemap: &'a Url,
        start: Option<&'a str>,
        max_pages: u32,
    },
}

/// The identity of a web document in its KB: the same URL twice is a duplicate.
fn url_sha256(url: &Url) -> String {
    sha256_hex(format!("url:{url}").as_bytes())
}

/// A URL as a document's name: without the scheme, at most 200 characters.
fn url_name(url: &Url) -> String {
    let text = url.as_str();
    let bare = text
        .strip_prefix("https://")
        .or_else(|| text.strip_prefix("http://"))
        .unwrap_or(text);
    bare.chars().take(MAX_URL_NAME_CHARS).collect()
}

/// The extension a fetched body is stored under, which tells the extractors what it is
/// (they check the bytes as well): from the `Content-Type`, else from the URL's last path
/// segment, else none (the bytes decide alone).
pub(super) fn extension_for(page: &FetchedPage) -> Option<String> {
    let by_type = match page.content_type.as_deref() {
        Some("text/html" | "application/xhtml+xml") => Some("html"),
        Some("application/pdf") => Some("pdf"),
        Some("text/plain") => Some("txt"),
        Some("text/markdown") => Some("md"),
        Some("text/csv") => Some("csv"),
        Some("application/json") => Some("json"),
        _ => None,
    };
    if let Some(ext) = by_type {
        return Some(ext.to_string());
    }
    let last = page
        .final_url
        .path_segments()?
        .next_back()?
        .to_ascii_lowercase();
    let (_, ext) = last.rsplit_once('.')?;
    ingest::extract::is_accepted_extension(ext).then(|| ext.to_string())
}

/// Where a web document's body is stored: named by the document and the body's hash, so a
/// sync writes a new file beside the old one and the old one goes only once the database
/// points at the new.
pub(super) fn body_path(document_id: &str, sha256: &str, ext: Option<&str>) -> String {
    let short = sha256.get(..12).unwrap_or(sha256);
    match ext {
        Some(ext) => format!("files/{document_id}-{short}.{ext}"),
        None => format!("files/{document_id}-{short}"),
    }
}

/// Whether `link` is on the same host as `start` (any scheme or port, so that a site
/// moving from http to https is still one site): a crawl never leaves its host.
fn same_site(link: &Url, start: &Url) -> bool {
    link.host_str() == start.host_str()
}

/// `link` without its fragment (`#section` is the same page).
fn without_fragment(mut link: Url) -> Url {
    link.set_fragment(None);
    link
}

/// The `locations` (relative to `base`) on `site`'s host, without fragments or repeats,
/// at most `cap` of them.
fn same_site_links(base: &Url, site: &Url, locations: Vec<String>, cap: usize) -> Vec<Url> {
    let mut links: Vec<Url> = Vec::new();
    for loc in locations {
        if links.len() >= cap {
            break;
        }
        let Ok(link) = base.join(&loc) else {
            continue;
        };
        let link = without_fragment(link);
        if same_site(&link, site) && Fetcher::parse(link.as_str()).is_ok() && !links.contains(&link)
        {
            links.push(link);
        }
    }
    links
}

/// A gzipped body (`sitemap.xml.gz`) unpacked, refusing to grow past `max_bytes` (a small
/// archive can unpack to gigabytes); any other body as it is.
fn gunzip(url: &Url, body: Vec<u8>, max_bytes: u64) -> Result<Vec<u8>> {
    use std::io::Read;
    if !body.starts_with(&[0x1f, 0x8b]) {
        return Ok(body);
    }
    let mut unpacked = Vec::new();
    flate2::read::GzDecoder::new(body.as_slice())
        .take(max_bytes.saturating_add(1))
        .read_to_end(&mut unpacked)
        .map_err(|e| {
            Error::Ingest(ingest::Error::Fetch(format!(
                "{url} looks gzipped but cannot be unpacked: {e}"
            )))
        })?;
    if unpacked.len() as u64 > max_bytes {
        return Err(Error::Ingest(ingest::Error::TooLarge {
            detail: format!(
                "{url} unpacks to more than the limit of {max_bytes} bytes (ingest.max_fetch_bytes)"
            ),
        }));
    }
    Ok(unpacked)
}

impl KnowledgeService {
    /// Add web pages by URL (with `crawl`, crawl from each; a sitemap's pages are added
    /// instead of the sitemap): one document each, queued; their jobs fetch them.
    /// A URL that can never be fetched (not http(s), or one that leads to a private
    /// address while those are refused) fails the whole request before anything is
    /// stored, as a file of the wrong type does.
    #[instrument(skip_all, fields(kb = id_or_name, urls = urls.len()))]
    pub async fn add_urls(
        &self,
        id_or_name: &str,
        urls: &[String],
        crawl: Option<CrawlSettings>,
        settings: &UploadSettings,
    ) -> Result<Vec<UploadOutcome>> {
        let kb = self.store.kb(id_or_name).await?;
        self.check_model(&kb)?;
        if urls.is_empty() || urls.len() > MAX_URLS_PER_REQUEST {
            return Err(Error::InvalidInput(format!(
                "send 1 to {MAX_URLS_PER_REQUEST} URLs in 'urls'"
            )));
        }
        if let Some(crawl) = &crawl {
            crawl.validate()?;
        }
        if let Some(split) = &settings.split {
            split.validate()?;
        }
        let mut parsed = Vec::with_capacity(urls.len());
        for raw in urls {
            let url = Fetcher::parse(raw)?;
            self.fetcher.check_address(&url).await?;
            parsed.push(url);
        }
        let split = settings
            .split
            .as_ref()
            .map(serde_json::to_string)
            .transpose();
        let clean = settings
            .clean
            .as_ref()
            .map(serde_json::to_string)
            .transpose();
        let (split, clean) = (
            split.map_err(|e| Error::Internal(e.to_string()))?,
            clean.map_err(|e| Error::Internal(e.to_string()))?,
        );
        let mut outcomes = Vec::new();
        for url in parsed {
            let (split, clean) = (split.as_deref(), clean.as_deref());
            if let Some(pages) = self.sitemap_pages(&url, crawl).await? {
                // The sitemap's pages are one crawl (no links followed), whose start is
                // the first page added: it remembers the sitemap, read again when it is
                // synced.
                let max_pages = crawl.map_or(default_pages(), |c| c.max_pages);
                let mut start: Option<String> = None;
                for page in pages {
                    let placement = Placement::SitemapPage {
                        sitemap: &url,
                        start: start.as_deref(),
                        max_pages,
                    };
                    let outcome = self
                        .add_url(&kb.kb_id, &page, placement, split, clean)
                        .await?;
                    if start.is_none() && !outcome.duplicate {
                        start = Some(outcome.id.clone());
                    }
                    outcomes.push(outcome);
                }
                continue;
            }
            let placement = crawl.map_or(Placement::Alone, Placement::CrawlStart);
            outcomes.push(
                self.add_url(&kb.kb_id, &url, placement, split, clean)
                    .await?,
            );
        }
        self.queue.notify();
        Ok(outcomes)
    }

    /// The pages a sitemap lists on its own host (at most the crawl's page cap), or `None`
    /// when `url` is not a sitemap. Only addresses ending in `.xml` or `.xml.gz` are
    /// looked at, and a gzip body is unpacked (within the fetch size cap). A sitemap index
    /// (`<sitemapindex>`) is followed to its sitemaps on the same host, at most
    /// [`MAX_CHILD_SITEMAPS`] of them, until the cap is reached; one of them that cannot be
    /// read is passed over. A sitemap that cannot be fetched is added as a page, whose
    /// job then fails with the reason, as any other page's would.
    pub(super) async fn sitemap_pages(
        &self,
        url: &Url,
        crawl: Option<CrawlSettings>,
    ) -> Result<Option<Vec<Url>>> {
        let path = url.path().to_ascii_lowercase();
        if !(path.ends_with(".xml") || path.ends_with(".xml.gz")) {
            return Ok(None);
        }
        let (final_url, body) = match self.fetch_sitemap(url).await {
            Ok(fetched) => fetched,
            Err(e) if e.code() == "url_refused" => return Err(e),
            Err(_) => return Ok(None),
        };
        let Some(locations) = ingest::extract::sitemap_locations(&body) else {
            return Ok(None);
        };
        let cap = crawl.map_or(default_pages(), |c| c.max_pages) as usize;
        let mut pages: Vec<Url> = Vec::new();
        if ingest::extract::is_sitemap_index(&body) {
            let children = same_site_links(&final_url, &final_url, locations, MAX_CHILD_SITEMAPS);
            for child in children {
                if pages.len() >= cap {
                    break;
                }
                // The protocol has no index of indexes: a child is read as a sitemap.
                match self.fetch_sitemap(&child).await {
                    Ok((child_url, child_body)) => {
                        let listed = ingest::extract::sitemap_locations(&child_body)
                            .filter(|_| !ingest::extract::is_sitemap_index(&child_body))
                            .unwrap_or_default();
                        for link in same_site_links(&child_url, &final_url, listed, cap) {
                            if pages.len() < cap && !pages.contains(&link) {
                                pages.push(link);
                            }
                        }
                    }
                    Err(e) => {
                        warn!(sitemap = %child, error = %e, "sitemap index: a sitemap not read")
                    }
                }
            }
        } else {
            pages = same_site_links(&final_url, &final_url, locations, cap);
        }
        if pages.is_empty() {
            return Err(Error::InvalidInput(format!(
                "the sitemap {url} lists no page on {}",
                url.host_str().unwrap_or_default()
            )));
        }
        info!(sitemap = %url, pages = pages.len(), "sitemap read");
        Ok(Some(pages))
    }

    /// Fetch a sitemap and unpack it if it is gzipped; returns where it came from (after
    /// redirects) and the XML.
    async fn fetch_sitemap(&self, url: &Url) -> Result<(Url, Vec<u8>)> {
        let Fetched::Page(page) = self.fetcher.fetch(url, &Validators::default()).await? else {
            return Err(Error::Ingest(ingest::Error::Fetch(format!(
                "{url} answered 304 Not Modified to a request without validators"
            ))));
        };
        let body = gunzip(url, page.body, self.fetcher.max_bytes)?;
        Ok((page.final_url, body))
    }

    async fn add_url(
        &self,
        kb_id: &str,
        url: &Url,
        placement: Placement<'_>,
        split: Option<&str>,
        clean: Option<&str>,
    ) -> Result<UploadOutcome> {
        let name = url_name(url);
        let sha256 = url_sha256(url);
        if let Some(existing) = self.store.document_by_sha256(kb_id, &sha256).await? {
            return Ok(UploadOutcome::duplicate(existing, name));
        }
        let document_id = uuid::Uuid::new_v4().to_string();
        let file_path = format!("files/{document_id}");
        let inserted = self
            .store
            .insert_document(&NewDocument {
                document_id: &document_id,
                kb_id,
                name: &name,
                bytes: 0,
                sha256: &sha256,
                file_path: &file_path,
                split_json: split,
                clean_json: clean,
                source_url: Some(url.as_str()),
                crawl: match placement {
                    Placement::Alone => None,
                    Placement::CrawlStart(c) => Some(CrawlPlace {
                        crawl_id: &document_id,
                        depth: 0,
                        max_depth: i64::from(c.max_depth),
                        max_pages: i64::from(c.max_pages),
                    }),
                    Placement::SitemapPage {
                        start, max_pages, ..
                    } => Some(CrawlPlace {
                        crawl_id: start.unwrap_or(&document_id),
                        depth: 0,
                        max_depth: 0,
                        max_pages: i64::from(max_pages),
                    }),
                },
                crawl_sitemap_url: match placement {
                    Placement::SitemapPage {
                        sitemap,
                        start: None,
                        ..
                    } => Some(sitemap.as_str()),
                    _ => None,
                },
            })
            .await;
        let job_id = match inserted {
            Ok(job_id) => job_id,
            Err(Error::Conflict(_)) => {
                // The same URL added at the same moment by another request.
                let existing = self
                    .store
                    .document_by_sha256(kb_id, &sha256)
                    .await?
                    .ok_or_else(|| Error::Conflict(format!("{url} is being added")))?;
                return Ok(UploadOutcome::duplicate(existing, name));
            }
            Err(e) => return Err(e),
        };
        Ok(UploadOutcome::queued(document_id, name, job_id))
    }
}

/// The first fetch of a web document, by its job: store the body like an uploaded file,
/// record it on the document, and, for a page of a crawl, add the pages it links to.
/// Returns the body and the name (its extension says what it is) to extract it under.
pub(crate) async fn fetch_for_job(
    store: &Store,
    fetcher: &Fetcher,
    files: &FileStore,
    doc: &DocumentRow,
    url: &str,
) -> Result<(String, Vec<u8>)> {
    let url = Fetcher::parse(url)?;
    let Fetched::Page(page) = fetcher.fetch(&url, &Validators::default()).await? else {
        return Err(Error::Ingest(ingest::Error::Fetch(format!(
            "{url} answered 304 Not Modified to a request without validators"
        ))));
    };
    let sha = sha256_hex(&page.body);
    let ext = extension_for(&page);
    let path = body_path(&doc.document_id, &sha, ext.as_deref());
    files.put(&path, &page.body).await?;
    let recorded = store
        .record_first_fetch(
            &doc.document_id,
            &FetchRecord {
                file_path: &path,
                bytes: page.body.len() as i64,
                source_sha256: &sha,
                etag: page.validators.etag.as_deref(),
                last_modified: page.validators.last_modified.as_deref(),
            },
        )
        .await;
    if let Err(e) = recorded {
        if path != doc.file_path {
            files.remove(&path).await;
        }
        return Err(e);
    }
    if path != doc.file_path {
        files.remove(&doc.file_path).await;
    }
    if ext.as_deref() == Some("html") {
        crawl_links(store, doc, &url, &page.final_url, &page.body).await?;
    }
    let name = Path::new(&path)
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    Ok((name, page.body))
}

/// Add the same-site links of a crawled page (`body`, whose links are relative to `base`,
/// read from `url`, the crawl's site) as pages of its crawl, one link deeper, while the
/// crawl is under its depth and page cap. Returns how many were added: a link already in
/// the KB is passed over, so reading a page again adds only the links it gained.
pub(super) async fn crawl_links(
    store: &Store,
    doc: &DocumentRow,
    url: &Url,
    base: &Url,
    body: &[u8],
) -> Result<usize> {
    let (Some(crawl_id), Some(depth), Some(max_depth), Some(max_pages)) = (
        doc.crawl_id.as_deref(),
        doc.crawl_depth,
        doc.crawl_max_depth,
        doc.crawl_max_pages,
    ) else {
        return Ok(0);
    };
    if depth >= max_depth {
        return Ok(0);
    }
    // The site is the one the crawl was started on (the URL as given, before redirects).
    let mut links: Vec<Url> = Vec::new();
    for href in ingest::extract::page_links(body) {
        let Ok(link) = base.join(&href) else {
            continue;
        };
        let link = without_fragment(link);
        if same_site(&link, url) && Fetcher::parse(link.as_str()).is_ok() && !links.contains(&link)
        {
            links.push(link);
        }
    }
    let place = CrawlPlace {
        crawl_id,
        depth: depth + 1,
        max_depth,
        max_pages,
    };
    insert_pages(store, doc, place, &links).await
}

/// Add `links` as pages of a crawl at `place`, with `doc`'s split and clean settings, in
/// order, within the crawl's page cap; returns how many were added.
pub(super) async fn insert_pages(
    store: &Store,
    doc: &DocumentRow,
    place: CrawlPlace<'_>,
    links: &[Url],
) -> Result<usize> {
    let names: Vec<(String, String, String)> = links
        .iter()
        .map(|l| (uuid::Uuid::new_v4().to_string(), url_name(l), url_sha256(l)))
        .collect();
    let paths: Vec<String> = names
        .iter()
        .map(|(id, _, _)| format!("files/{id}"))
        .collect();
    let pages: Vec<NewDocument<'_>> = links
        .iter()
        .zip(&names)
        .zip(&paths)
        .map(|((link, (id, name, sha)), path)| NewDocument {
            document_id: id,
            kb_id: &doc.kb_id,
            name,
            bytes: 0,
            sha256: sha,
            file_path: path,
            split_json: doc.split_json.as_deref(),
            clean_json: doc.clean_json.as_deref(),
            source_url: Some(link.as_str()),
            crawl: Some(place),
            crawl_sitemap_url: None,
        })
        .collect();
    if pages.is_empty() {
        return Ok(0);
    }
    match store
        .insert_crawl_pages(place.crawl_id, place.max_pages, &pages)
        .await
    {
        Ok(added) => {
            info!(
                links = pages.len(),
                added,
                depth = place.depth,
                "crawl: links queued"
            );
            Ok(added)
        }
        Err(e) => {
            warn!(error = %e, "crawl: cannot queue the page's links");
            Err(e)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_sites() {
        let url = Url::parse("https://example.com/docs/a.html#x").unwrap();
        assert_eq!(url_name(&url), "example.com/docs/a.html#x");
        let start = Url::parse("https://example.com/").unwrap();
        assert!(same_site(
            &Url::parse("https://example.com/b").unwrap(),
            &start
        ));
        assert!(!same_site(
            &Url::parse("https://other.example.com/b").unwrap(),
            &start
        ));
        assert!(same_site(
            &Url::parse("http://example.com:8080/b").unwrap(),
            &start
        ));
        assert_eq!(
            without_fragment(url).as_str(),
            "https://example.com/docs/a.html"
        );
    }

    #[test]
    fn the_same_url_is_the_same_document() {
        let a = Url::parse("https://example.com/a").unwrap();
        let b = Url::parse("https://example.com/b").unwrap();
        assert_eq!(url_sha256(&a), url_sha256(&a.clone()));
        assert_ne!(url_sha256(&a), url_sha256(&b));
    }
}
