//! What the privileged end-to-end tests of nightjar-flood share.

use std::path::{Path, PathBuf};
use std::process::Command;

/// True as root; without root the test skips, unless `NIGHTJAR_REQUIRE_FLOOD` is set.
pub fn privileged() -> bool {
    // Safety: geteuid has no preconditions.
    let root = unsafe { libc::geteuid() } == 0;
    if !root {
        assert!(
            std::env::var_os("NIGHTJAR_REQUIRE_FLOOD").is_none(),
            "NIGHTJAR_REQUIRE_FLOOD is set but we are not root"
        );
        eprintln!("skipping: nightjar-flood needs root (network namespaces)");
    }
    root
}

/// True when the shared data the scenarios read (payload lists, CSIC 2010) is there:
/// `$NIGHTJAR_SHARED_DATA` or `../shared/data` beside the repository. Without it the test
/// says SKIP on the real stderr (shown even when the test passes), unless
/// `NIGHTJAR_REQUIRE_SHARED` is set (CI), where its absence fails.
pub fn shared_data() -> bool {
    let dir = std::env::var_os("NIGHTJAR_SHARED_DATA")
        .map_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/data"), PathBuf::from);
    if dir.is_dir() {
        return true;
    }
    assert!(std::env::var_os("NIGHTJAR_REQUIRE_SHARED").is_none(), "shared data not found at {}", dir.display());
    let _ = std::io::Write::write_all(
        &mut std::io::stderr(),
        format!("SKIP: nightjar-flood scenarios need the shared data, not found at {}\n", dir.display()).as_bytes(),
    );
    false
}

/// The sensor's binary, built beside nightjar-flood's.
pub fn nightjar_bin() -> PathBuf {
    let p = Path::new(env!("CARGO_BIN_EXE_nightjar-flood")).with_file_name("nightjar");
    assert!(p.exists(), "{} missing: build the sensor first (cargo build -p nightjar)", p.display());
    p
}

/// Runs `cmd`, fails the test on a non-zero exit, returns its standard output.
pub fn run_ok(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(out.status.success(), "{cmd:?} failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).expect("utf-8 output")
}
