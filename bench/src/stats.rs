//! Percentiles of latency samples, medians and spread of repeated runs.

use serde::Serialize;

/// Latency samples in microseconds.
#[derive(Default)]
pub struct Latencies(pub Vec<u32>);

impl Latencies {
    /// Adds one sample.
    pub fn push_us(&mut self, us: u64) {
        self.0.push(u32::try_from(us).unwrap_or(u32::MAX));
    }

    /// Merges another set.
    pub fn extend(&mut self, other: Latencies) {
        self.0.extend(other.0);
    }

    /// The `p`-th percentile (0..=100) in milliseconds, nearest-rank; 0 when empty.
    pub fn percentile_ms(&mut self, p: f64) -> f64 {
        if self.0.is_empty() {
            return 0.0;
        }
        self.0.sort_unstable();
        let rank = ((p / 100.0) * self.0.len() as f64).ceil() as usize;
        let index = rank.clamp(1, self.0.len()) - 1;
        f64::from(self.0[index]) / 1000.0
    }

    /// Number of samples.
    pub fn len(&self) -> usize {
        self.0.len()
    }
}

/// Median, minimum and maximum of repeated runs of one figure.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Summary {
    /// The median (the mean of the middle two for an even count).
    pub median: f64,
    /// The smallest run.
    pub min: f64,
    /// The largest run.
    pub max: f64,
}

/// Summarises `values`; `None` when there are none.
pub fn summarize(values: &[f64]) -> Option<Summary> {
    if values.is_empty() {
        return None;
    }
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let n = sorted.len();
    let median = if n % 2 == 1 {
        sorted[n / 2]
    } else {
        (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0
    };
    Some(Summary {
        median,
        min: sorted[0],
        max: sorted[n - 1],
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_use_nearest_rank() {
        let mut l = Latencies((1..=100).map(|v| v * 1000).collect());
        assert_eq!(l.percentile_ms(50.0), 50.0);
        assert_eq!(l.percentile_ms(99.0), 99.0);
        assert_eq!(l.percentile_ms(100.0), 100.0);
        assert_eq!(Latencies::default().percentile_ms(50.0), 0.0);
    }

    #[test]
    fn medians_of_odd_and_even_counts() {
        let s = summarize(&[3.0, 1.0, 2.0]).unwrap();
        assert_eq!((s.median, s.min, s.max), (2.0, 1.0, 3.0));
        assert_eq!(summarize(&[1.0, 2.0, 3.0, 10.0]).unwrap().median, 2.5);
        assert!(summarize(&[]).is_none());
    }
}
