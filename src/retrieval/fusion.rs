//! Combining the full-text and semantic rankings.
//!
//! Reciprocal rank fusion (Cormack, Clarke & Büttcher, SIGIR 2009,
//! <https://plg.uwaterloo.ca/~gvcormac/cormacksigir09-rrf.pdf>): each retriever adds
//! `1 / (k + rank)` for every chunk it returned (rank from 1). We report the sum divided by
//! its maximum (`n / (k + 1)` for n retrievers), so 1.0 means "ranked first by both" and a
//! threshold means the same thing whatever `k` is.
//!
//! The weighted mode mixes scores instead of ranks: `w · cos' + (1 − w) · bm25'`. Bruch,
//! Gai & Ingber, "An Analysis of Fusion Functions for Hybrid Retrieval" (TOIS 2023,
//! <https://arxiv.org/abs/2210.11934>) found such a convex combination better than RRF and
//! robust to its one weight, and found how each score is scaled first to matter more than
//! the weight. Two scalings ([`ScoreScale`]):
//! - `bounded`, the paper's "theoretical min-max": a score is scaled between its
//!   retriever's floor and ceiling. BM25's floor is 0 and its ceiling unbounded, so it is
//!   divided by this query's best BM25; a cosine already lives in a fixed range and is kept
//!   as it is. The fused score then still says how close the best passage is, not only
//!   that it is the closest, so a threshold means the same for every question.
//! - `minmax`: each retriever's scores stretched to 0..1 over this query's candidates, so
//!   the best chunk of a query that nothing matches well still scores 1.
//!
//! A chunk one retriever did not return counts as that retriever's lowest candidate (0
//! under min-max). `scripts/tune_fusion.py` measures every family on the development sets.

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// One retriever's hit: a chunk and its raw score, in rank order.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Hit {
    /// Chunk id.
    pub chunk_id: i64,
    /// Raw score (BM25 or cosine).
    pub score: f32,
}

/// A fused result with each retriever's rank (from 1) and raw score.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Fused {
    /// Chunk id.
    pub chunk_id: i64,
    /// Fused score, at most 1 (1 = best possible for both retrievers).
    pub score: f32,
    /// Rank in the full-text list.
    pub fulltext_rank: Option<usize>,
    /// Rank in the semantic list.
    pub semantic_rank: Option<usize>,
    /// BM25 score.
    pub bm25: Option<f32>,
    /// Cosine similarity.
    pub cosine: Option<f32>,
}

/// How to fuse.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(tag = "method", rename_all = "lowercase")]
pub enum Fusion {
    /// Reciprocal rank fusion with constant `k`.
    Rrf {
        /// The constant (60 in the paper).
        k: f32,
    },
    /// Weighted score mix.
    Weighted {
        /// Weight of the semantic score, 0..=1.
        semantic_weight: f32,
        /// How both scores are brought to one scale before they are mixed.
        scale: ScoreScale,
    },
}

/// How weighted fusion scales BM25 and cosine before mixing them (see the module docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ScoreScale {
    /// BM25 ÷ the query's best BM25; cosine as it is.
    Bounded,
    /// Both min-max normalised over the query's candidates.
    MinMax,
}

impl Fusion {
    /// Reject weights and constants that make no sense.
    pub fn validate(&self) -> Result<()> {
        match *self {
            Fusion::Rrf { k } if !(k >= 0.0 && k.is_finite()) => Err(Error::InvalidInput(format!(
                "rrf k must be a non-negative number, got {k}"
            ))),
            Fusion::Weighted {
                semantic_weight, ..
            } if !(0.0..=1.0).contains(&semantic_weight) => Err(Error::InvalidInput(format!(
                "semantic_weight must be between 0 and 1, got {semantic_weight}"
            ))),
            _ => Ok(()),
        }
    }
}

/// One retriever's scores for a query, mapped onto the fusion scale.
struct Scaler {
    /// Score that maps to 0.
    low: f32,
    /// Score that maps to 1.
    high: f32,
    /// Scaled score of a chunk this retriever did not return.
    missing: f32,
}

impl Scaler {
    /// `semantic` picks the cosine rule of `bounded` (kept as it is) over BM25's.
    fn new(hits: &[Hit], scale: ScoreScale, semantic: bool) -> Self {
        let (lowest, highest) = hits
            .iter()
            .fold((f32::INFINITY, f32::NEG_INFINITY), |(lo, hi), h| {
                (lo.min(h.score), hi.max(h.score))
            });
        let (low, high) = match (scale, semantic) {
            (ScoreScale::MinMax, _) => (lowest, highest),
            (ScoreScale::Bounded, true) => (0.0, 1.0),
            (ScoreScale::Bounded, false) => (0.0, highest),
        };
        let mut scaler = Self {
            low,
            high,
            missing: 0.0,
        };
        if scale == ScoreScale::Bounded && !hits.is_empty() {
            scaler.missing = scaler.scale(Some(lowest));
        }
        scaler
    }

    /// A score on the fusion scale; one candidate (or all equal) under min-max is the best.
    fn scale(&self, score: Option<f32>) -> f32 {
        match score {
            None => self.missing,
            Some(_) if self.high <= self.low => 1.0,
            Some(x) => ((x - self.low) / (self.high - self.low)).min(1.0),
        }
    }
}

/// Fuse the two rankings; best first.
pub fn fuse(fulltext: &[Hit], semantic: &[Hit], fusion: Fusion) -> Result<Vec<Fused>> {
    fusion.validate()?;
    let mut all: Vec<Fused> = Vec::with_capacity(fulltext.len() + semantic.len());
    let mut index_of = std::collections::HashMap::new();
    for (list, is_fulltext) in [(fulltext, true), (semantic, false)] {
        for (i, hit) in list.iter().enumerate() {
            let slot = *index_of.entry(hit.chunk_id).or_insert_with(|| {
                all.push(Fused {
                    chunk_id: hit.chunk_id,
                    score: 0.0,
                    fulltext_rank: None,
                    semantic_rank: None,
                    bm25: None,
                    cosine: None,
                });
                all.len() - 1
            });
            let entry = &mut all[slot];
            if is_fulltext && entry.fulltext_rank.is_none() {
                entry.fulltext_rank = Some(i + 1);
                entry.bm25 = Some(hit.score);
            } else if !is_fulltext && entry.semantic_rank.is_none() {
                entry.semantic_rank = Some(i + 1);
                entry.cosine = Some(hit.score);
            }
        }
    }
    match fusion {
        Fusion::Rrf { k } => {
            let max = 2.0 / (k + 1.0);
            for f in &mut all {
                let sum: f32 = [f.fulltext_rank, f.semantic_rank]
                    .into_iter()
                    .flatten()
                    .map(|rank| 1.0 / (k + rank as f32))
                    .sum();
                f.score = sum / max;
            }
        }
        Fusion::Weighted {
            semantic_weight,
            scale,
        } => {
            let bm25 = Scaler::new(fulltext, scale, false);
            let cosine = Scaler::new(semantic, scale, true);
            for f in &mut all {
                f.score = semantic_weight * cosine.scale(f.cosine)
                    + (1.0 - semantic_weight) * bm25.scale(f.bm25);
            }
        }
    }
    all.sort_by(|a, b| {
        b.score
            .total_cmp(&a.score)
            .then(a.chunk_id.cmp(&b.chunk_id))
    });
    Ok(all)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hits(ids: &[i64]) -> Vec<Hit> {
        ids.iter()
            .enumerate()
            .map(|(i, &chunk_id)| Hit {
                chunk_id,
                score: 10.0 - i as f32,
            })
            .collect()
    }

    fn scored(pairs: &[(i64, f32)]) -> Vec<Hit> {
        pairs
            .iter()
            .map(|&(chunk_id, score)| Hit { chunk_id, score })
            .collect()
    }

    #[test]
    fn rrf_rewards_agreement_and_is_normalised() {
        let fused = fuse(
            &hits(&[1, 2, 3]),
            &hits(&[2, 1, 4]),
            Fusion::Rrf { k: 60.0 },
        )
        .unwrap();
        assert_eq!(fused.len(), 4);
        // 1 and 2 are in both lists at ranks 1 and 2: tied, tie broken by id.
        assert_eq!(fused[0].chunk_id, 1);
        assert_eq!(fused[1].chunk_id, 2);
        assert!(fused[0].score < 1.0 && fused[0].score > 0.9);
        assert_eq!(fused[0].fulltext_rank, Some(1));
        assert_eq!(fused[0].semantic_rank, Some(2));
        let only_one = fused.iter().find(|f| f.chunk_id == 4).unwrap();
        assert!(only_one.fulltext_rank.is_none() && only_one.bm25.is_none());
        let top_both = fuse(&hits(&[7]), &hits(&[7]), Fusion::Rrf { k: 60.0 }).unwrap();
        assert!((top_both[0].score - 1.0).abs() < 1e-6);
    }

    #[test]
    fn weighted_extremes_follow_one_retriever() {
        let ft = hits(&[1, 2]);
        let sem = vec![
            Hit {
                chunk_id: 2,
                score: 0.9,
            },
            Hit {
                chunk_id: 1,
                score: 0.1,
            },
        ];
        let only_sem = fuse(
            &ft,
            &sem,
            Fusion::Weighted {
                semantic_weight: 1.0,
                scale: ScoreScale::MinMax,
            },
        )
        .unwrap();
        assert_eq!(only_sem[0].chunk_id, 2);
        let only_ft = fuse(
            &ft,
            &sem,
            Fusion::Weighted {
                semantic_weight: 0.0,
                scale: ScoreScale::MinMax,
            },
        )
        .unwrap();
        assert_eq!(only_ft[0].chunk_id, 1);
        assert!((only_ft[0].score - 1.0).abs() < 1e-6);
    }

    #[test]
    fn weighted_normalises_each_retriever_so_close_cosines_still_count() {
        let ft = scored(&[(1, 10.0), (2, 9.0), (3, 5.0)]);
        // Cosines of one query differ by hundredths; normalised, chunk 2's semantic lead
        // outweighs its small BM25 deficit.
        let sem = scored(&[(2, 0.86), (1, 0.84), (3, 0.80)]);
        let fused = fuse(
            &ft,
            &sem,
            Fusion::Weighted {
                semantic_weight: 0.5,
                scale: ScoreScale::MinMax,
            },
        )
        .unwrap();
        assert_eq!(
            fused.iter().map(|f| f.chunk_id).collect::<Vec<_>>(),
            [2, 1, 3]
        );
        assert!((fused[0].score - 0.9).abs() < 1e-5, "{fused:?}");
        assert!(fused[2].score.abs() < 1e-6);
        // A chunk only one retriever found scores 0 on the other.
        let only_ft = fuse(
            &ft,
            &scored(&[(2, 0.9)]),
            Fusion::Weighted {
                semantic_weight: 0.5,
                scale: ScoreScale::MinMax,
            },
        )
        .unwrap();
        let one = only_ft.iter().find(|f| f.chunk_id == 1).unwrap();
        assert!((one.score - 0.5).abs() < 1e-6, "{one:?}");
    }

    #[test]
    fn bounded_keeps_how_close_the_cosines_are() {
        let bounded = Fusion::Weighted {
            semantic_weight: 0.9,
            scale: ScoreScale::Bounded,
        };
        let ft = scored(&[(1, 10.0), (2, 5.0)]);
        let sem = scored(&[(2, 0.86), (1, 0.84), (3, 0.80)]);
        let fused = fuse(&ft, &sem, bounded).unwrap();
        // 1: 0.9 · 0.84 + 0.1 · 1.0; 2: 0.9 · 0.86 + 0.1 · 0.5; 3 missed by BM25 counts as
        // BM25's lowest candidate (0.5).
        let by_id = |id: i64| fused.iter().find(|f| f.chunk_id == id).unwrap().score;
        assert!((by_id(1) - 0.856).abs() < 1e-5, "{fused:?}");
        assert!((by_id(2) - 0.824).abs() < 1e-5, "{fused:?}");
        assert!((by_id(3) - 0.770).abs() < 1e-5, "{fused:?}");
        assert_eq!(fused[0].chunk_id, 1);
        // The same ranks with every cosine lower score lower: a threshold can tell a
        // question the knowledge base answers from one it does not.
        let far = scored(&[(2, 0.66), (1, 0.64), (3, 0.60)]);
        let fused_far = fuse(&ft, &far, bounded).unwrap();
        assert_eq!(fused_far[0].chunk_id, 1);
        assert!(fused_far[0].score < fused[0].score - 0.15, "{fused_far:?}");
        // Under min-max both questions look equally well answered.
        let minmax = Fusion::Weighted {
            semantic_weight: 0.5,
            scale: ScoreScale::MinMax,
        };
        let near_top = fuse(&ft, &sem, minmax).unwrap()[0].score;
        let far_top = fuse(&ft, &far, minmax).unwrap()[0].score;
        assert!((near_top - far_top).abs() < 1e-6);
    }

    #[test]
    fn bounded_with_one_retriever_empty() {
        let bounded = Fusion::Weighted {
            semantic_weight: 0.9,
            scale: ScoreScale::Bounded,
        };
        let only_sem = fuse(&[], &hits(&[4]), bounded).unwrap();
        assert_eq!(only_sem[0].chunk_id, 4);
        let only_ft = fuse(&hits(&[4, 5]), &[], bounded).unwrap();
        assert_eq!(only_ft[0].chunk_id, 4);
        assert!((only_ft[0].score - 0.1).abs() < 1e-6, "{only_ft:?}");
    }

    #[test]
    fn bad_weights_are_rejected() {
        assert!(
            fuse(
                &[],
                &[],
                Fusion::Weighted {
                    semantic_weight: 1.5,
                    scale: ScoreScale::MinMax,
                }
            )
            .is_err()
        );
        assert!(fuse(&[], &[], Fusion::Rrf { k: -1.0 }).is_err());
    }
}
