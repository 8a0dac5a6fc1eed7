//! Threat-intel fingerprint lists as weak labels: a flow whose JA3, JA4 or server
//! certificate SHA-1 is on a blocklist is labelled `malware` by the `intel` source, whose
//! low weight and rate limit keep a stale or wrong list from dominating what the head learns.

use std::collections::HashSet;
use std::path::Path;

use crate::config::IntelConfig;

/// The loaded lists (lower-case hex / JA4 strings).
#[derive(Debug, Default)]
pub struct Intel {
    ja3: HashSet<String>,
    ja4: HashSet<String>,
    cert_sha1: HashSet<String>,
}

/// A list that could not be read.
#[derive(Debug, thiserror::Error)]
#[error("threat-intel list {path}: {source}")]
pub struct IntelError {
    path: String,
    #[source]
    source: std::io::Error,
}

/// First CSV column of every line that is not a comment or a header, lower-cased; only
/// values that `valid` accepts are kept.
fn read_list(path: &Path, valid: fn(&str) -> bool) -> Result<HashSet<String>, IntelError> {
    let text = crate::config::read_bounded_text(path, crate::config::MAX_INTEL_BYTES)
        .map_err(|source| IntelError { path: path.display().to_string(), source })?;
    Ok(text
        .lines()
        .map(|l| l.trim_start_matches('\u{feff}').trim())
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .filter_map(|l| l.split(',').next())
        .map(|v| v.trim().trim_matches('"').to_ascii_lowercase())
        .filter(|v| valid(v))
        .collect())
}

fn is_hex(v: &str, len: usize) -> bool {
    v.len() == len && v.bytes().all(|b| b.is_ascii_hexdigit())
}

impl Intel {
    /// Loads every configured list.
    pub fn load(cfg: &IntelConfig) -> Result<Self, IntelError> {
        let mut me = Self::default();
        for p in &cfg.ja3 {
            me.ja3.extend(read_list(p, |v| is_hex(v, 32))?);
        }
        for p in &cfg.ja4 {
            me.ja4.extend(read_list(p, |v| v.len() == 36 && v.matches('_').count() == 2)?);
        }
        for p in &cfg.cert_sha1 {
            me.cert_sha1.extend(read_list(p, |v| is_hex(v, 40))?);
        }
        Ok(me)
    }

    /// Entries loaded.
    pub fn len(&self) -> usize {
        self.ja3.len() + self.ja4.len() + self.cert_sha1.len()
    }

    /// No entries.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// True when any of the flow's fingerprints is listed.
    pub fn matches(&self, ja3: Option<&str>, ja4: Option<&str>, cert_sha1: Option<&str>) -> bool {
        ja3.is_some_and(|v| self.ja3.contains(v))
            || ja4.is_some_and(|v| self.ja4.contains(v))
            || cert_sha1.is_some_and(|v| self.cert_sha1.contains(v))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_sslbl_formats() {
        let dir = tempfile::tempdir().expect("tmp");
        let ja3 = dir.path().join("ja3.csv");
        std::fs::write(
            &ja3,
            "# comment\n# ja3_md5,Firstseen\nB386946A5A44D1DDCC843BC75336DFCE,2017-07-14,x,Dridex\nnot-a-hash,1\n",
        )
        .expect("write");
        let sha = dir.path().join("sha1.csv");
        std::fs::write(&sha, "\u{feff}SHA1,ListingReason\n19e664f09401bf648b6ea57719e34ad795f3b6cb,AsyncRAT C&C,x\n")
            .expect("write");
        let cfg = IntelConfig { ja3: vec![ja3], ja4: vec![], cert_sha1: vec![sha] };
        let intel = Intel::load(&cfg).expect("load");
        assert_eq!(intel.len(), 2);
        assert!(intel.matches(Some("b386946a5a44d1ddcc843bc75336dfce"), None, None));
        assert!(intel.matches(None, None, Some("19e664f09401bf648b6ea57719e34ad795f3b6cb")));
        assert!(!intel.matches(Some("00000000000000000000000000000000"), None, None));
        let missing = IntelConfig { ja3: vec![dir.path().join("nope.csv")], ..IntelConfig::default() };
        assert!(Intel::load(&missing).unwrap_err().to_string().contains("nope.csv"));
    }
}
