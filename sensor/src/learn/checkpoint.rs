//! Checkpoints of the learner: `learner.ckpt` in the state directory, written atomically
//! (temporary file, fsync, rename, fsync of the directory) with the previous one kept as
//! `learner.ckpt.prev`. The file is a JSON envelope with the SHA-256 of its payload, so a
//! torn or edited file is refused with a clear error and the previous one is used.

use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::learner::LearnerState;
use crate::decode::tls::hex;

/// Format version of the envelope.
const FORMAT: u32 = 1;

/// Why a checkpoint could not be written or read.
#[derive(Debug, thiserror::Error)]
pub enum CheckpointError {
    /// File system error.
    #[error("checkpoint {path}: {source}")]
    Io {
        /// File.
        path: PathBuf,
        /// Cause.
        #[source]
        source: std::io::Error,
    },
    /// The file is not a valid checkpoint.
    #[error("checkpoint {path} is corrupt: {reason}")]
    Corrupt {
        /// File.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
}

#[derive(Serialize, Deserialize)]
struct Envelope {
    format: u32,
    sha256: String,
    payload: String,
}

/// The current checkpoint file in `dir`.
pub fn path(dir: &Path) -> PathBuf {
    dir.join("learner.ckpt")
}

fn prev_path(dir: &Path) -> PathBuf {
    dir.join("learner.ckpt.prev")
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> CheckpointError + '_ {
    move |source| CheckpointError::Io { path: path.to_path_buf(), source }
}

/// Writes `state` atomically; the checkpoint it replaces becomes `learner.ckpt.prev`.
pub fn save(dir: &Path, state: &LearnerState) -> Result<(), CheckpointError> {
    fs::create_dir_all(dir).map_err(io(dir))?;
    let payload = serde_json::to_string(state)
        .map_err(|e| CheckpointError::Corrupt { path: path(dir), reason: e.to_string() })?;
    let env = Envelope { format: FORMAT, sha256: hex(&Sha256::digest(payload.as_bytes())), payload };
    let bytes =
        serde_json::to_vec(&env).map_err(|e| CheckpointError::Corrupt { path: path(dir), reason: e.to_string() })?;
    let tmp = dir.join("learner.ckpt.tmp");
    {
        let mut f = File::create(&tmp).map_err(io(&tmp))?;
        f.write_all(&bytes).map_err(io(&tmp))?;
        f.sync_all().map_err(io(&tmp))?;
    }
    let cur = path(dir);
    if cur.exists() {
        fs::rename(&cur, prev_path(dir)).map_err(io(&cur))?;
    }
    fs::rename(&tmp, &cur).map_err(io(&cur))?;
    File::open(dir).and_then(|d| d.sync_all()).map_err(io(dir))?;
    Ok(())
}

/// Reads and verifies one checkpoint file.
pub fn read(path: &Path) -> Result<LearnerState, CheckpointError> {
    let bytes = crate::config::read_bounded(path, crate::config::MAX_CHECKPOINT_BYTES).map_err(io(path))?;
    let corrupt = |reason: String| CheckpointError::Corrupt { path: path.to_path_buf(), reason };
    let env: Envelope =
        serde_json::from_slice(&bytes).map_err(|e| corrupt(format!("not a checkpoint envelope: {e}")))?;
    if env.format != FORMAT {
        return Err(corrupt(format!("format {} (this sensor reads {FORMAT})", env.format)));
    }
    let got = hex(&Sha256::digest(env.payload.as_bytes()));
    if got != env.sha256 {
        return Err(corrupt(format!("payload sha256 {got} differs from the recorded {}", env.sha256)));
    }
    let state: LearnerState = serde_json::from_str(&env.payload).map_err(|e| corrupt(format!("payload: {e}")))?;
    state.head.check().map_err(|e| corrupt(e.to_string()))?;
    Ok(state)
}

/// Loads the newest good checkpoint in `dir`: `learner.ckpt`, or `learner.ckpt.prev`
/// when the newest is corrupt. `Ok(None)` when there is none. Every refused file is
/// returned beside the result so the caller can say so.
pub fn load(dir: &Path) -> (Option<LearnerState>, Vec<CheckpointError>) {
    let mut refused = Vec::new();
    for p in [path(dir), prev_path(dir)] {
        if !p.exists() {
            continue;
        }
        match read(&p) {
            Ok(s) => return (Some(s), refused),
            Err(e) => refused.push(e),
        }
    }
    (None, refused)
}
