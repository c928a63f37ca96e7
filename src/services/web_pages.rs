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
//! A sync asks the site again with the validators it last gave (`If-None-Match`,
//! `If-Modified-Since`); a 304, or the same bytes, changes nothing. A new body is stored
//! and the document is queued again: its job replaces its chunks as a re-upload would.

use std::path::Path;

use ingest::pipeline::sha256_hex;
use reqwest::Url;
use serde::{Deserialize, Serialize};
use tracing::{info, instrument, warn};

use super::fetch::{Fetched, FetchedPage, Fetcher, Validators};
use super::knowledge::{DocumentView, KnowledgeService, UploadOutcome, UploadSettings, write_file};
use crate::error::{Error, Result};
use crate::store::Store;
use crate::store::documents::{CrawlPlace, DocumentRow, FetchRecord, NewDocument};

/// Most URLs one request may add.
pub const MAX_URLS_PER_REQUEST: usize = 100;
/// Deepest crawl: links followed from the start page.
pub const MAX_CRAWL_DEPTH: u32 = 5;
/// Most pages one crawl (or one sitemap) adds.
pub const MAX_CRAWL_PAGES: u32 = 1_000;
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

fn default_pages() -> u32 {
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

/// What a sync of one web page did.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct SyncOutcome {
    /// Whether the page changed; an unchanged page is not indexed again.
    pub changed: bool,
    /// The job that indexes the new version (changed pages only).
    pub job_id: Option<i64>,
    /// The document after the sync.
    pub document: DocumentView,
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
fn extension_for(page: &FetchedPage) -> Option<String> {
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
fn body_path(document_id: &str, sha256: &str, ext: Option<&str>) -> String {
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
            if let Some(pages) = self.sitemap_pages(&url, crawl).await? {
                for page in pages {
                    outcomes.push(
                        self.add_url(&kb.kb_id, &page, None, split.as_deref(), clean.as_deref())
                            .await?,
                    );
                }
                continue;
            }
            outcomes.push(
                self.add_url(&kb.kb_id, &url, crawl, split.as_deref(), clean.as_deref())
                    .await?,
            );
        }
        self.queue.notify();
        Ok(outcomes)
    }

    /// The pages a sitemap lists on its own host (at most the crawl's page cap), or `None`
    /// when `url` is not a sitemap. Only addresses ending in `.xml` are looked at. One that
    /// cannot be fetched is added as a page, whose job then fails with the reason, as any
    /// other page's would.
    async fn sitemap_pages(
        &self,
        url: &Url,
        crawl: Option<CrawlSettings>,
    ) -> Result<Option<Vec<Url>>> {
        if !url.path().to_ascii_lowercase().ends_with(".xml") {
            return Ok(None);
        }
        let page = match self.fetcher.fetch(url, &Validators::default()).await {
            Ok(Fetched::Page(page)) => page,
            Err(e) if e.code() == "url_refused" => return Err(e),
            Ok(Fetched::NotModified) | Err(_) => return Ok(None),
        };
        let Some(locations) = ingest::extract::sitemap_locations(&page.body) else {
            return Ok(None);
        };
        let cap = crawl.map_or(default_pages(), |c| c.max_pages) as usize;
        let mut pages: Vec<Url> = Vec::new();
        for loc in locations {
            let Ok(link) = page.final_url.join(&loc) else {
                continue;
            };
            let link = without_fragment(link);
            if same_site(&link, &page.final_url)
                && Fetcher::parse(link.as_str()).is_ok()
                && !pages.contains(&link)
            {
                pages.push(link);
            }
            if pages.len() >= cap {
                break;
            }
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

    async fn add_url(
        &self,
        kb_id: &str,
        url: &Url,
        crawl: Option<CrawlSettings>,
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
                crawl: crawl.map(|c| CrawlPlace {
                    crawl_id: &document_id,
                    depth: 0,
                    max_depth: i64::from(c.max_depth),
                    max_pages: i64::from(c.max_pages),
                }),
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

    /// Fetch a web document again and, if it changed, index it again in place.
    #[instrument(skip_all, fields(kb = id_or_name, document_id))]
    pub async fn sync_document(&self, id_or_name: &str, document_id: &str) -> Result<SyncOutcome> {
        let kb = self.store.kb(id_or_name).await?;
        let doc = self.store.document(Some(&kb.kb_id), document_id).await?;
        let Some(raw) = doc.source_url.clone() else {
            return Err(Error::InvalidInput(format!(
                "document '{}' was uploaded, not added by URL: there is nothing to sync",
                doc.name
            )));
        };
        if matches!(doc.status.as_str(), "queued" | "processing") {
            return Err(Error::Conflict(format!(
                "document '{}' is {} already; sync it once it is indexed or failed",
                doc.name, doc.status
            )));
        }
        self.check_model(&kb)?;
        let url = Fetcher::parse(&raw)?;
        // Validators only if the body they describe is the one stored.
        let validators = match doc.source_fetched_at {
            Some(_) => Validators {
                etag: doc.source_etag.clone(),
                last_modified: doc.source_last_modified.clone(),
            },
            None => Validators::default(),
        };
        let changed = match self.fetcher.fetch(&url, &validators).await? {
            Fetched::NotModified => None,
            Fetched::Page(page) => {
                let sha = sha256_hex(&page.body);
                if doc.source_sha256.as_deref() == Some(sha.as_str()) && doc.status == "indexed" {
                    self.store
                        .record_unchanged(
                            document_id,
                            page.validators.etag.as_deref(),
                            page.validators.last_modified.as_deref(),
                        )
                        .await?;
                    None
                } else {
                    Some((page, sha))
                }
            }
        };
        let Some((page, sha)) = changed else {
            self.store.record_unchanged(document_id, None, None).await?;
            return Ok(SyncOutcome {
                changed: false,
                job_id: None,
                document: self.document(&kb.kb_id, document_id).await?,
            });
        };
        let ext = extension_for(&page);
        let path = body_path(document_id, &sha, ext.as_deref());
        write_file(&self.data_dir, &path, &page.body)?;
        let record = FetchRecord {
            file_path: &path,
            bytes: page.body.len() as i64,
            source_sha256: &sha,
            etag: page.validators.etag.as_deref(),
            last_modified: page.validators.last_modified.as_deref(),
        };
        let job_id = match self
            .store
            .record_changed(document_id, &kb.kb_id, &record)
            .await
        {
            Ok(job_id) => job_id,
            Err(e) => {
                if path != doc.file_path {
                    let _ = tokio::fs::remove_file(self.data_dir.join(&path)).await;
                }
                return Err(e);
            }
        };
        if path != doc.file_path {
            let _ = tokio::fs::remove_file(self.data_dir.join(&doc.file_path)).await;
        }
        self.queue.notify();
        info!(url = %url, bytes = page.body.len(), "page changed; indexing it again");
        Ok(SyncOutcome {
            changed: true,
            job_id: Some(job_id),
            document: self.document(&kb.kb_id, document_id).await?,
        })
    }
}

/// The first fetch of a web document, by its job: store the body like an uploaded file,
/// record it on the document, and, for a page of a crawl, add the pages it links to.
/// Returns the body and the name (its extension says what it is) to extract it under.
pub(crate) async fn fetch_for_job(
    store: &Store,
    fetcher: &Fetcher,
    data_dir: &Path,
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
    write_file(data_dir, &path, &page.body)?;
    store
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
        .await?;
    if path != doc.file_path {
        let _ = tokio::fs::remove_file(data_dir.join(&doc.file_path)).await;
    }
    if ext.as_deref() == Some("html") {
        crawl_links(store, doc, &url, &page).await?;
    }
    let name = Path::new(&path)
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    Ok((name, page.body))
}

/// Add the same-site links of a crawled page as pages of its crawl, one link deeper, while
/// the crawl is under its depth and page cap.
async fn crawl_links(
    store: &Store,
    doc: &DocumentRow,
    url: &Url,
    page: &FetchedPage,
) -> Result<()> {
    let (Some(crawl_id), Some(depth), Some(max_depth), Some(max_pages)) = (
        doc.crawl_id.as_deref(),
        doc.crawl_depth,
        doc.crawl_max_depth,
        doc.crawl_max_pages,
    ) else {
        return Ok(());
    };
    if depth >= max_depth {
        return Ok(());
    }
    // The site is the one the crawl was started on (the URL as given, before redirects).
    let mut links: Vec<Url> = Vec::new();
    for href in ingest::extract::page_links(&page.body) {
        let Ok(link) = page.final_url.join(&href) else {
            continue;
        };
        let link = without_fragment(link);
        if same_site(&link, url) && Fetcher::parse(link.as_str()).is_ok() && !links.contains(&link)
        {
            links.push(link);
        }
    }
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
            crawl: Some(CrawlPlace {
                crawl_id,
                depth: depth + 1,
                max_depth,
                max_pages,
            }),
        })
        .collect();
    if pages.is_empty() {
        return Ok(());
    }
    match store.insert_crawl_pages(crawl_id, max_pages, &pages).await {
        Ok(added) => {
            info!(
                links = pages.len(),
                added,
                depth = depth + 1,
                "crawl: links queued"
            );
            Ok(())
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
