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
