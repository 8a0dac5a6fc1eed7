//! Page-Hinkley change detection (Page 1954; as in Gama et al., "A survey on concept drift
//! adaptation", 2014): the cumulative deviation of a stream from its running mean, minus a
//! tolerated drift `delta`, compared with its running minimum. When the gap exceeds
//! `lambda`, the mean has risen: drift. Used on the feedback error rate (the model got a
//! labelled flow wrong) and on the uncertainty of the scores (1 - top probability).

use serde::{Deserialize, Serialize};

/// One detector's state (kept in checkpoints).
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct PageHinkley {
    n: u64,
    mean: f64,
    cum: f64,
    min: f64,
    /// Drifts detected since start.
    pub detections: u64,
}

impl PageHinkley {
    /// Adds one observation; returns true when it completes a drift (the detector then
    /// restarts from this point).
    pub fn update(&mut self, x: f64, delta: f64, lambda: f64) -> bool {
        self.n += 1;
        self.mean += (x - self.mean) / self.n as f64;
        self.cum += x - self.mean - delta;
        self.min = self.min.min(self.cum);
        if self.cum - self.min > lambda {
            self.detections += 1;
            let d = self.detections;
            *self = Self { detections: d, ..Self::default() };
            return true;
        }
        false
    }

    /// The test statistic over `lambda`: 1.0 or more means drift.
    pub fn score(&self, lambda: f64) -> f64 {
        if lambda > 0.0 { (self.cum - self.min) / lambda } else { 0.0 }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn detects_a_rise_and_not_a_steady_rate() {
        let mut ph = PageHinkley::default();
        // 10 % errors for a long time: no drift.
        for i in 0..5000 {
            assert!(!ph.update(f64::from(u8::from(i % 10 == 0)), 0.005, 20.0), "false alarm at {i}");
        }
        // Then 60 % errors: drift within a few dozen observations.
        let hit = (0..200).position(|i| ph.update(f64::from(u8::from(i % 5 < 3)), 0.005, 20.0));
        assert!(hit.is_some_and(|i| i < 100), "{hit:?}");
        assert_eq!(ph.detections, 1);
        assert!(ph.score(20.0) < 1.0);
    }
}
