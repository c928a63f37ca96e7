//! Combining the full-text and semantic rankings.
//!
//! Reciprocal rank fusion (Cormack, Clarke & Büttcher, SIGIR 2009,
//! <https://plg.uwaterloo.ca/~gvcormac/cormacksigir09-rrf.pdf>): each retriever adds
//! `1 / (k + rank)` for every chunk it returned (rank from 1). We report the sum divided by
//! its maximum (`n / (k + 1)` for n retrievers), so 1.0 means "ranked first by both" and a
//! threshold means the same thing whatever `k` is.
//!
//! The weighted mode mixes scores instead of ranks: `w · cos' + (1 − w) · bm25'`, where each
//! retriever's scores are min-max normalised over this query's candidates (best 1, worst
//! 0; a chunk a retriever did not return counts as its worst). Bruch, Gai & Ingber, "An
//! Analysis of Fusion Functions for Hybrid Retrieval" (TOIS 2023,
//! <https://arxiv.org/abs/2210.11934>) found such a convex combination better than RRF
//! and robust to its one weight; `scripts/tune_fusion.py` measures both on the
//! development sets. Normalising matters: raw cosines of one query sit within a few
//! hundredths of each other, so unnormalised they would barely move the ranking.

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
    /// Fused score in 0..=1.
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
    },
}

impl Fusion {
    /// Reject weights and constants that make no sense.
    pub fn validate(&self) -> Result<()> {
        match *self {
            Fusion::Rrf { k } if !(k >= 0.0 && k.is_finite()) => Err(Error::InvalidInput(format!(
                "rrf k must be a non-negative number, got {k}"
            ))),
            Fusion::Weighted { semantic_weight } if !(0.0..=1.0).contains(&semantic_weight) => {
                Err(Error::InvalidInput(format!(
                    "semantic_weight must be between 0 and 1, got {semantic_weight}"
                )))
            }
            _ => Ok(()),
        }
    }
}

/// The range of one retriever's scores for a query.
struct MinMax {
    low: f32,
    high: f32,
}

impl MinMax {
    fn of(hits: &[Hit]) -> Self {
        let (low, high) = hits
            .iter()
            .fold((f32::INFINITY, f32::NEG_INFINITY), |(lo, hi), h| {
                (lo.min(h.score), hi.max(h.score))
            });
        Self { low, high }
    }

    /// 0..=1 within the range; a missing score is the worst; one candidate (or all equal)
    /// is the best.
    fn scale(&self, score: Option<f32>) -> f32 {
        match score {
            None => 0.0,
            Some(_) if self.high <= self.low => 1.0,
            Some(x) => ((x - self.low) / (self.high - self.low)).clamp(0.0, 1.0),
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
        Fusion::Weighted { semantic_weight } => {
            let bm25 = MinMax::of(fulltext);
            let cosine = MinMax::of(semantic);
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
            },
        )
        .unwrap();
        assert_eq!(only_sem[0].chunk_id, 2);
        let only_ft = fuse(
            &ft,
            &sem,
            Fusion::Weighted {
                semantic_weight: 0.0,
            },
        )
        .unwrap();
        assert_eq!(only_ft[0].chunk_id, 1);
        assert!((only_ft[0].score - 1.0).abs() < 1e-6);
    }

    #[test]
    fn weighted_normalises_each_retriever_so_close_cosines_still_count() {
        let scored = |pairs: &[(i64, f32)]| -> Vec<Hit> {
            pairs
                .iter()
                .map(|&(chunk_id, score)| Hit { chunk_id, score })
                .collect()
        };
        let ft = scored(&[(1, 10.0), (2, 9.0), (3, 5.0)]);
        // Cosines of one query differ by hundredths; normalised, chunk 2's semantic lead
        // outweighs its small BM25 deficit.
        let sem = scored(&[(2, 0.86), (1, 0.84), (3, 0.80)]);
        let fused = fuse(
            &ft,
            &sem,
            Fusion::Weighted {
                semantic_weight: 0.5,
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
            },
        )
        .unwrap();
        let one = only_ft.iter().find(|f| f.chunk_id == 1).unwrap();
        assert!((one.score - 0.5).abs() < 1e-6, "{one:?}");
    }

    #[test]
    fn bad_weights_are_rejected() {
        assert!(
            fuse(
                &[],
                &[],
                Fusion::Weighted {
                    semantic_weight: 1.5
                }
            )
            .is_err()
        );
        assert!(fuse(&[], &[], Fusion::Rrf { k: -1.0 }).is_err());
    }
}
