//! The store on both backends: every test here runs once on SQLite and once on a
//! throw-away PostgreSQL database (`ingest::testing`), so one statement text is proven on
//! both dialects.

use ingest::db::Backend;
use ingest::on_db;

use super::Store;
use super::bots::BotSettings;
use super::chunks::NewChunk;
use super::conversations::{Channel, MessageStatus, Role};
use super::documents::NewDocument;
use super::kbs::NewKb;
use crate::error::Error;

/// A fresh, migrated store on `backend`, with the temp dir that holds it (SQLite).
pub(crate) async fn test_store(backend: Backend) -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().unwrap();
    let store = match backend {
        Backend::Sqlite => Store::open(&dir.path().join("t.sqlite")).await.unwrap(),
        Backend::Postgres => Store::connect(&ingest::testing::postgres_url().await)
            .await
            .unwrap(),
    };
    assert_eq!(store.backend(), backend);
    (dir, store)
}

pub(crate) fn kb(name: &str) -> NewKb<'_> {
    NewKb {
        name,
        description: "",
        split_json: "{}",
        clean_json: "{}",
        ocr_languages: None,
        embedding_model: "m",
        embedding_dims: 2,
    }
}

pub(crate) fn doc<'a>(id: &'a str, kb_id: &'a str, sha: &'a str) -> NewDocument<'a> {
    NewDocument {
        document_id: id,
        kb_id,
        name: "a.txt",
        bytes: 10,
        sha256: sha,
        file_path: "files/a",
        split_json: None,
        clean_json: None,
        source_url: None,
        crawl: None,
        crawl_sitemap_url: None,
    }
}

pub(crate) fn chunk<'a>(ordinal: i64, text: &'a str, vector: &'a [f32]) -> NewChunk<'a> {
    NewChunk {
        ordinal,
        page: Some(1),
        start_byte: 0,
        end_byte: text.len() as i64,
        text,
        token_count: 3,
        text_sha256: text,
        vector,
        label: (ordinal == 1).then_some("第2–3行"),
        is_ocr: ordinal == 2,
    }
}

async fn knowledge_round_trip(backend: Backend) {
    let (_dir, store) = test_store(backend).await;
    let k = store.insert_kb(&kb("handbook")).await.unwrap();
    assert!(matches!(
        store.insert_kb(&kb("handbook")).await,
        Err(Error::Conflict(_))
    ));
    let job = store
        .insert_document(&doc("d1", &k.kb_id, "s1"))
        .await
        .unwrap();
    assert!(job >= 1);
    let found = store
        .document_by_sha256(&k.kb_id, "s1")
        .await
        .unwrap()
        .unwrap();
    assert_eq!((found.status.as_str(), found.job_id), ("queued", Some(job)));
    assert!(found.is_enabled);

    let v = [0.5_f32, -1.0];
    store
        .replace_document_chunks(
            None,
            "d1",
            "text",
            Some(1),
            &[
                chunk(0, "出差住宿", &v),
                chunk(1, "上海 600 元", &v),
                chunk(2, "scan", &v),
            ],
        )
        .await
        .unwrap();
    let (rows, total) = store.list_chunks("d1", None, 0, 10).await.unwrap();
    assert_eq!(total, 3);
    assert_eq!(rows[1].label.as_deref(), Some("第2–3行"));
    assert!(rows[2].is_ocr && !rows[0].is_ocr);
    let (hits, total) = store.list_chunks("d1", Some("600"), 0, 10).await.unwrap();
    assert_eq!((hits.len(), total), (1, 1));
    // The filter ignores ASCII case and takes LIKE's wildcards as text, on both backends.
    let (hits, _) = store.list_chunks("d1", Some("SCAN"), 0, 10).await.unwrap();
    assert_eq!(hits.len(), 1);
    let (hits, _) = store.list_chunks("d1", Some("%"), 0, 10).await.unwrap();
    assert!(hits.is_empty());
    let vectors = store
        .vectors_by_text_sha256(&k.kb_id, &["出差住宿".to_string()])
        .await
        .unwrap();
    assert_eq!(vectors["出差住宿"], v);

    // Edits, disables and deletes bump seq and change liveness, as the indexes see them.
    let before = store.max_seq().await.unwrap();
    store
        .update_chunk(rows[0].chunk_id, None, Some(false))
        .await
        .unwrap();
    store.delete_chunk(rows[1].chunk_id).await.unwrap();
    let changes = store.changes_since(&k.kb_id, before, 10).await.unwrap();
    assert_eq!(changes.len(), 2);
    assert!(changes.iter().all(|c| !c.is_live));
    let ids = [rows[0].chunk_id, rows[1].chunk_id, rows[2].chunk_id];
    let live = store.live_chunks(&k.kb_id, &ids, false).await.unwrap();
    assert_eq!(live.len(), 1);
    assert_eq!(live[0].text, "scan");
    // The cursor a rebuild and index-check read (its `TRUE AS is_live` decodes on both).
    let mut pages = store.live_chunk_pages(&k.kb_id, 10);
    let page = pages.next_page().await.unwrap().unwrap();
    assert_eq!(page.len(), 1);
    assert!(page[0].is_live && page[0].chunk_id == rows[2].chunk_id);
    assert!(pages.next_page().await.unwrap().is_none());
    assert_eq!(
        store.live_chunk_keys(&k.kb_id, &ids, false).await.unwrap(),
        [(rows[2].chunk_id, rows[2].seq)]
    );
    assert_eq!(
        store.max_kb_seq(&k.kb_id).await.unwrap(),
        store.max_seq().await.unwrap()
    );
    let through = store.max_seq().await.unwrap();
    assert_eq!(store.purge_tombstones(&k.kb_id, through).await.unwrap(), 1);
    assert_eq!(
        store.kb(&k.kb_id).await.unwrap().reindexed_through_seq,
        through
    );

    store.set_document_enabled("d1", false).await.unwrap();
    assert!(store.live_chunk_ids(&k.kb_id).await.unwrap().is_empty());
    let counted = store.kb_with_counts("handbook").await.unwrap();
    assert_eq!(
        (counted.document_count, counted.chunk_count),
        (Some(1), Some(2))
    );

    assert_eq!(store.delete_kb(&k.kb_id).await.unwrap(), ["files/a"]);
    assert!(store.list_kbs().await.unwrap().is_empty());
}

async fn re_embedding_stages_and_swaps(backend: Backend) {
    let (_dir, store) = test_store(backend).await;
    let k = store.insert_kb(&kb("k")).await.unwrap();
    store
        .insert_document(&doc("d1", &k.kb_id, "s1"))
        .await
        .unwrap();
    let v = [1.0_f32, 0.0];
    store
        .replace_document_chunks(
            None,
            "d1",
            "text",
            None,
            &[chunk(0, "a", &v), chunk(1, "b", &v)],
        )
        .await
        .unwrap();
    let progress = store.prepare_staging(&k.kb_id, "m2").await.unwrap();
    assert_eq!((progress.chunks, progress.staged), (2, 0));
    let page = store
        .unstaged_chunks_page(&k.kb_id, "m2", 0, 10)
        .await
        .unwrap();
    assert_eq!(page.len(), 2);
    let staged: Vec<(i64, Vec<f32>)> = page.iter().map(|c| (c.chunk_id, vec![0.0, 1.0])).collect();
    // Staging the same chunk twice keeps the last vector (a resumed run).
    store.stage_vectors(&k.kb_id, "m2", &staged).await.unwrap();
    store.stage_vectors(&k.kb_id, "m2", &staged).await.unwrap();
    let progress = store.prepare_staging(&k.kb_id, "m2").await.unwrap();
    assert_eq!((progress.chunks, progress.staged), (2, 2));
    assert_eq!(
        store
            .swap_in_staged_vectors(&k.kb_id, "m2", 2)
            .await
            .unwrap(),
        2
    );
    let kb = store.kb(&k.kb_id).await.unwrap();
    assert_eq!(kb.embedding_model, "m2");
    let vectors = store
        .vectors_by_text_sha256(&k.kb_id, &["a".to_string()])
        .await
        .unwrap();
    assert_eq!(vectors["a"], [0.0, 1.0]);
}

async fn bots_publish_versions(backend: Backend) {
    let (_dir, store) = test_store(backend).await;
    let settings = BotSettings {
        name: "hr".into(),
        ..Default::default()
    };
    let bot = store.create_bot(&settings).await.unwrap();
    assert!(matches!(
        store.create_bot(&settings).await,
        Err(Error::Conflict(_))
    ));
    assert!(store.published_bot(&bot.bot_id).await.unwrap().is_none());
    assert_eq!(store.publish_bot(&bot.bot_id).await.unwrap().version, 1);
    assert_eq!(store.publish_bot(&bot.bot_id).await.unwrap().version, 2);
    let versions = store.list_bot_versions(&bot.bot_id).await.unwrap();
    assert_eq!(
        versions.iter().map(|v| v.version).collect::<Vec<_>>(),
        [2, 1]
    );
    let (version, published) = store.published_bot(&bot.bot_id).await.unwrap().unwrap();
    assert_eq!((version, published.name.as_str()), (2, "hr"));
    store.delete_bot(&bot.bot_id).await.unwrap();
    assert!(store.list_bots().await.unwrap().is_empty());
}

async fn concurrent_publishes_take_distinct_versions(backend: Backend) {
    let (_dir, store) = test_store(backend).await;
    let bot = store
        .create_bot(&BotSettings {
            name: "race".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    const PUBLISHES: usize = 6;
    let publishes = (0..PUBLISHES).map(|_| {
        let store = store.clone();
        let bot_id = bot.bot_id.clone();
        tokio::spawn(async move { store.publish_bot(&bot_id).await })
    });
    let mut versions: Vec<i64> = futures::future::join_all(publishes)
        .await
        .into_iter()
        .map(|r| r.unwrap().unwrap().version)
        .collect();
    versions.sort();
    assert_eq!(versions, (1..=PUBLISHES as i64).collect::<Vec<_>>());
    let (version, _) = store.published_bot(&bot.bot_id).await.unwrap().unwrap();
    assert_eq!(version, PUBLISHES as i64);
}

async fn messages_keep_their_order(backend: Backend) {
    let (_dir, store) = test_store(backend).await;
    let bot = store
        .create_bot(&BotSettings {
            name: "b".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    let c = store
        .create_conversation(&bot.bot_id, Channel::Debug, None, "hi")
        .await
        .unwrap();
    assert_eq!(c.channel, Channel::Debug);
    for i in 0..5 {
        let role = if i % 2 == 0 {
            Role::User
        } else {
            Role::Assistant
        };
        store
            .append_message(
                &c.conversation_id,
                role,
                &i.to_string(),
                MessageStatus::Complete,
                None,
            )
            .await
            .unwrap();
    }
    let last = store
        .append_message(
            &c.conversation_id,
            Role::Assistant,
            "",
            MessageStatus::Interrupted,
            None,
        )
        .await
        .unwrap();
    store
        .update_message(last, "done", MessageStatus::Complete, Some("{\"a\":1}"))
        .await
        .unwrap();
    let all = store.list_messages(&c.conversation_id).await.unwrap();
    let texts: Vec<&str> = all.iter().map(|m| m.content.as_str()).collect();
    assert_eq!(texts, ["0", "1", "2", "3", "4", "done"]);
    assert_eq!(all[5].context_json.as_deref(), Some("{\"a\":1}"));
    assert_eq!(all[5].status, MessageStatus::Complete);
    let recent = store.recent_messages(&c.conversation_id, 2).await.unwrap();
    let texts: Vec<&str> = recent.iter().map(|m| m.content.as_str()).collect();
    assert_eq!(texts, ["4", "done"]);
    store.delete_conversation(&c.conversation_id).await.unwrap();
    assert!(matches!(
        store.conversation(&c.conversation_id).await,
        Err(Error::NotFound { .. })
    ));
}

async fn keys_authenticate_until_revoked(backend: Backend) {
    let (_dir, store) = test_store(backend).await;
    let bot = store
        .create_bot(&BotSettings {
            name: "b".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    let (row, key) = store.create_bot_key(&bot.bot_id, "ci").await.unwrap();
    assert!(row.last_used_at.is_none());
    let found = store.authenticate_key(&key).await.unwrap().unwrap();
    assert_eq!(
        (found.key_id.as_str(), found.bot_id.as_str()),
        (row.key_id.as_str(), bot.bot_id.as_str())
    );
    assert!(found.last_used_at.is_some());
    let mut wrong = key.clone();
    wrong.pop();
    wrong.push(if key.ends_with('a') { 'b' } else { 'a' });
    for bad in [wrong.as_str(), "sk-whatever-key", "zk-", ""] {
        assert!(
            store.authenticate_key(bad).await.unwrap().is_none(),
            "{bad}"
        );
    }
    store
        .revoke_bot_key(&bot.bot_id, &row.key_id)
        .await
        .unwrap();
    assert!(store.authenticate_key(&key).await.unwrap().is_none());
    assert!(matches!(
        store.revoke_bot_key("other", &row.key_id).await,
        Err(Error::NotFound { .. })
    ));
}

async fn web_pages_due_for_a_sync(backend: Backend) {
    let (_dir, store) = test_store(backend).await;
    let k = store.insert_kb(&kb("web")).await.unwrap();
    assert!(store.kbs_with_web_sync().await.unwrap().is_empty());
    store.set_kb_web_sync(&k.kb_id, Some(30)).await.unwrap();
    assert_eq!(
        store.kbs_with_web_sync().await.unwrap(),
        [(k.kb_id.clone(), 30)]
    );
    assert_eq!(
        store.kb(&k.kb_id).await.unwrap().web_sync_interval_minutes,
        Some(30)
    );

    // A crawl: its start page, two pages found from it, one still waiting for its job.
    let place = |depth| super::documents::CrawlPlace {
        crawl_id: "p0",
        depth,
        max_depth: 2,
        max_pages: 10,
    };
    for (id, sha, depth) in [("p0", "u0", 0), ("p1", "u1", 1), ("p2", "u2", 2)] {
        store
            .insert_document(&NewDocument {
                source_url: Some("https://example.com/"),
                crawl: Some(place(depth)),
                crawl_sitemap_url: (id == "p0").then_some("https://example.com/sitemap.xml"),
                ..doc(id, &k.kb_id, sha)
            })
            .await
            .unwrap();
    }
    store
        .set_document_status("p0", "indexed", None)
        .await
        .unwrap();
    store
        .set_document_status("p1", "failed", Some(("x", "y")))
        .await
        .unwrap();
    assert_eq!(store.crawl_pages("p0").await.unwrap(), ["p1"]);
    assert!(store.crawl_pages("p1").await.unwrap().is_empty());
    let first = store.document(None, "p0").await.unwrap();
    assert_eq!(
        first.crawl_sitemap_url.as_deref(),
        Some("https://example.com/sitemap.xml")
    );

    // Never checked pages are due first; a page checked after the bar is not due.
    let later = super::documents::timestamp(chrono::Utc::now() + chrono::Duration::hours(1));
    assert_eq!(
        store.web_documents_due(&k.kb_id, &later, 10).await.unwrap(),
        ["p0", "p1"]
    );
    store
        .record_unchanged("p0", Some("\"e\""), None)
        .await
        .unwrap();
    assert_eq!(
        store.web_documents_due(&k.kb_id, &later, 10).await.unwrap(),
        ["p1", "p0"]
    );
    assert_eq!(
        store.web_documents_due(&k.kb_id, &later, 1).await.unwrap(),
        ["p1"]
    );
    let earlier = super::documents::timestamp(chrono::Utc::now() - chrono::Duration::hours(1));
    assert_eq!(
        store
            .web_documents_due(&k.kb_id, &earlier, 10)
            .await
            .unwrap(),
        ["p1"]
    );

    store
        .record_check_failed("p1", "page_gone", "404 Not Found")
        .await
        .unwrap();
    let gone = store.document(None, "p1").await.unwrap();
    assert_eq!(
        (
            gone.status.as_str(),
            gone.source_error_code.as_deref(),
            gone.source_error_message.as_deref()
        ),
        ("failed", Some("page_gone"), Some("404 Not Found"))
    );
    assert!(gone.source_checked_at.is_some());
    // A check that reaches the page again clears the error.
    store.record_unchanged("p1", None, None).await.unwrap();
    let back = store.document(None, "p1").await.unwrap();
    assert!(back.source_error_code.is_none() && back.source_error_message.is_none());

    store.set_kb_web_sync(&k.kb_id, None).await.unwrap();
    assert!(store.kbs_with_web_sync().await.unwrap().is_empty());
}

/// Seqs commit in the order they are given out, which index catch-up (`seq > mark`, on
/// every node) relies on (`Store::reserve_seqs` says why): while a transaction holds an
/// uncommitted seq, no other transaction can obtain a higher one, so a reader can never see
/// a seq above one that commits later.
async fn seqs_commit_in_order(backend: Backend) {
    let (_dir, store) = test_store(backend).await;
    let k = store.insert_kb(&kb("k")).await.unwrap();
    for (id, sha) in [("a", "sa"), ("b", "sb"), ("c", "sc")] {
        store
            .insert_document(&doc(id, &k.kb_id, sha))
            .await
            .unwrap();
    }
    let v = [1.0_f32, 0.0];
    // A takes a seq and writes its chunk, and does not commit yet.
    let mut a = store.begin_write().await.unwrap();
    let seq_a = Store::reserve_seqs(&mut a, 1).await.unwrap();
    ingest::on_db!(
        &mut a,
        "INSERT INTO chunk (kb_id, document_id, ordinal, start_byte, end_byte, text, token_count,
                            text_sha256, embedding, seq)
         VALUES (?, 'a', 0, 0, 1, 'a', 1, 'a', ?, ?)",
        |e, q| sqlx::query(q)
            .bind(&k.kb_id)
            .bind(super::vector_to_blob(&v))
            .bind(seq_a)
            .execute(e)
            .await
            .map(|r| r.rows_affected())
    )
    .unwrap();
    // B (storing a document's chunks) and C (disabling a document) want seqs meanwhile:
    // both must wait for A.
    let b = tokio::spawn({
        let store = store.clone();
        async move {
            let chunks = [chunk(0, "b0", &v), chunk(1, "b1", &v)];
            store
                .replace_document_chunks(None, "b", "text", None, &chunks)
                .await
        }
    });
    let c = tokio::spawn({
        let store = store.clone();
        async move { store.set_document_enabled("c", false).await }
    });
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert!(
        !b.is_finished() && !c.is_finished(),
        "a writer went ahead of an uncommitted lower seq"
    );
    assert!(
        store
            .changes_since(&k.kb_id, 0, 10)
            .await
            .unwrap()
            .is_empty()
    );
    a.commit().await.unwrap();
    b.await.unwrap().unwrap();
    c.await.unwrap().unwrap();
    let seqs: Vec<i64> = store
        .changes_since(&k.kb_id, 0, 10)
        .await
        .unwrap()
        .iter()
        .map(|c| c.seq)
        .collect();
    assert_eq!(seqs.len(), 3, "{seqs:?}");
    assert_eq!(seqs[0], seq_a, "A's seq is the lowest: {seqs:?}");
}

async fn version_names_the_database(backend: Backend) {
    let (_dir, store) = test_store(backend).await;
    let version = store.version().await.unwrap();
    assert!(version.starts_with(backend.name()), "{version}");
}

/// Node A stores a document's chunks and dies before it finishes the job; its lease runs
/// out and node B takes the job back (once), runs it again and stores the chunks: A's
/// become tombstones, exactly as after a restart, and the document's chunks are live
/// once. A, woken up late, can no longer store anything for the job.
async fn a_run_out_lease_is_run_again_and_its_chunks_tombstoned(backend: Backend) {
    use ingest::jobs::{JobQueue, JobStatus, Lease};
    use std::time::Duration;

    let (_dir, store) = test_store(backend).await;
    let k = store.insert_kb(&kb("k")).await.unwrap();
    let job = store
        .insert_document(&doc("d1", &k.kb_id, "s1"))
        .await
        .unwrap();
    let node = |name: &str, lease_ms: u64| {
        JobQueue::new(
            store.pool.clone(),
            3,
            Lease::new(name, Duration::from_millis(lease_ms)),
        )
    };
    let (a, b) = (node("node-a", 30_000), node("node-b", 30_000));
    let v = [1.0_f32, 0.0];
    let batch = ingest::jobs::BatchLimits {
        max_jobs: 8,
        max_bytes: 1 << 20,
    };
    assert_eq!(a.claim_batch(batch).await.unwrap()[0].job_id, job);
    store
        .replace_document_chunks(
            Some((&a, job)),
            "d1",
            "text",
            None,
            &[chunk(0, "a", &v), chunk(1, "b", &v)],
        )
        .await
        .unwrap();
    let first: Vec<i64> = store.live_chunk_ids(&k.kb_id).await.unwrap();
    assert_eq!(first.len(), 2);

    // While A's lease holds, B leaves the job alone.
    assert!(b.recover().await.unwrap().0.is_empty());
    assert!(b.claim_batch(batch).await.unwrap().is_empty());
    // A is killed: its last renewal was a lease of 1 ms.
    node("node-a", 1).renew().await.unwrap();
    tokio::time::sleep(Duration::from_millis(50)).await;
    let (requeued, _) = b.requeue_expired().await.unwrap();
    assert_eq!(requeued.len(), 1);
    assert!(b.requeue_expired().await.unwrap().0.is_empty());
    let retry = b.claim_batch(batch).await.unwrap();
    assert_eq!((retry[0].job_id, retry[0].attempts), (job, 2));
    store
        .replace_document_chunks(
            Some((&b, job)),
            "d1",
            "text",
            None,
            &[chunk(0, "a", &v), chunk(1, "b", &v)],
        )
        .await
        .unwrap();
    let live = store.live_chunk_ids(&k.kb_id).await.unwrap();
    assert_eq!(live.len(), 2, "the document's chunks, once");
    assert!(
        live.iter().all(|id| !first.contains(id)),
        "A's are tombstones"
    );
    let tombstones = store.changes_since(&k.kb_id, 0, 100).await.unwrap();
    assert_eq!(tombstones.iter().filter(|c| !c.is_live).count(), 2);

    // A wakes up: its store is refused and changes nothing.
    let late = store
        .replace_document_chunks(Some((&a, job)), "d1", "text", None, &[chunk(0, "a", &v)])
        .await;
    assert!(late.is_err(), "{late:?}");
    assert_eq!(store.live_chunk_ids(&k.kb_id).await.unwrap(), live);
    b.succeed(job).await.unwrap();
    assert_eq!(
        b.get(job).await.unwrap().unwrap().status,
        JobStatus::Succeeded
    );
}

/// Files kept in the database: stored, replaced, read and deleted by their path.
async fn stored_files_round_trip(backend: Backend) {
    let (_dir, store) = test_store(backend).await;
    assert_eq!(store.stored_file("files/a").await.unwrap(), None);
    let big: Vec<u8> = (0..3_000_000u32).map(|i| (i % 251) as u8).collect();
    store.put_stored_file("files/a", &big).await.unwrap();
    store
        .put_stored_file("files/b", b"\0bytes\xff")
        .await
        .unwrap();
    assert_eq!(store.stored_file("files/a").await.unwrap(), Some(big));
    store.put_stored_file("files/a", b"again").await.unwrap();
    assert_eq!(
        store.stored_file("files/a").await.unwrap().as_deref(),
        Some(&b"again"[..])
    );
    assert!(store.delete_stored_file("files/a").await.unwrap());
    assert!(!store.delete_stored_file("files/a").await.unwrap());
    assert_eq!(store.stored_file("files/a").await.unwrap(), None);
    assert!(store.stored_file("files/b").await.unwrap().is_some());
}

/// A key's requests are counted per minute of the database's clock, one statement each,
/// and windows over a minute old are forgotten.
async fn key_requests_are_counted_per_minute(backend: Backend) {
    let (_dir, store) = test_store(backend).await;
    let mut counts = Vec::new();
    for _ in 0..3 {
        let counted = store.count_key_request("k1").await.unwrap();
        assert!((1..=60).contains(&counted.seconds_left), "{counted:?}");
        counts.push(counted.count);
    }
    // [1, 2, 3], unless a minute turned in between and the count started again.
    assert!(
        counts == [1, 2, 3] || counts.windows(2).any(|w| w[1] == 1),
        "{counts:?}"
    );
    assert_eq!(store.count_key_request("k2").await.unwrap().count, 1);

    // Many at once: each gets its own number.
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            store.count_key_request("k3").await.unwrap().count
        }));
    }
    let mut got = Vec::new();
    for t in tasks {
        got.push(t.await.unwrap());
    }
    got.sort_unstable();
    got.dedup();
    assert_eq!(got.len(), 8, "{got:?}");

    // A window from long ago goes; the current ones stay.
    on_db!(
        &store.pool,
        "INSERT INTO key_rate (key_id, window_start, count) VALUES ('k1', 60, 5)",
        |e, q| sqlx::query(q).execute(e).await.map(|r| r.rows_affected())
    )
    .unwrap();
    assert_eq!(store.forget_old_key_rates().await.unwrap(), 1);
    assert!(store.count_key_request("k2").await.unwrap().count >= 1);
}

ingest::on_both_backends!(
    a_run_out_lease_is_run_again_and_its_chunks_tombstoned,
    knowledge_round_trip,
    re_embedding_stages_and_swaps,
    seqs_commit_in_order,
    bots_publish_versions,
    concurrent_publishes_take_distinct_versions,
    messages_keep_their_order,
    keys_authenticate_until_revoked,
    version_names_the_database,
    web_pages_due_for_a_sync,
    stored_files_round_trip,
    key_requests_are_counted_per_minute,
);
