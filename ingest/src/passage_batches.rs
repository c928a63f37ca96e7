//! How passages are grouped into ONNX Runtime runs.
//!
//! A run pads every passage to its longest one, and on a CPU a small run is cheaper per
//! token than a big one (the attention scores of 32 × 256 tokens are 100 MB and leave the
//! caches). So passages are sorted longest first and a run takes at most `max_passages`
//! of them and at most `max_tokens` padded tokens. On zhiku's own chunks (2 cores, raw ONNX
//! Runtime, docs/benchmarks.md): 8 passages / 1,024 tokens embedded SQuAD chunks at
//! ~30/s, CMRC chunks at ~27/s and one-sentence notes at ~135/s, where runs of 32 gave 19,
//! 20 and 66.

/// Indexes into `tokens` (each passage's length in tokens), one `Vec` per run, longest
/// passages first. Every index appears once; a passage longer than `max_tokens` runs alone.
pub(crate) fn plan(tokens: &[usize], max_passages: usize, max_tokens: usize) -> Vec<Vec<usize>> {
    let max_passages = max_passages.max(1);
    let mut order: Vec<usize> = (0..tokens.len()).collect();
    // Stable, so equal lengths keep their input order and a plan is reproducible.
    order.sort_by_key(|&i| std::cmp::Reverse(tokens[i]));
    let mut runs: Vec<Vec<usize>> = Vec::new();
    let mut run: Vec<usize> = Vec::new();
    for i in order {
        // Sorted longest first: the run's first passage sets its padded length.
        let padded_len = run.first().map_or(tokens[i], |&first| tokens[first]);
        if !run.is_empty()
            && (run.len() >= max_passages || (run.len() + 1) * padded_len > max_tokens)
        {
            runs.push(std::mem::take(&mut run));
        }
        run.push(i);
    }
    if !run.is_empty() {
        runs.push(run);
    }
    runs
}

#[cfg(test)]
mod tests {
    use super::plan;

    fn lengths(tokens: &[usize], runs: &[Vec<usize>]) -> Vec<Vec<usize>> {
        runs.iter()
            .map(|r| r.iter().map(|&i| tokens[i]).collect())
            .collect()
    }

    #[test]
    fn runs_are_longest_first_and_capped_by_passages_and_padded_tokens() {
        let tokens = [30, 250, 40, 260, 35, 255, 20, 30];
        let runs = plan(&tokens, 3, 600);
        // 2 × 260 fits 600 tokens, 3 × 260 does not; 40 and 35 would each be padded to
        // 250, so a third passage there is over the budget too; short ones fill runs of three.
        assert_eq!(
            lengths(&tokens, &runs),
            [vec![260, 255], vec![250, 40], vec![35, 30, 30], vec![20]]
        );
        let mut all: Vec<usize> = runs.concat();
        all.sort_unstable();
        assert_eq!(all, (0..tokens.len()).collect::<Vec<_>>());
    }

    #[test]
    fn a_passage_over_the_token_budget_runs_alone_and_nothing_is_lost() {
        let tokens = [900, 10, 10];
        assert_eq!(
            lengths(&tokens, &plan(&tokens, 8, 512)),
            [vec![900], vec![10, 10]]
        );
        assert!(plan(&[], 8, 512).is_empty());
        // A zero cap still makes progress: one passage per run.
        assert_eq!(plan(&[5, 5], 0, 0).len(), 2);
    }
}
