//! The live page served at `/` (beside `/metrics`): the four views of the traffic classes
//! (share of malicious vs benign, per-class time series, per-class counts per day, total
//! flows over time) drawn by Apache ECharts, which is embedded in the binary
//! (`sensor/assets/`), so the page needs nothing but the sensor. The page polls
//! `/api/live`, a JSON snapshot of [`crate::export::live::History`].

/// The page.
pub const PAGE: &str = include_str!("../../assets/live.html");
/// Apache ECharts 5.6.0 (`dist/echarts.min.js` of the npm package).
pub const ECHARTS: &[u8] = include_bytes!("../../assets/echarts.min.js");
/// SHA-256 of [`ECHARTS`] as published in the npm package.
pub const ECHARTS_SHA256: &str = "bf4a223524e40b77c304bec67e1222cf551f14880cf42c69dc046558e11c07b1";

#[cfg(test)]
mod tests {
    use sha2::{Digest, Sha256};

    use super::*;

    #[test]
    fn embedded_echarts_is_the_published_file() {
        assert_eq!(crate::decode::tls::hex(&Sha256::digest(ECHARTS)), ECHARTS_SHA256);
        assert!(PAGE.contains("/assets/echarts.min.js") && PAGE.contains("/api/live"));
    }
}
