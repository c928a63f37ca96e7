//! Keeping web pages fresh: a sync asks the site again with the validators it last gave
//! (`If-None-Match`, `If-Modified-Since`); a 304, or the same bytes, changes nothing, and a
//! new body is stored and the document queued again (its job replaces its chunks as a
//! re-upload's would). A sync also re-crawls: a crawled page adds the links it gained, the
//! page standing for a sitemap reads it again. A page that cannot be reached is marked on
//! its document, never deleted. [`super::web_schedule`] runs the same sync on a KB's
//! schedule.

use std::sync::Arc;

use ingest::pipeline::sha256_hex;
use reqwest::Url;
use serde::Serialize;
use tracing::{Instrument, info, instrument, warn};

use super::fetch::{Fetched, FetchedPage, Fetcher, Validators};
use super::knowledge::{DocumentView, KnowledgeService};
use super::web_pages::{
    CrawlSettings, MAX_CRAWL_PAGES, body_path, crawl_links, extension_for, insert_pages,
};
use crate::error::{Error, Result};
use crate::store::documents::{CrawlPlace, DocumentRow, FetchRecord};
use crate::store::kbs::KbRow;

/// What a sync of one web page did.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct SyncOutcome {
    /// Whether the page changed; an unchanged page is not indexed again.
    pub changed: bool,
    /// The job that indexes the new version (changed pages only).
    pub job_id: Option<i64>,
    /// Pages of its crawl found since (new same-site links of this page, or new entries
    /// of the sitemap it stands for), added as queued documents within the crawl's depth
    /// and page cap.
    pub pages_added: usize,
    /// For a crawl's start page synced by a person: how many other pages of the crawl
    /// are being checked now, in the background, as this one was (each marks its own
    /// document; a gone page is marked, not deleted).
    pub crawl_pages_checking: Option<usize>,
    /// The document after the sync.
    pub document: DocumentView,
}

impl KnowledgeService {
    /// Fetch a web document again and, if it changed, index it again in place.
    ///
    /// The start page of a crawl (or the page that stands for a sitemap) re-crawls: its
    /// new links (or the sitemap's new entries) are added, and the crawl's other pages are
    /// then checked in the background, each as if synced on its own, so that the links
    /// they gained are added and the ones now gone are marked.
    #[instrument(skip_all, fields(kb = id_or_name, document_id))]
    pub async fn sync_document(
        self: &Arc<Self>,
        id_or_name: &str,
        document_id: &str,
    ) -> Result<SyncOutcome> {
        let kb = self.store.kb(id_or_name).await?;
        let mut outcome = self.sync_page(&kb, document_id).await?;
        let others = self.store.crawl_pages(document_id).await?;
        if !others.is_empty() {
            outcome.crawl_pages_checking = Some(others.len());
            let service = Arc::clone(self);
            let task = async move {
                for id in others {
                    // Each failure is on its document already; a page deleted meanwhile
                    // or queued again is passed over.
                    if let Err(e) = service.sync_page(&kb, &id).await {
                        info!(document_id = %id, error = %e, "crawl check: page not synced");
                    }
                }
                info!("crawl check: done");
            };
            tokio::spawn(task.instrument(tracing::Span::current()));
        }
        Ok(outcome)
    }

    /// Sync one web page of `kb`: what a person's sync and the KB's schedule both do. A
    /// page that cannot be fetched (gone, unreachable, refused) keeps its status and text;
    /// the failure is recorded on it as what its last check found, and returned.
    pub(crate) async fn sync_page(&self, kb: &KbRow, document_id: &str) -> Result<SyncOutcome> {
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
        self.check_model(kb)?;
        let url = Fetcher::parse(&raw)?;
        // Validators only if the body they describe is the one stored.
        let validators = match doc.source_fetched_at {
            Some(_) => Validators {
                etag: doc.source_etag.clone(),
                last_modified: doc.source_last_modified.clone(),
            },
            None => Validators::default(),
        };
        let fetched = match self.fetcher.fetch(&url, &validators).await {
            Ok(fetched) => fetched,
            Err(e) => {
                self.store
                    .record_check_failed(document_id, e.code(), &e.to_string())
                    .await?;
                warn!(url = %url, error = %e, "sync: page not reached");
                return Err(e);
            }
        };
        // The page as it is now, with the address its links are relative to: what came
        // back, or after a 304 the body stored (it is the same).
        let (job_id, base, body, is_html) = match fetched {
            Fetched::NotModified => {
                self.store.record_unchanged(document_id, None, None).await?;
                let stored = self.files.get(&doc.file_path).await.unwrap_or_default();
                (None, url.clone(), stored, doc.file_path.ends_with(".html"))
            }
            Fetched::Page(page) => {
                let is_html = extension_for(&page).as_deref() == Some("html");
                let sha = sha256_hex(&page.body);
                if doc.source_sha256.as_deref() == Some(sha.as_str()) && doc.status == "indexed" {
                    self.store
                        .record_unchanged(
                            document_id,
                            page.validators.etag.as_deref(),
                            page.validators.last_modified.as_deref(),
                        )
                        .await?;
                    (None, page.final_url, page.body, is_html)
                } else {
                    let job_id = self.store_new_body(kb, &doc, &page, &sha).await?;
                    info!(url = %url, bytes = page.body.len(), "page changed; indexing it again");
                    (Some(job_id), page.final_url, page.body, is_html)
                }
            }
        };
        let links = is_html.then_some(body.as_slice());
        let pages_added = self.find_new_pages(&doc, &url, &base, links).await;
        if pages_added > 0 {
            self.queue.notify();
        }
        Ok(SyncOutcome {
            changed: job_id.is_some(),
            job_id,
            pages_added,
            crawl_pages_checking: None,
            document: self.document(&kb.kb_id, document_id).await?,
        })
    }

    /// Store a page's new body and queue its document to be indexed again; returns the job.
    async fn store_new_body(
        &self,
        kb: &KbRow,
        doc: &DocumentRow,
        page: &FetchedPage,
        sha: &str,
    ) -> Result<i64> {
        let ext = extension_for(page);
        let path = body_path(&doc.document_id, sha, ext.as_deref());
        self.files.put(&path, &page.body).await?;
        let record = FetchRecord {
            file_path: &path,
            bytes: page.body.len() as i64,
            source_sha256: sha,
            etag: page.validators.etag.as_deref(),
            last_modified: page.validators.last_modified.as_deref(),
        };
        let job_id = match self
            .store
            .record_changed(&doc.document_id, &kb.kb_id, &record)
            .await
        {
            Ok(job_id) => job_id,
            Err(e) => {
                if path != doc.file_path {
                    self.files.remove(&path).await;
                }
                return Err(e);
            }
        };
        if path != doc.file_path {
            self.files.remove(&doc.file_path).await;
        }
        self.queue.notify();
        Ok(job_id)
    }

    /// The pages of `doc`'s crawl found since it was last read: the same-site links of
    /// `html` (the page now, if it is HTML and the crawl goes deeper than it) and, for the
    /// page that stands for a sitemap, the sitemap's entries, added within the crawl's
    /// page cap. Returns how many were added; a failure here is logged and does not fail
    /// the sync of the page itself.
    async fn find_new_pages(
        &self,
        doc: &DocumentRow,
        url: &Url,
        base: &Url,
        html: Option<&[u8]>,
    ) -> usize {
        let mut added = 0;
        if let Some(body) = html {
            match crawl_links(&self.store, doc, url, base, body).await {
                Ok(n) => added += n,
                Err(e) => warn!(url = %url, error = %e, "re-crawl: links not followed"),
            }
        }
        if let Some(sitemap) = &doc.crawl_sitemap_url {
            match self.new_sitemap_pages(doc, sitemap).await {
                Ok(n) => added += n,
                Err(e) => warn!(sitemap = %sitemap, error = %e, "re-crawl: sitemap not read"),
            }
        }
        added
    }

    /// Read the sitemap `doc` stands for again and add the pages it lists now.
    async fn new_sitemap_pages(&self, doc: &DocumentRow, sitemap: &str) -> Result<usize> {
        let (Some(crawl_id), Some(max_pages)) = (doc.crawl_id.as_deref(), doc.crawl_max_pages)
        else {
            return Ok(0);
        };
        let sitemap = Fetcher::parse(sitemap)?;
        let crawl = CrawlSettings {
            max_depth: 0,
            max_pages: u32::try_from(max_pages).unwrap_or(MAX_CRAWL_PAGES),
        };
        let Some(pages) = self.sitemap_pages(&sitemap, Some(crawl)).await? else {
            return Ok(0);
        };
        let place = CrawlPlace {
            crawl_id,
            depth: 0,
            max_depth: 0,
            max_pages,
        };
        insert_pages(&self.store, doc, place, &pages).await
    }
}
