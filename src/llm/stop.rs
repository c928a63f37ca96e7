//! Stop strings over a token stream: text that might be the start of a stop string is held
//! back until the next piece shows whether it is, so a stop string is never half-sent.

/// Feeds pieces, releases what is safe to show.
#[derive(Debug, Default)]
pub struct StopMatcher {
    stops: Vec<String>,
    held: String,
}

/// What a piece produced.
#[derive(Debug, PartialEq, Eq)]
pub enum StopOutcome {
    /// Text to send now (may be empty).
    Continue(String),
    /// A stop string was found: send this text, then finish.
    Stopped(String),
}

impl StopMatcher {
    /// Match these stop strings (empty ones are ignored).
    pub fn new(stops: &[String]) -> Self {
        Self {
            stops: stops.iter().filter(|s| !s.is_empty()).cloned().collect(),
            held: String::new(),
        }
    }

    /// Add a piece of generated text.
    pub fn push(&mut self, piece: &str) -> StopOutcome {
        self.held.push_str(piece);
        if self.stops.is_empty() {
            return StopOutcome::Continue(std::mem::take(&mut self.held));
        }
        if let Some(at) = self.stops.iter().filter_map(|s| self.held.find(s)).min() {
            let text = self.held[..at].to_string();
            self.held.clear();
            return StopOutcome::Stopped(text);
        }
        // Keep the longest tail that is a prefix of some stop string.
        let keep = self
            .stops
            .iter()
            .map(|stop| longest_suffix_prefix(&self.held, stop))
            .max()
            .unwrap_or(0);
        let release = self.held.len() - keep;
        let text = self.held[..release].to_string();
        self.held.drain(..release);
        StopOutcome::Continue(text)
    }

    /// The text still held at the end of generation.
    pub fn finish(&mut self) -> String {
        std::mem::take(&mut self.held)
    }
}

/// Length in bytes of the longest suffix of `text` that is a proper prefix of `stop`, at a
/// char boundary.
fn longest_suffix_prefix(text: &str, stop: &str) -> usize {
    let max = stop.len().saturating_sub(1).min(text.len());
    (1..=max)
        .rev()
        .find(|&n| {
            let start = text.len() - n;
            text.is_char_boundary(start) && stop.starts_with(&text[start..])
        })
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_stops_passes_everything_through() {
        let mut m = StopMatcher::new(&[]);
        assert_eq!(m.push("ab"), StopOutcome::Continue("ab".into()));
    }

    #[test]
    fn a_stop_split_over_pieces_is_never_sent() {
        let mut m = StopMatcher::new(&["\nUser:".to_string()]);
        assert_eq!(m.push("答案是四"), StopOutcome::Continue("答案是四".into()));
        assert_eq!(m.push("小时\nUs"), StopOutcome::Continue("小时".into()));
        assert_eq!(m.push("er: next"), StopOutcome::Stopped(String::new()));
    }

    #[test]
    fn a_false_start_is_released() {
        let mut m = StopMatcher::new(&["END".to_string()]);
        assert_eq!(m.push("THE E"), StopOutcome::Continue("THE ".into()));
        assert_eq!(m.push("X"), StopOutcome::Continue("EX".into()));
        assert_eq!(m.push("ok EN"), StopOutcome::Continue("ok ".into()));
        assert_eq!(m.push("D"), StopOutcome::Stopped(String::new()));
    }

    #[test]
    fn held_text_comes_out_at_the_end() {
        let mut m = StopMatcher::new(&["END".to_string()]);
        assert_eq!(m.push("xE"), StopOutcome::Continue("x".into()));
        assert_eq!(m.finish(), "E");
    }
}
