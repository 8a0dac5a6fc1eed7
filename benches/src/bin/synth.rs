//! `nightjar-synth`: writes a large synthetic capture for load tests and benchmarks by
//! cloning the real flows of the bundled captures (or of `--template` files) onto fresh
//! addresses in 198.18.0.0/15.

use std::path::PathBuf;

use anyhow::Context;
use clap::Parser;
use nightjar_benches::{fixture_paths, load_frames, synth, template_flows, write_pcap};

#[derive(Parser)]
#[command(name = "nightjar-synth", about = "Write a synthetic pcap of cloned real TLS/HTTP flows")]
struct Args {
    /// Output pcap.
    #[arg(long)]
    out: PathBuf,
    /// Clones of each template flow.
    #[arg(long, default_value_t = 1000)]
    copies: u64,
    /// Time between the starts of successive clones, microseconds.
    #[arg(long, default_value_t = 1000)]
    spacing_us: u64,
    /// Template captures (default: the bundled fixtures).
    #[arg(long)]
    template: Vec<PathBuf>,
    /// Leave out frames longer than this (e.g. 1514 to replay over a 1500-byte MTU).
    #[arg(long)]
    max_frame: Option<usize>,
}

fn main() -> anyhow::Result<()> {
    let a = Args::parse();
    let paths = if a.template.is_empty() { fixture_paths() } else { a.template };
    let mut frames = load_frames(&paths).context("reading templates")?;
    if let Some(max) = a.max_frame {
        frames.retain(|f| f.data.len() <= max);
    }
    let templates = template_flows(&frames);
    anyhow::ensure!(!templates.is_empty(), "no Ethernet/IPv4/TCP flows in the templates");
    let out = synth(&templates, a.copies, a.spacing_us * 1000, 1_700_000_000_000_000_000);
    write_pcap(&a.out, &out)?;
    eprintln!(
        "wrote {} frames, {} flows ({} templates x {} copies) to {}",
        out.len(),
        templates.len() as u64 * a.copies,
        templates.len(),
        a.copies,
        a.out.display()
    );
    Ok(())
}
