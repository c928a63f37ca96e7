//! Search over a temporary KB with a stand-in embedder: no model files, milliseconds.

use super::*;
use crate::services::testing::{Fixture, HashEmbedder};

fn request(query: &str, mode: SearchMode) -> SearchRequest {
    SearchRequest {
        query: query.into(),
        mode,
        top_k: Some(3),
        min_score: None,
        semantic_weight: None,
    }
}

async fn fixture() -> Fixture {
    let mut f = Fixture::new().await;
    f.add_document(&[
        "Travel: hotel rooms are refunded up to 500 yuan a night.",
        "Leave: every employee has fifteen days of paid leave a year.",
    ])
    .await;
    f.add_document(&["The canteen opens at seven and closes at nine."])
        .await;
    f
}

#[tokio::test]
async fn each_mode_ranks_the_matching_chunk_first() {
    let f = fixture().await;
    for mode in [
        SearchMode::Fulltext,
        SearchMode::Semantic,
        SearchMode::Hybrid,
    ] {
        let found = f
            .search
            .search("kb", &request("how many days of paid leave", mode))
            .await
            .unwrap();
        assert_eq!(found.mode, mode);
        let best = &found.results[0];
        assert!(best.text.starts_with("Leave:"), "{mode:?}: {found:?}");
        assert_eq!(best.document_name, "synthetic-000000.txt");
        match mode {
            SearchMode::Fulltext => {
                assert!(best.ranks.semantic.is_none() && best.raw.bm25.is_some())
            }
            SearchMode::Semantic => {
                assert!(best.ranks.fulltext.is_none() && best.raw.cosine.is_some())
            }
            SearchMode::Hybrid => {
                assert!(best.ranks.fulltext == Some(1) && best.ranks.semantic.is_some())
            }
        }
    }
}

#[tokio::test]
async fn disabled_documents_and_low_scores_drop_out() {
    let mut f = fixture().await;
    let canteen = "the canteen opens at seven";
    let found = f
        .search
        .search("kb", &request(canteen, SearchMode::Fulltext))
        .await
        .unwrap();
    assert!(found.results[0].text.contains("canteen"));

    let mut high = request(canteen, SearchMode::Semantic);
    high.min_score = Some(1.01);
    assert!(
        f.search
            .search("kb", &high)
            .await
            .unwrap()
            .results
            .is_empty()
    );

    let doc = f.add_document(&["The canteen also serves dinner."]).await;
    let dinner = request("canteen dinner", SearchMode::Hybrid);
    let found = f.search.search("kb", &dinner).await.unwrap();
    assert!(
        found.results.iter().any(|r| r.document_id == doc),
        "{found:?}"
    );
    // The indexes still hold its chunk: the check against SQLite drops it.
    f.store.set_document_enabled(&doc, false).await.unwrap();
    let found = f.search.search("kb", &dinner).await.unwrap();
    assert!(
        found.results.iter().all(|r| r.document_id != doc),
        "{found:?}"
    );
}

#[tokio::test]
async fn another_model_only_blocks_semantic_search() {
    let mut f = fixture().await;
    f.search = Arc::new(SearchService {
        store: f.store.clone(),
        indexes: f.search.indexes.clone(),
        embedder: Arc::new(HashEmbedder::new("another-model")),
        config: f.search.config.clone(),
    });
    let e = f
        .search
        .search("kb", &request("paid leave", SearchMode::Hybrid))
        .await
        .unwrap_err();
    assert!(matches!(e, Error::ModelMismatch { .. }), "{e}");
    let found = f
        .search
        .search("kb", &request("paid leave", SearchMode::Fulltext))
        .await
        .unwrap();
    assert!(found.results[0].text.starts_with("Leave:"));
}

#[tokio::test]
async fn bad_requests_are_refused() {
    let f = fixture().await;
    let bad = |query: &str, top_k: Option<usize>| {
        let mut r = request(query, SearchMode::Hybrid);
        r.top_k = top_k;
        r
    };
    for r in [
        bad("  ", Some(3)),
        bad("leave", Some(0)),
        bad("leave", Some(101)),
    ] {
        let e = f.search.search("kb", &r).await.unwrap_err();
        assert!(matches!(e, Error::InvalidInput(_)), "{e}");
    }
    let e = f
        .search
        .search("no-such-kb", &request("leave", SearchMode::Hybrid))
        .await
        .unwrap_err();
    assert!(matches!(e, Error::NotFound { .. }), "{e}");
}
