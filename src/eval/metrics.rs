//! Ranking metrics over document-level rankings, and latency percentiles.
//!
//! Search returns chunks; a ranking here is the list of *documents* in the order their
//! first chunk appears ([`first_occurrences`]), which is what a user scanning the results
//! sees. Relevance is binary: a document is relevant when it is one of the query's
//! positives.
//!
//! - recall@k: the share of the query's positives among the first k documents.
//! - hit@k: 1 when any of the query's positives is among the first k documents, else 0 —
//!   what most of the literature calls recall@k for multi-positive sets. With one positive
//!   per query (all of `shared/data/eval`) the two are equal.
//! - MRR@10: 1 / rank of the first relevant document, 0 when none is in the first 10.
//! - nDCG@10: Σ 1/log2(rank + 1) over relevant documents in the first 10, divided by the
//!   same sum for the ideal ranking (all positives first), after Järvelin & Kekäläinen,
//!   "Cumulated gain-based evaluation of IR techniques" (TOIS 2002).
//!
//! Document-level recall cannot compare chunk sizes: a bigger chunk holds more of its
//! document, and the measure cannot see which chunk of the right document a bot was given.
//! So the chunks themselves are scored too, as a bot reads them (the first k, in rank
//! order): answer@k is the share of the queries with gold answers whose first k chunks
//! contain one (compared as [`super::answers::contains_gold`] does), and chars@k the mean
//! characters of those k chunks. A bot does not read whole chunks: it reads the sentences
//! of each that match the question (`services::focus`), so both are also reported for
//! the text as read: that is what the model pays for before its first token. And a bot's
//! answer opens with one sentence of what it read, quoted word for word
//! (`services::prompt::quote_opening`): answer@k as quoted is the share whose quote holds a
//! gold answer — what the answer holds when the model stops after the quote, measured
//! without running the model.

use std::collections::HashSet;
use std::hash::Hash;

use serde::Serialize;

/// The cut-off of MRR and nDCG.
pub const CUTOFF: usize = 10;

/// Keep the first occurrence of each item, in order (chunks → their documents).
pub fn first_occurrences<T: Eq + Hash + Clone>(items: impl IntoIterator<Item = T>) -> Vec<T> {
    let mut seen = HashSet::new();
    items
        .into_iter()
        .filter(|item| seen.insert(item.clone()))
        .collect()
}

/// Share of the positives found in the first `k` of `relevant` (one flag per ranked
/// document), for a query with `positives` positives.
pub fn recall_at(relevant: &[bool], positives: usize, k: usize) -> f64 {
    if positives == 0 {
        return 0.0;
    }
    let found = relevant.iter().take(k).filter(|r| **r).count();
    found.min(positives) as f64 / positives as f64
}

/// 1 when a relevant document is among the first `k`, else 0.
pub fn hit_at(relevant: &[bool], k: usize) -> f64 {
    f64::from(u8::from(relevant.iter().take(k).any(|r| *r)))
}

/// 1 / rank of the first relevant document within [`CUTOFF`], else 0.
pub fn reciprocal_rank(relevant: &[bool]) -> f64 {
    relevant
        .iter()
        .take(CUTOFF)
        .position(|r| *r)
        .map_or(0.0, |i| 1.0 / (i + 1) as f64)
}

/// nDCG at [`CUTOFF`] with binary gains.
pub fn ndcg(relevant: &[bool], positives: usize) -> f64 {
    let discount = |i: usize| 1.0 / ((i + 2) as f64).log2();
    let dcg: f64 = relevant
        .iter()
        .take(CUTOFF)
        .enumerate()
        .filter(|(_, r)| **r)
        .map(|(i, _)| discount(i))
        .sum();
    let ideal: f64 = (0..positives.min(CUTOFF)).map(discount).sum();
    if ideal == 0.0 { 0.0 } else { dcg / ideal }
}

/// The `p`-th percentile (0..=100) by the nearest-rank method; 0 for no samples.
pub fn percentile(samples: &[f64], p: f64) -> f64 {
    if samples.is_empty() {
        return 0.0;
    }
    let mut sorted = samples.to_vec();
    sorted.sort_by(f64::total_cmp);
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// Hits at one cut-off.
#[derive(Debug, Clone, Serialize)]
pub struct HitAt {
    /// The cut-off.
    pub k: usize,
    /// Share of the queries with a positive in the first k.
    pub hit: f64,
}

/// Recall at one cut-off.
#[derive(Debug, Clone, Serialize)]
pub struct RecallAt {
    /// The cut-off.
    pub k: usize,
    /// Mean recall over the queries.
    pub recall: f64,
}

/// The scores of one search mode over a query set.
#[derive(Debug, Clone, Serialize)]
pub struct ModeReport {
    /// fulltext, semantic or hybrid.
    pub mode: String,
    /// Queries scored.
    pub queries: usize,
    /// Mean recall@k for each requested k.
    pub recall: Vec<RecallAt>,
    /// hit@k for each requested k.
    pub hit: Vec<HitAt>,
    /// Mean reciprocal rank at 10.
    pub mrr_at_10: f64,
    /// Mean nDCG at 10.
    pub ndcg_at_10: f64,
    /// Median search latency (query embedding included).
    pub p50_ms: f64,
    /// 95th percentile search latency.
    pub p95_ms: f64,
    /// Mean time spent embedding the query (0 for fulltext).
    pub mean_embed_ms: f64,
    /// Share of the queries with gold answers whose first k chunks contain one.
    pub answer: Vec<RecallAt>,
    /// Queries with gold answers (the denominator of `answer`).
    pub answer_queries: usize,
    /// Mean characters in the first k chunks, for each k.
    pub chars: Vec<CharsAt>,
    /// `answer` for the text the bot reads: the first k chunks cut together to its
    /// reading budget (`services::focus`).
    pub answer_read: Vec<RecallAt>,
    /// `chars` for the chunks as the bot reads them.
    pub chars_read: Vec<CharsAt>,
    /// `answer` for the sentence a bot's answer opens with, quoted from what it reads.
    pub answer_quoted: Vec<RecallAt>,
}

/// Mean passage text at one cut-off.
#[derive(Debug, Clone, Serialize)]
pub struct CharsAt {
    /// The cut-off.
    pub k: usize,
    /// Mean characters in the first k chunks.
    pub chars: f64,
}

/// One query's ranked chunks, whole or as a bot reads them.
#[derive(Debug, Clone, Copy)]
pub struct ChunkEvidence<'a> {
    /// For each chunk in rank order: whether it contains a gold answer; `None` when the
    /// query has no gold answers.
    pub holds_answer: Option<&'a [bool]>,
    /// Characters of each chunk, in rank order.
    pub chars: &'a [usize],
}

/// What a bot reads at each cut-off k (its first k chunks cut together to its reading
/// budget, so not a prefix of what it reads at a larger k): one entry per cut-off.
#[derive(Debug, Clone, Copy)]
pub struct ReadEvidence<'a> {
    /// Whether the text read holds a gold answer; `None` when the query has none.
    pub holds_answer: Option<&'a [bool]>,
    /// Characters read.
    pub chars: &'a [usize],
    /// Whether the sentence the answer opens with holds a gold answer; `None` when the
    /// query has none.
    pub quote_holds_answer: Option<&'a [bool]>,
}

/// Per-cut-off sums of chunk evidence.
#[derive(Debug, Default)]
struct EvidenceSums {
    answer: Vec<f64>,
    chars: Vec<f64>,
    quoted: Vec<f64>,
}

impl EvidenceSums {
    fn new(cut_offs: usize) -> Self {
        Self {
            answer: vec![0.0; cut_offs],
            chars: vec![0.0; cut_offs],
            quoted: vec![0.0; cut_offs],
        }
    }

    fn add(&mut self, ks: &[usize], chunks: ChunkEvidence<'_>) {
        for (i, &k) in ks.iter().enumerate() {
            self.chars[i] += chunks.chars.iter().take(k).sum::<usize>() as f64;
            if chunks
                .holds_answer
                .is_some_and(|holds| holds.iter().take(k).any(|h| *h))
            {
                self.answer[i] += 1.0;
            }
        }
    }

    fn add_read(&mut self, read: ReadEvidence<'_>) {
        for (i, chars) in read.chars.iter().enumerate().take(self.chars.len()) {
            self.chars[i] += *chars as f64;
        }
        for (sums, holds) in [
            (&mut self.answer, read.holds_answer),
            (&mut self.quoted, read.quote_holds_answer),
        ] {
            for (sum, holds) in sums.iter_mut().zip(holds.unwrap_or(&[])) {
                *sum += f64::from(u8::from(*holds));
            }
        }
    }
}

/// Adds up per-query results into a [`ModeReport`].
#[derive(Debug, Default)]
pub struct ModeAccumulator {
    ks: Vec<usize>,
    recall_sums: Vec<f64>,
    hit_sums: Vec<f64>,
    rr_sum: f64,
    ndcg_sum: f64,
    latencies_ms: Vec<f64>,
    embed_ms_sum: f64,
    whole: EvidenceSums,
    read: EvidenceSums,
    answer_queries: usize,
}

impl ModeAccumulator {
    /// Scores at these cut-offs.
    pub fn new(ks: &[usize]) -> Self {
        Self {
            ks: ks.to_vec(),
            recall_sums: vec![0.0; ks.len()],
            hit_sums: vec![0.0; ks.len()],
            whole: EvidenceSums::new(ks.len()),
            read: EvidenceSums::new(ks.len()),
            ..Self::default()
        }
    }

    /// Add one query: its ranked documents' relevance, its number of positives, its
    /// ranked chunks whole and as the bot reads them, and how long the search took.
    pub fn add(
        &mut self,
        relevant: &[bool],
        positives: usize,
        whole: ChunkEvidence<'_>,
        read: ReadEvidence<'_>,
        latency_ms: f64,
        embed_ms: f64,
    ) {
        for (i, &k) in self.ks.iter().enumerate() {
            self.recall_sums[i] += recall_at(relevant, positives, k);
            self.hit_sums[i] += hit_at(relevant, k);
        }
        self.whole.add(&self.ks, whole);
        self.read.add_read(read);
        self.answer_queries += usize::from(whole.holds_answer.is_some());
        self.rr_sum += reciprocal_rank(relevant);
        self.ndcg_sum += ndcg(relevant, positives);
        self.latencies_ms.push(latency_ms);
        self.embed_ms_sum += embed_ms;
    }

    /// The means.
    pub fn report(&self, mode: &str) -> ModeReport {
        let n = self.latencies_ms.len();
        let mean = |sum: f64| mean_over(sum, n);
        let answered = self.answer_queries;
        ModeReport {
            mode: mode.to_string(),
            queries: n,
            recall: self.per_k(&self.recall_sums, |k, sum| RecallAt {
                k,
                recall: mean(sum),
            }),
            hit: self.per_k(&self.hit_sums, |k, sum| HitAt { k, hit: mean(sum) }),
            mrr_at_10: mean(self.rr_sum),
            ndcg_at_10: mean(self.ndcg_sum),
            p50_ms: percentile(&self.latencies_ms, 50.0),
            p95_ms: percentile(&self.latencies_ms, 95.0),
            mean_embed_ms: mean(self.embed_ms_sum),
            answer: self.per_k(&self.whole.answer, |k, sum| RecallAt {
                k,
                recall: mean_over(sum, answered),
            }),
            answer_queries: answered,
            chars: self.per_k(&self.whole.chars, |k, sum| CharsAt {
                k,
                chars: mean(sum),
            }),
            answer_read: self.per_k(&self.read.answer, |k, sum| RecallAt {
                k,
                recall: mean_over(sum, answered),
            }),
            chars_read: self.per_k(&self.read.chars, |k, sum| CharsAt {
                k,
                chars: mean(sum),
            }),
            answer_quoted: self.per_k(&self.read.quoted, |k, sum| RecallAt {
                k,
                recall: mean_over(sum, answered),
            }),
        }
    }

    /// One figure per cut-off from that cut-off's sum.
    fn per_k<T>(&self, sums: &[f64], figure: impl Fn(usize, f64) -> T) -> Vec<T> {
        self.ks
            .iter()
            .zip(sums)
            .map(|(&k, &sum)| figure(k, sum))
            .collect()
    }
}

/// `sum / n`, 0 for no samples.
/// `sum / n`, or 0 when there is nothing to average.
pub fn mean_over(sum: f64, n: usize) -> f64 {
    if n == 0 { 0.0 } else { sum / n as f64 }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-9
    }

    #[test]
    fn chunks_collapse_to_their_documents_in_rank_order() {
        assert_eq!(
            first_occurrences(["b", "a", "b", "c", "a"]),
            vec!["b", "a", "c"]
        );
    }

    #[test]
    fn recall_counts_positives_within_k() {
        let r = [false, true, false, true];
        assert!(close(recall_at(&r, 1, 1), 0.0));
        assert!(close(recall_at(&r, 1, 2), 1.0));
        assert!(close(recall_at(&r, 2, 2), 0.5));
        assert!(close(recall_at(&r, 2, 10), 1.0));
        assert!(close(recall_at(&r, 0, 10), 0.0));
    }

    #[test]
    fn hits_count_a_query_once_whatever_its_positives() {
        let r = [false, true, true];
        assert!(close(hit_at(&r, 1), 0.0));
        assert!(close(hit_at(&r, 2), 1.0));
        // Two positives, one found by k = 2: recall 0.5, hit 1.
        assert!(close(recall_at(&r, 2, 2), 0.5));
        assert!(close(hit_at(&[], 5), 0.0));
    }

    #[test]
    fn reciprocal_rank_stops_at_ten() {
        assert!(close(reciprocal_rank(&[false, false, true]), 1.0 / 3.0));
        let mut late = vec![false; 10];
        late.push(true);
        assert!(close(reciprocal_rank(&late), 0.0));
        assert!(close(reciprocal_rank(&[]), 0.0));
    }

    #[test]
    fn ndcg_matches_hand_computed_values() {
        // One positive at rank 1: perfect. At rank 3: 1/log2(4) = 0.5.
        assert!(close(ndcg(&[true], 1), 1.0));
        assert!(close(ndcg(&[false, false, true], 1), 0.5));
        // Two positives at ranks 1 and 3: (1 + 0.5) / (1 + 1/log2 3).
        let expected = 1.5 / (1.0 + 1.0 / 3f64.log2());
        assert!(close(ndcg(&[true, false, true], 2), expected));
        assert!(close(ndcg(&[false; 12], 1), 0.0));
    }

    #[test]
    fn percentiles_use_nearest_rank() {
        let samples: Vec<f64> = (1..=20).map(f64::from).collect();
        assert!(close(percentile(&samples, 50.0), 10.0));
        assert!(close(percentile(&samples, 95.0), 19.0));
        assert!(close(percentile(&[7.0], 95.0), 7.0));
        assert!(close(percentile(&[], 50.0), 0.0));
    }

    #[test]
    fn accumulator_averages_queries() {
        let mut acc = ModeAccumulator::new(&[1, 5]);
        let first = ChunkEvidence {
            holds_answer: Some(&[false, true]),
            chars: &[100, 50],
        };
        let second = ChunkEvidence {
            holds_answer: None,
            chars: &[10, 20, 30],
        };
        let read = ReadEvidence {
            holds_answer: Some(&[false, true]),
            chars: &[40, 70],
            quote_holds_answer: Some(&[false, false]),
        };
        let second_read = ReadEvidence {
            holds_answer: None,
            chars: &[10, 60],
            quote_holds_answer: None,
        };
        acc.add(&[true], 1, first, read, 10.0, 2.0);
        acc.add(&[false, false, true], 1, second, second_read, 30.0, 4.0);
        let r = acc.report("hybrid");
        // Only the first query has gold answers: found in its second chunk.
        assert_eq!(r.answer_queries, 1);
        assert!(close(r.answer[0].recall, 0.0));
        assert!(close(r.answer[1].recall, 1.0));
        assert!(close(r.chars[0].chars, (100.0 + 10.0) / 2.0));
        assert!(close(r.chars[1].chars, (150.0 + 60.0) / 2.0));
        // As read, the first query's answer was cut away at k 1, and its quote missed it.
        assert!(close(r.answer_read[0].recall, 0.0));
        assert!(close(r.answer_read[1].recall, 1.0));
        assert!(close(r.answer_quoted[1].recall, 0.0));
        assert!(close(r.chars_read[0].chars, (40.0 + 10.0) / 2.0));
        assert!(close(r.hit[1].hit, 1.0));
        assert_eq!(r.queries, 2);
        assert!(close(r.recall[0].recall, 0.5));
        assert!(close(r.recall[1].recall, 1.0));
        assert!(close(r.mrr_at_10, (1.0 + 1.0 / 3.0) / 2.0));
        assert!(close(r.ndcg_at_10, 0.75));
        assert!(close(r.mean_embed_ms, 3.0));
        assert!(close(r.p50_ms, 10.0));
        assert!(close(r.p95_ms, 30.0));
    }
}
