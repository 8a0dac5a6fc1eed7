//! Builds the XDP program (`ebpf/`) for `bpfel-unknown-none` with aya-build when the
//! `ebpf` feature is on, so that `nightjar run` can embed it. The eBPF build needs
//! bpf-linker and the `rust-src` component; it runs on the stable toolchain with
//! `RUSTC_BOOTSTRAP=1` for that inner build only (for `-Z build-std=core`).
//!
//! `NIGHTJAR_EBPF_OBJECT=PATH` embeds a prebuilt object instead; `AYA_BUILD_SKIP=1`
//! skips the build (then the `ebpf` feature must be off).

use std::path::PathBuf;

use anyhow::{Context, anyhow};

fn main() -> anyhow::Result<()> {
    println!("cargo:rerun-if-env-changed=NIGHTJAR_EBPF_OBJECT");
    if std::env::var_os("CARGO_FEATURE_EBPF").is_none() {
        return Ok(());
    }
    let out_dir = PathBuf::from(std::env::var_os("OUT_DIR").ok_or_else(|| anyhow!("OUT_DIR not set"))?);
    if let Some(obj) = std::env::var_os("NIGHTJAR_EBPF_OBJECT") {
        std::fs::copy(&obj, out_dir.join("nightjar-ebpf")).context("copying NIGHTJAR_EBPF_OBJECT")?;
        return Ok(());
    }
    let manifest = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").ok_or_else(|| anyhow!("no manifest dir"))?);
    let root = manifest.join("../ebpf").canonicalize().context("ebpf/ directory")?;
    let root = root.to_str().ok_or_else(|| anyhow!("non-UTF-8 path"))?;
    // Safety: build scripts are single-threaded here; the variable is inherited by the
    // inner cargo that aya-build spawns, which needs it for `-Z build-std` on stable.
    unsafe { std::env::set_var("RUSTC_BOOTSTRAP", "1") };
    let package = aya_build::Package { name: "nightjar-ebpf", root_dir: root, ..Default::default() };
    aya_build::build_ebpf([package], aya_build::Toolchain::Custom("stable"))
}
