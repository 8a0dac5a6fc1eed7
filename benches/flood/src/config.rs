//! The two kinds of configuration file: the profile catalogue (`profiles.toml`: every TLS
//! client and server profile, every family and the class it is labelled with) and the
//! scenarios (`scenarios/*.toml`: which families, how many flows, how fast, which seed).
//!
//! The mapping from profile or family to label lives only in the catalogue, so a label can
//! never disagree between scenarios.

use std::collections::BTreeSet;
use std::path::Path;

use anyhow::{Context, Result, bail, ensure};
use serde::Deserialize;

/// The label of a flow.
#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[serde(rename_all = "lowercase")]
pub enum Class {
    /// Ordinary traffic.
    Benign,
    /// Network attacks: web attacks, exploits, scans.
    Attack,
    /// Malware: C2, droppers, exfiltration.
    Malware,
}

impl Class {
    /// The label written to the CSV (same words as the sensor's `verdict.class`).
    pub fn as_str(self) -> &'static str {
        match self {
            Class::Benign => "benign",
            Class::Attack => "attack",
            Class::Malware => "malware",
        }
    }
}

/// A TLS library that takes the client or server side.
#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Library {
    /// OpenSSL through the `openssl` crate (the system's libssl 3).
    Openssl,
    /// rustls with the ring provider.
    Rustls,
}

/// A protocol version bound.
#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq, PartialOrd, Ord)]
pub enum TlsVersion {
    /// TLS 1.0.
    #[serde(rename = "1.0")]
    Tls10,
    /// TLS 1.1.
    #[serde(rename = "1.1")]
    Tls11,
    /// TLS 1.2.
    #[serde(rename = "1.2")]
    Tls12,
    /// TLS 1.3.
    #[serde(rename = "1.3")]
    Tls13,
}

/// How a client offers its handshake.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsClientProfile {
    /// Unique name, written to the labels' `profile` column.
    pub name: String,
    /// Implementation.
    pub library: Library,
    /// Lowest version offered.
    pub min_version: TlsVersion,
    /// Highest version offered.
    pub max_version: TlsVersion,
    /// TLS 1.2-and-older suites: an OpenSSL cipher string, or for rustls a `:`-separated
    /// list of rustls suite names (TLS 1.3 ones included). Default: the library's.
    #[serde(default)]
    pub ciphers: Option<String>,
    /// TLS 1.3 suites (OpenSSL only), e.g. `TLS_CHACHA20_POLY1305_SHA256`.
    #[serde(default)]
    pub tls13_ciphers: Option<String>,
    /// Key-exchange groups in order, `:`-separated (`X25519`, `P-256`, `P-384`, `ffdhe2048`, ...).
    #[serde(default)]
    pub groups: Option<String>,
    /// Signature algorithms (OpenSSL only), e.g. `ECDSA+SHA256:RSA+SHA256`.
    #[serde(default)]
    pub sigalgs: Option<String>,
    /// Send server_name.
    #[serde(default = "yes")]
    pub sni: bool,
    /// ALPN protocols offered, empty for no ALPN extension.
    #[serde(default)]
    pub alpn: Vec<String>,
    /// Send status_request (OCSP stapling; OpenSSL only).
    #[serde(default)]
    pub status_request: bool,
    /// Offer session tickets (session_ticket extension / TLS 1.3 tickets).
    #[serde(default = "yes")]
    pub session_ticket: bool,
}

/// Which certificate chain a server presents.
#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq, Hash)]
#[serde(rename_all = "snake_case")]
pub enum CertKind {
    /// Local CA -> EC P-256 leaf.
    CaEc256,
    /// Local CA -> RSA-2048 leaf.
    CaRsa2048,
    /// Local CA -> RSA-4096 leaf.
    CaRsa4096,
    /// Local CA -> intermediate -> RSA-2048 leaf (chain of three sent).
    CaChainRsa2048,
    /// Self-signed RSA-2048.
    SelfSignedRsa2048,
    /// Self-signed EC P-256.
    SelfSignedEc256,
    /// Local CA -> EC P-256 leaf that expired a year ago.
    ExpiredEc256,
    /// Local CA -> RSA-2048 leaf for another host name.
    WrongHostRsa2048,
}

/// How a server answers.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsServerProfile {
    /// Unique name, written to the labels' `server_profile` column.
    pub name: String,
    /// Implementation.
    pub library: Library,
    /// Certificate chain.
    pub cert: CertKind,
    /// Lowest version accepted.
    pub min_version: TlsVersion,
    /// Highest version accepted.
    pub max_version: TlsVersion,
    /// As for clients.
    #[serde(default)]
    pub ciphers: Option<String>,
    /// As for clients.
    #[serde(default)]
    pub tls13_ciphers: Option<String>,
    /// As for clients.
    #[serde(default)]
    pub groups: Option<String>,
    /// ALPN protocols the server selects from.
    #[serde(default)]
    pub alpn: Vec<String>,
    /// Issue session tickets.
    #[serde(default = "yes")]
    pub session_ticket: bool,
    /// Prefer the server's cipher order.
    #[serde(default)]
    pub server_preference: bool,
}

/// What the flow carries.
#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Transport {
    /// A TLS handshake, then application data.
    Tls,
    /// Plaintext HTTP/1.1 requests.
    Http,
}

/// The application behaviour of a flow: sizes and timing of what follows the handshake.
#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Behaviour {
    /// Page loads: a document, then bursts of asset requests with think times.
    Browsing,
    /// Small JSON requests and responses at irregular intervals.
    Api,
    /// A request, then a long chunked download at a steady pace.
    Streaming,
    /// A small request and one large download (software updates; droppers too).
    Download,
    /// Periodic small uploads with little back (benign telemetry; C2 beacons too).
    Beacon,
    /// One small check-in: a few hundred bytes each way.
    Checkin,
    /// Large uploads with small answers.
    Exfil,
    /// Handshake only, then close: TLS scanners, probes.
    Probe,
    /// Many small failed-login exchanges in a row.
    Bruteforce,
    /// The family's HTTP requests, each answered by the server.
    Requests,
}

/// Where plaintext requests come from.
#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "snake_case", tag = "source", deny_unknown_fields)]
pub enum HttpSource {
    /// CSIC 2010 normal requests (`csic2010_train`).
    Csic,
    /// Legitimate query strings of real sites (`modsec_learn_queries`), on ordinary paths.
    Queries,
    /// Ordinary site paths and static assets.
    Assets,
    /// Attack strings from payload files (globs relative to the data directory),
    /// injected at the given places.
    Payloads {
        /// Glob patterns of payload files (one payload per line).
        files: Vec<String>,
        /// Where to put a payload: `query`, `path`, `header`, `body`, `cookie`.
        inject: Vec<Injection>,
        /// Rows of `http_params_dataset/payload_full.csv` with this `attack_type` are added.
        #[serde(default)]
        params_attack_type: Option<String>,
    },
    /// Scanners' probe paths (files listing paths, one per line).
    Probes {
        /// Glob patterns of path lists.
        files: Vec<String>,
    },
    /// Requests of a real web server's access log (Apache combined format, relative to the
    /// data directory): method, target, Referer and User-Agent as logged; only requests
    /// the server answered with 2xx or 3xx (the log's probes met 4xx).
    AccessLog {
        /// The log file.
        file: String,
    },
    /// An anomalous request of the CSIC 2010 shop that carries no payload list: a
    /// parameter value outside its domain (`tamper`) or a hidden resource next to a shop
    /// page (`hidden`), as CSIC 2010's anomalous requests are made.
    ShopAnomaly {
        /// Which kind.
        kind: ShopAnomaly,
    },
    /// A built-in exploit or malware request template.
    Template {
        /// Template name (see `http.rs`).
        name: String,
    },
}

/// Where an attack payload is injected.
#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Injection {
    /// A query-string parameter value.
    Query,
    /// A path segment.
    Path,
    /// A request header value (User-Agent, Referer, X-Forwarded-For, ...).
    Header,
    /// A form field in a POST body.
    Body,
    /// A cookie value.
    Cookie,
    /// A parameter value of a CSIC 2010 shop request (its form body's when it has one,
    /// else its query's), the rest of the request as the shop's clients send it: how
    /// CSIC 2010's anomalous requests were made, so a model cannot tell them from the
    /// shop's normal requests by path, parameter names or headers.
    Shop,
}

/// Anomalous shop requests without a payload list.
#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum ShopAnomaly {
    /// One parameter value replaced by an overflow string, salted with symbols, or of
    /// the wrong type (letters in a number, digits and symbols in a name).
    Tamper,
    /// A resource the shop does not link: backup and editor copies of its pages, its
    /// configuration files, a session id rewritten into the path.
    Hidden,
}

/// Which share of the request corpora a scenario draws from (CSIC requests, payload,
/// probe and query lines, access-log lines), split by a hash of each line: `train`
/// about 70 %, `holdout` the rest, `all` everything. A benchmark scenario on `holdout`
/// never sends a request or payload string an augmentation scenario on `train` sent.
#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Part {
    /// Every line.
    #[default]
    All,
    /// Lines whose hash falls in the training share.
    Train,
    /// The other lines.
    Holdout,
}

/// A family: a labelled kind of flow.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Family {
    /// Unique name, written to the labels' `family` column.
    pub name: String,
    /// The label.
    pub class: Class,
    /// TLS or plaintext.
    pub transport: Transport,
    /// What follows the handshake.
    pub behaviour: Behaviour,
    /// TLS client profiles to draw from (TLS families).
    #[serde(default)]
    pub clients: Vec<String>,
    /// TLS server profiles to draw from (TLS families).
    #[serde(default)]
    pub servers: Vec<String>,
    /// Server ports to draw from.
    pub ports: Vec<u16>,
    /// Plaintext request source (HTTP families; optional for TLS families, whose
    /// encrypted requests are padded to behaviour sizes).
    #[serde(default)]
    pub http: Option<HttpSource>,
    /// Share of flows that use no SNI / a random-looking host name (0..1).
    #[serde(default)]
    pub odd_host_share: f64,
}

/// The profile catalogue.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Catalogue {
    /// TLS client profiles.
    pub tls_client: Vec<TlsClientProfile>,
    /// TLS server profiles.
    pub tls_server: Vec<TlsServerProfile>,
    /// Families.
    pub family: Vec<Family>,
}

/// One entry of a scenario's mix.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MixEntry {
    /// Family name from the catalogue.
    pub family: String,
    /// Relative weight.
    pub weight: f64,
    /// Restrict the family's client profiles to these (held-out test profiles).
    #[serde(default)]
    pub clients: Option<Vec<String>>,
    /// Restrict the family's server profiles to these.
    #[serde(default)]
    pub servers: Option<Vec<String>>,
}

/// A scenario.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scenario {
    /// Name, written to the summary.
    pub name: String,
    /// Random seed: the same seed gives the same flows (profiles, addresses, ports,
    /// requests, sizes and planned timing).
    pub seed: u64,
    /// Number of flows.
    pub flows: u64,
    /// Mean new flows per second (Poisson arrivals).
    pub rate: f64,
    /// Upper bound of flows in progress at once.
    #[serde(default = "default_concurrency")]
    pub max_concurrent: usize,
    /// Multiplies every think time and beacon period (1.0 = as planned).
    #[serde(default = "one")]
    pub time_scale: f64,
    /// Client addresses (198.18.0.0/16).
    #[serde(default = "default_clients")]
    pub client_hosts: u32,
    /// Server addresses (198.19.0.0/16).
    #[serde(default = "default_servers")]
    pub server_hosts: u32,
    /// Give every mix entry its own disjoint slice of client and server addresses, so that
    /// a split by family is also a split by host (leakage-safe cross-validation).
    #[serde(default)]
    pub partition_hosts: bool,
    /// Which share of the request corpora to draw from (`all`, `train`, `holdout`).
    #[serde(default)]
    pub http_part: Part,
    /// The families and their weights.
    pub mix: Vec<MixEntry>,
}

fn yes() -> bool {
    true
}
fn one() -> f64 {
    1.0
}
fn default_concurrency() -> usize {
    512
}
fn default_clients() -> u32 {
    200
}
fn default_servers() -> u32 {
    60
}

impl Catalogue {
    /// Reads and checks a catalogue.
    pub fn load(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        Self::from_toml(&text).with_context(|| format!("catalogue {}", path.display()))
    }

    /// Parses and checks a catalogue.
    pub fn from_toml(text: &str) -> Result<Self> {
        let cat: Catalogue = toml::from_str(text)?;
        cat.check()?;
        Ok(cat)
    }

    fn check(&self) -> Result<()> {
        let clients: BTreeSet<&str> = self.tls_client.iter().map(|p| p.name.as_str()).collect();
        let servers: BTreeSet<&str> = self.tls_server.iter().map(|p| p.name.as_str()).collect();
        let families: BTreeSet<&str> = self.family.iter().map(|f| f.name.as_str()).collect();
        ensure!(clients.len() == self.tls_client.len(), "duplicate TLS client profile name");
        ensure!(servers.len() == self.tls_server.len(), "duplicate TLS server profile name");
        ensure!(families.len() == self.family.len(), "duplicate family name");
        for p in &self.tls_client {
            ensure!(p.min_version <= p.max_version, "client profile {}: min_version above max_version", p.name);
        }
        for p in &self.tls_server {
            ensure!(p.min_version <= p.max_version, "server profile {}: min_version above max_version", p.name);
        }
        for f in &self.family {
            ensure!(!f.ports.is_empty(), "family {}: no ports", f.name);
            ensure!((0.0..=1.0).contains(&f.odd_host_share), "family {}: odd_host_share outside 0..1", f.name);
            match f.transport {
                Transport::Tls => {
                    ensure!(
                        !f.clients.is_empty() && !f.servers.is_empty(),
                        "family {}: TLS needs clients and servers",
                        f.name
                    );
                }
                Transport::Http => {
                    ensure!(f.http.is_some(), "family {}: plaintext HTTP needs an `http` source", f.name);
                    ensure!(
                        f.clients.is_empty() && f.servers.is_empty(),
                        "family {}: plaintext takes no TLS profiles",
                        f.name
                    );
                }
            }
            for c in &f.clients {
                ensure!(clients.contains(c.as_str()), "family {}: unknown client profile {c}", f.name);
            }
            for s in &f.servers {
                ensure!(servers.contains(s.as_str()), "family {}: unknown server profile {s}", f.name);
            }
        }
        Ok(())
    }

    /// The family called `name`.
    pub fn family(&self, name: &str) -> Option<&Family> {
        self.family.iter().find(|f| f.name == name)
    }
}

impl Scenario {
    /// Reads a scenario and checks it against the catalogue.
    pub fn load(path: &Path, cat: &Catalogue) -> Result<Self> {
        let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        let sc: Scenario = toml::from_str(&text).with_context(|| format!("parsing {}", path.display()))?;
        sc.check(cat).with_context(|| format!("scenario {}", path.display()))?;
        Ok(sc)
    }

    /// Checks the values and that every name exists in `cat`.
    pub fn check(&self, cat: &Catalogue) -> Result<()> {
        ensure!(self.flows > 0, "flows must be positive");
        ensure!(self.rate > 0.0 && self.rate.is_finite(), "rate must be positive");
        ensure!(self.max_concurrent > 0, "max_concurrent must be positive");
        ensure!(self.time_scale >= 0.0 && self.time_scale.is_finite(), "time_scale must be >= 0");
        ensure!((1..=60_000).contains(&self.client_hosts), "client_hosts must be 1..=60000");
        ensure!((1..=60_000).contains(&self.server_hosts), "server_hosts must be 1..=60000");
        ensure!(!self.mix.is_empty(), "empty mix");
        if self.partition_hosts {
            let n = self.mix.len() as u32;
            ensure!(
                self.client_hosts >= n && self.server_hosts >= n,
                "partition_hosts needs at least one client and server host per mix entry"
            );
        }
        for m in &self.mix {
            let Some(f) = cat.family(&m.family) else { bail!("unknown family {}", m.family) };
            ensure!(m.weight > 0.0 && m.weight.is_finite(), "family {}: weight must be positive", m.family);
            for c in m.clients.iter().flatten() {
                ensure!(cat.tls_client.iter().any(|p| &p.name == c), "family {}: unknown client profile {c}", f.name);
            }
            for s in m.servers.iter().flatten() {
                ensure!(cat.tls_server.iter().any(|p| &p.name == s), "family {}: unknown server profile {s}", f.name);
            }
            if f.transport == Transport::Http {
                ensure!(
                    m.clients.is_none() && m.servers.is_none(),
                    "family {}: plaintext takes no TLS profiles",
                    f.name
                );
            }
        }
        Ok(())
    }
}
