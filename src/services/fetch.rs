//! Fetching a web page for a knowledge base, without letting a URL reach what it should
//! not.
//!
//! A URL typed into the workspace is fetched by the server, from inside the network the
//! server sits in: left alone, `http://127.0.0.1:8080/…`, `http://169.254.169.254/` (cloud
//! metadata) or a public name pointing at `10.0.0.5` would let anyone who may add a page
//! read internal services. So every hop is checked before it is made: the name is
//! resolved here, every address it resolves to must be public, and the connection is
//! pinned to those checked addresses (a second lookup by the HTTP client could answer
//! differently). Redirects are followed by hand, at most [`MAX_REDIRECTS`], each one
//! checked the same way. `ingest.url_allow_private` turns the address check off for
//! intranets and tests.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use reqwest::Url;
use reqwest::header::{
    CONTENT_LENGTH, CONTENT_TYPE, ETAG, HeaderMap, IF_MODIFIED_SINCE, IF_NONE_MATCH, LAST_MODIFIED,
    LOCATION,
};

use crate::config::{IngestConfig, ToolsConfig};
use crate::error::{Error, Result};

/// Most redirects followed for one URL; one more fails the fetch.
pub const MAX_REDIRECTS: usize = 5;

/// The user agent the server fetches with, so a site's owner can tell what reads it.
const USER_AGENT: &str = concat!("zhiku/", env!("CARGO_PKG_VERSION"), " (knowledge base)");

/// Fetches URLs under the configured size cap, time limit and address rules.
#[derive(Debug, Clone)]
pub struct Fetcher {
    /// Largest body, in bytes.
    pub max_bytes: u64,
    /// Time limit for one URL, redirects included.
    pub timeout: Duration,
    /// Whether loopback, link-local and private addresses may be reached.
    pub allow_private: bool,
    /// The config keys of these limits, named in errors.
    pub keys: LimitKeys,
}

/// The config keys behind a fetcher's limits, so an error names the one to change.
#[derive(Debug, Clone, Copy)]
pub struct LimitKeys {
    /// The size cap's key.
    pub max_bytes: &'static str,
    /// The time limit's key.
    pub timeout: &'static str,
    /// The private-address switch's key.
    pub allow_private: &'static str,
}

/// Web pages added to knowledge bases: `[ingest]`.
pub const INGEST_KEYS: LimitKeys = LimitKeys {
    max_bytes: "ingest.max_fetch_bytes",
    timeout: "ingest.fetch_timeout_ms",
    allow_private: "ingest.url_allow_private",
};

/// Bots' HTTP tools: `[tools]`.
pub const TOOL_KEYS: LimitKeys = LimitKeys {
    max_bytes: "tools.max_response_bytes",
    timeout: "tools.timeout_ms",
    allow_private: "tools.allow_private",
};

/// What the last fetch of a page said, sent back so an unchanged page costs a 304.
#[derive(Debug, Clone, Default)]
pub struct Validators {
    /// `ETag` of the last answer.
    pub etag: Option<String>,
    /// `Last-Modified` of the last answer.
    pub last_modified: Option<String>,
}

/// A fetched body with what the site said about it.
#[derive(Debug, Clone)]
pub struct FetchedPage {
    /// Where the body came from, after redirects.
    pub final_url: Url,
    /// The body.
    pub body: Vec<u8>,
    /// `Content-Type`, lowercase, without parameters.
    pub content_type: Option<String>,
    /// Validators for the next fetch.
    pub validators: Validators,
}

/// What a conditional fetch found.
#[derive(Debug, Clone)]
pub enum Fetched {
    /// The site answered 304: the page is as it was.
    NotModified,
    /// A body.
    Page(FetchedPage),
}

fn fetch_error(message: String) -> Error {
    Error::Ingest(ingest::Error::Fetch(message))
}

fn refused(message: String) -> Error {
    Error::Ingest(ingest::Error::UrlRefused(message))
}

impl Fetcher {
    /// The fetcher `[ingest]` configures.
    pub fn new(config: &IngestConfig) -> Self {
        Self {
            max_bytes: config.max_fetch_bytes,
            timeout: Duration::from_millis(config.fetch_timeout_ms),
            allow_private: config.url_allow_private,
            keys: INGEST_KEYS,
        }
    }

    /// The fetcher `[tools]` configures, for HTTP tools.
    pub fn for_tools(config: &ToolsConfig) -> Self {
        Self {
            max_bytes: config.max_response_bytes,
            timeout: Duration::from_millis(config.timeout_ms),
            allow_private: config.allow_private,
            keys: TOOL_KEYS,
        }
    }

    /// Parse a URL a person gave: http or https, with a host, without a user name or
    /// password (they would be stored and shown with the document).
    pub fn parse(raw: &str) -> Result<Url> {
        let raw = raw.trim();
        let url = Url::parse(raw).map_err(|e| {
            refused(format!(
                "'{raw}' is not a URL ({e}); give an http(s) address"
            ))
        })?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(refused(format!(
                "'{raw}': only http and https URLs can be fetched, not {}:",
                url.scheme()
            )));
        }
        if url.host_str().is_none_or(str::is_empty) {
            return Err(refused(format!("'{raw}' has no host")));
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err(refused(format!(
                "'{raw}' carries a user name or password; they would be stored with the document"
            )));
        }
        Ok(url)
    }

    /// Refuse a URL whose host leads to a private address now, before it is queued (the
    /// fetch checks again, hop by hop). A name that does not resolve is left to the fetch,
    /// which fails that one document with the reason.
    pub async fn check_address(&self, url: &Url) -> Result<()> {
        match tokio::time::timeout(self.timeout, self.resolve(url)).await {
            Ok(Err(e)) if e.code() == "url_refused" => Err(e),
            _ => Ok(()),
        }
    }

    /// Fetch `url`, sending `validators` so an unchanged page answers 304.
    pub async fn fetch(&self, url: &Url, validators: &Validators) -> Result<Fetched> {
        let limit_ms = self.timeout.as_millis();
        tokio::time::timeout(self.timeout, self.follow(url, validators))
            .await
            .map_err(|_| {
                fetch_error(format!(
                    "fetching {url} took longer than {limit_ms} ms ({})",
                    self.keys.timeout
                ))
            })?
    }

    async fn follow(&self, start: &Url, validators: &Validators) -> Result<Fetched> {
        let mut url = start.clone();
        for hop in 0..=MAX_REDIRECTS {
            let client = self.pinned_client(&url).await?;
            let mut request = client.get(url.clone());
            if let Some(etag) = &validators.etag {
                request = request.header(IF_NONE_MATCH, etag);
            }
            if let Some(modified) = &validators.last_modified {
                request = request.header(IF_MODIFIED_SINCE, modified);
            }
            let response = request
                .send()
                .await
                .map_err(|e| fetch_error(format!("cannot fetch {url}: {}", error_chain(&e))))?;
            let status = response.status();
            if status == reqwest::StatusCode::NOT_MODIFIED {
                return Ok(Fetched::NotModified);
            }
            if status.is_redirection() {
                let location = response
                    .headers()
                    .get(LOCATION)
                    .and_then(|v| v.to_str().ok())
                    .ok_or_else(|| {
                        fetch_error(format!("{url} answered {status} without a Location"))
                    })?;
                if hop == MAX_REDIRECTS {
                    return Err(fetch_error(format!(
                        "{start} redirected more than {MAX_REDIRECTS} times (last to {location}); give the page's final address"
                    )));
                }
                let next = url.join(location).map_err(|e| {
                    fetch_error(format!("{url} redirected to '{location}', not a URL ({e})"))
                })?;
                url = Self::parse(next.as_str())?;
                continue;
            }
            if matches!(
                status,
                reqwest::StatusCode::NOT_FOUND | reqwest::StatusCode::GONE
            ) {
                return Err(Error::Ingest(ingest::Error::PageGone(format!(
                    "{url} answered HTTP {status}: the page is no longer there"
                ))));
            }
            if !status.is_success() {
                return Err(fetch_error(format!("{url} answered HTTP {status}")));
            }
            let headers = response.headers().clone();
            let body = self.read_body(&url, response).await?;
            return Ok(Fetched::Page(FetchedPage {
                final_url: url,
                body,
                content_type: header(&headers, CONTENT_TYPE).map(|v| {
                    v.split(';')
                        .next()
                        .unwrap_or_default()
                        .trim()
                        .to_ascii_lowercase()
                }),
                validators: Validators {
                    etag: header(&headers, ETAG),
                    last_modified: header(&headers, LAST_MODIFIED),
                },
            }));
        }
        Err(fetch_error(format!(
            "{start} redirected more than {MAX_REDIRECTS} times"
        )))
    }

    /// A client for one request to `url` that follows no redirect, pinned to the addresses
    /// its host resolves to now, every one of them checked.
    pub async fn pinned_client(&self, url: &Url) -> Result<reqwest::Client> {
        let addrs = self.resolve(url).await?;
        let host = url.host_str().unwrap_or_default().to_string();
        reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            // A proxy would resolve the name itself and undo the address check.
            .no_proxy()
            .resolve_to_addrs(&host, &addrs)
            .user_agent(USER_AGENT)
            .timeout(self.timeout)
            .build()
            .map_err(|e| Error::Internal(format!("HTTP client: {e}")))
    }

    /// Read the body, stopping as soon as it passes the cap (a declared length over it is
    /// refused before reading).
    pub async fn read_body(&self, url: &Url, mut response: reqwest::Response) -> Result<Vec<u8>> {
        let too_large = || {
            Error::Ingest(ingest::Error::TooLarge {
                detail: format!(
                    "{url} is larger than the limit of {} bytes ({})",
                    self.max_bytes, self.keys.max_bytes
                ),
            })
        };
        let declared = header(response.headers(), CONTENT_LENGTH).and_then(|v| v.parse().ok());
        if declared.is_some_and(|n: u64| n > self.max_bytes) {
            return Err(too_large());
        }
        let mut body = Vec::new();
        while let Some(chunk) = response
            .chunk()
            .await
            .map_err(|e| fetch_error(format!("reading {url}: {}", error_chain(&e))))?
        {
            if (body.len() + chunk.len()) as u64 > self.max_bytes {
                return Err(too_large());
            }
            body.extend_from_slice(&chunk);
        }
        Ok(body)
    }

    /// The addresses `url`'s host stands for, every one of them allowed.
    async fn resolve(&self, url: &Url) -> Result<Vec<SocketAddr>> {
        let host = url.host_str().unwrap_or_default();
        let port = url.port_or_known_default().unwrap_or(80);
        // An IPv6 literal comes bracketed in the URL.
        let bare = host.trim_start_matches('[').trim_end_matches(']');
        let addrs: Vec<SocketAddr> = match bare.parse::<IpAddr>() {
            Ok(ip) => vec![SocketAddr::new(ip, port)],
            Err(_) => tokio::net::lookup_host((bare, port))
                .await
                .map_err(|e| fetch_error(format!("cannot resolve {host}: {e}")))?
                .collect(),
        };
        if addrs.is_empty() {
            return Err(fetch_error(format!("{host} resolves to no address")));
        }
        if !self.allow_private
            && let Some(bad) = addrs.iter().find(|a| !is_public(a.ip()))
        {
            return Err(refused(format!(
                "{url} leads to {}, a loopback, link-local or private address; such URLs are refused ({})",
                bad.ip(),
                self.keys.allow_private
            )));
        }
        Ok(addrs)
    }
}

fn header(headers: &HeaderMap, name: reqwest::header::HeaderName) -> Option<String> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
}

/// reqwest's error with its causes, which hold the useful part ("connection refused").
pub fn error_chain(e: &reqwest::Error) -> String {
    let mut text = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// Whether an address is one the internet can route to: not loopback, private,
/// link-local, shared (CGNAT), unspecified, broadcast, multicast or documentation space.
/// An IPv4 address written as IPv6 (`::ffff:127.0.0.1`) is judged as IPv4.
pub fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => is_public_v4(v4),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => is_public_v4(v4),
            None => is_public_v6(v6),
        },
    }
}

fn is_public_v4(ip: Ipv4Addr) -> bool {
    let [a, b, ..] = ip.octets();
    !(ip.is_loopback()
        || ip.is_private()
        || ip.is_link_local()
        || ip.is_unspecified()
        || ip.is_broadcast()
        || ip.is_multicast()
        || ip.is_documentation()
        || a == 0
        // 100.64.0.0/10, carrier-grade NAT: private in all but name.
        || (a == 100 && (64..128).contains(&b))
        // 198.18.0.0/15, benchmarking; 240.0.0.0/4, reserved.
        || (a == 198 && (b == 18 || b == 19))
        || a >= 240)
}

fn is_public_v6(ip: Ipv6Addr) -> bool {
    let first = ip.segments()[0];
    !(ip.is_loopback()
        || ip.is_unspecified()
        || ip.is_multicast()
        // fc00::/7 unique local, fe80::/10 link-local, 2001:db8::/32 documentation.
        || (first & 0xfe00) == 0xfc00
        || (first & 0xffc0) == 0xfe80
        || (first == 0x2001 && ip.segments()[1] == 0x0db8)
        // ::/96, the old IPv4-compatible form (::127.0.0.1).
        || ip.segments()[..6].iter().all(|s| *s == 0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn internal_addresses_are_not_public() {
        for ip in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "::1",
            "fe80::1",
            "fd00::1",
            "::ffff:127.0.0.1",
            "::ffff:10.0.0.1",
        ] {
            assert!(!is_public(ip.parse().unwrap()), "{ip}");
        }
        for ip in ["93.184.216.34", "8.8.8.8", "2606:4700::1111"] {
            assert!(is_public(ip.parse().unwrap()), "{ip}");
        }
    }

    #[test]
    fn only_plain_http_urls_are_taken() {
        assert!(Fetcher::parse("https://example.com/a").is_ok());
        for bad in [
            "file:///etc/passwd",
            "ftp://example.com/x",
            "example.com",
            "http://user:pw@example.com/",
        ] {
            let e = Fetcher::parse(bad).unwrap_err();
            assert_eq!(e.code(), "url_refused", "{bad}: {e}");
        }
    }

    #[tokio::test]
    async fn a_loopback_url_is_refused_before_any_request() {
        let fetcher = Fetcher {
            max_bytes: 1_000,
            timeout: Duration::from_secs(5),
            allow_private: false,
            keys: INGEST_KEYS,
        };
        for url in [
            "http://127.0.0.1:9/",
            "http://localhost:9/",
            "http://[::1]:9/",
        ] {
            let url = Fetcher::parse(url).unwrap();
            let e = fetcher
                .fetch(&url, &Validators::default())
                .await
                .unwrap_err();
            assert_eq!(e.code(), "url_refused", "{url}: {e}");
            assert!(e.to_string().contains("private address"), "{e}");
        }
    }
}
