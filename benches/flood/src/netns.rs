//! The generator's network: a client namespace and a server namespace joined by a veth
//! pair, each side holding many addresses of 198.18.0.0/15 (clients in 198.18/16, servers
//! in 198.19/16). Optionally a span port: every frame of the client's veth is mirrored
//! (tc mirred) into a veth whose peer sits in the caller's namespace, where `nightjar run`
//! can watch it. Everything is removed in `Drop` (deleting the namespaces deletes the
//! veths, the span peer included).

use std::fmt::Write as _;
use std::io::Write;
use std::os::fd::AsRawFd;
use std::process::{Command, Stdio};

use anyhow::{Context, Result, bail, ensure};

use crate::plan::{client_addr, server_addr};

/// Client-side interface name (inside the client namespace).
pub const CLIENT_IF: &str = "njf0";
/// Server-side interface name (inside the server namespace).
pub const SERVER_IF: &str = "njf1";
/// Mirror source inside the client namespace (its peer is the span port).
const MIRROR_IF: &str = "njfspan";

/// The namespaces and links of one run.
pub struct Topology {
    /// Client namespace name.
    pub client_ns: String,
    /// Server namespace name.
    pub server_ns: String,
}

fn run(cmd: &mut Command) -> Result<()> {
    let out = cmd.stdin(Stdio::null()).output().with_context(|| format!("running {cmd:?}"))?;
    if !out.status.success() {
        bail!("{cmd:?} failed: {}", String::from_utf8_lossy(&out.stderr).trim());
    }
    Ok(())
}

fn ip(args: &[&str]) -> Result<()> {
    run(Command::new("ip").args(args))
}

fn in_ns(ns: &str, args: &[&str]) -> Result<()> {
    run(Command::new("ip").args(["netns", "exec", ns]).args(args))
}

fn ip_batch(ns: &str, lines: &str) -> Result<()> {
    let mut child = Command::new("ip")
        .args(["netns", "exec", ns, "ip", "-batch", "-"])
        .stdin(Stdio::piped())
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .context("running ip -batch")?;
    child.stdin.take().context("ip stdin")?.write_all(lines.as_bytes())?;
    let out = child.wait_with_output()?;
    ensure!(out.status.success(), "ip -batch in {ns} failed: {}", String::from_utf8_lossy(&out.stderr).trim());
    Ok(())
}

/// Frames on the wire, as a span port shows them: no segmentation or checksum offload
/// (otherwise the capture holds 64 KiB "super frames").
fn no_offloads(ns: Option<&str>, dev: &str) -> Result<()> {
    let args = ["ethtool", "-K", dev, "tx", "off", "sg", "off", "tso", "off", "gso", "off", "gro", "off"];
    match ns {
        Some(ns) => in_ns(ns, &args),
        None => run(Command::new(args[0]).args(&args[1..])),
    }
    .context("turning offloads off (is ethtool installed?)")
}

impl Topology {
    /// Creates the namespaces, links and addresses; `span` names a span port to create in
    /// the caller's namespace.
    pub fn create(client_hosts: u32, server_hosts: u32, span: Option<&str>) -> Result<Self> {
        let tag = std::process::id();
        let topo = Self { client_ns: format!("njf{tag}c"), server_ns: format!("njf{tag}s") };
        for ns in [&topo.client_ns, &topo.server_ns] {
            let _ = Command::new("ip").args(["netns", "del", ns]).stderr(Stdio::null()).status();
            ip(&["netns", "add", ns]).context("creating a network namespace (needs root)")?;
        }
        raise_neighbour_limits(2 * (client_hosts + server_hosts) + 1024)?;
        let (c, s) = (topo.client_ns.as_str(), topo.server_ns.as_str());
        ip(&["-n", c, "link", "add", CLIENT_IF, "type", "veth", "peer", "name", SERVER_IF, "netns", s])?;
        let mut client_lines = String::new();
        for i in 0..client_hosts {
            let _ = writeln!(client_lines, "addr add {}/15 dev {CLIENT_IF}", client_addr(i));
        }
        let mut server_lines = String::new();
        for i in 0..server_hosts {
            let _ = writeln!(server_lines, "addr add {}/15 dev {SERVER_IF}", server_addr(i));
        }
        ip_batch(c, &client_lines)?;
        ip_batch(s, &server_lines)?;
        for (ns, dev) in [(c, CLIENT_IF), (s, SERVER_IF)] {
            no_offloads(Some(ns), dev)?;
            ip(&["-n", ns, "link", "set", dev, "up"])?;
            ip(&["-n", ns, "link", "set", "lo", "up"])?;
            in_ns(ns, &["sysctl", "-qw", "net.core.somaxconn=8192"])?;
            in_ns(ns, &["sysctl", "-qw", "net.ipv4.tcp_max_syn_backlog=8192"])?;
        }
        if let Some(span) = span {
            ensure!(
                !std::path::Path::new("/sys/class/net").join(span).exists(),
                "interface {span} already exists; name a new one for the span port"
            );
            ip(&["link", "add", span, "type", "veth", "peer", "name", MIRROR_IF, "netns", c])?;
            no_offloads(None, span)?;
            no_offloads(Some(c), MIRROR_IF)?;
            ip(&["link", "set", span, "up"])?;
            ip(&["-n", c, "link", "set", MIRROR_IF, "up"])?;
            in_ns(c, &["tc", "qdisc", "add", "dev", CLIENT_IF, "clsact"])?;
            for dir in ["ingress", "egress"] {
                // u32 matching everything: cls_matchall is not built into every kernel.
                in_ns(
                    c,
                    &[
                        "tc", "filter", "add", "dev", CLIENT_IF, dir, "protocol", "all", "u32", "match", "u32", "0",
                        "0", "action", "mirred", "egress", "mirror", "dev", MIRROR_IF,
                    ],
                )
                .context("mirroring onto the span port (tc mirred)")?;
            }
        }
        Ok(topo)
    }
}

/// The neighbour (ARP) table is shared by all namespaces and its limits can only be set in
/// the initial one: with thousands of addresses on one link the default hard limit (1,024
/// entries) overflows and the kernel drops packets. Raises (never lowers) the limits.
fn raise_neighbour_limits(needed: u32) -> Result<()> {
    for (key, want) in [("gc_thresh2", needed / 2), ("gc_thresh3", needed)] {
        let path = format!("/proc/sys/net/ipv4/neigh/default/{key}");
        let now: u32 =
            std::fs::read_to_string(&path).with_context(|| format!("reading {path}"))?.trim().parse().unwrap_or(0);
        if now < want {
            std::fs::write(&path, want.to_string()).with_context(|| format!("raising {path} to {want}"))?;
        }
    }
    Ok(())
}

impl Drop for Topology {
    fn drop(&mut self) {
        remove(&[self.client_ns.clone(), self.server_ns.clone()]);
    }
}

/// Deletes namespaces (and the links inside them); missing ones are ignored.
pub fn remove(names: &[String]) {
    for ns in names {
        let _ = Command::new("ip").args(["netns", "del", ns]).stderr(Stdio::null()).status();
    }
}

/// Moves the calling thread into network namespace `ns` (sockets it opens afterwards, and
/// threads it spawns, live there).
pub fn enter(ns: &str) -> Result<()> {
    let f = std::fs::File::open(format!("/run/netns/{ns}")).with_context(|| format!("opening namespace {ns}"))?;
    // Safety: setns takes a valid namespace file descriptor (kept open for the call) and
    // only changes the calling thread's network namespace.
    let rc = unsafe { libc::setns(f.as_raw_fd(), libc::CLONE_NEWNET) };
    if rc != 0 {
        bail!("setns({ns}): {}", std::io::Error::last_os_error());
    }
    Ok(())
}
