//! Plans: every flow of a scenario drawn up front from the seed (family, profiles,
//! addresses, ports, host name, requests, sizes, think times, start offset), so the same
//! seed gives the same flows. Running them only adds the kernel's timing.

use std::collections::HashSet;
use std::net::{Ipv4Addr, SocketAddrV4};

use anyhow::{Context, Result};
use rand::seq::IndexedRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Exp, LogNormal};

use crate::config::{Behaviour, Catalogue, Class, Family, Scenario, Transport};
use crate::http::{HttpCorpus, padded_request};

/// One request/response exchange.
#[derive(Clone, Debug)]
pub struct Exchange {
    /// Client waits this long before sending (think time, beacon period), ms.
    pub delay_ms: u32,
    /// What the client sends.
    pub request: Vec<u8>,
    /// How many bytes the server answers.
    pub response: u32,
    /// The answer is written in this many chunks...
    pub chunks: u16,
    /// ...this far apart, ms.
    pub chunk_gap_ms: u16,
}

/// One planned flow.
#[derive(Clone, Debug)]
pub struct FlowPlan {
    /// Planned start, ms after the run starts.
    pub start_ms: u64,
    /// Family index in the catalogue.
    pub family: usize,
    /// Label.
    pub class: Class,
    /// TLS client profile (TLS flows).
    pub client_profile: Option<String>,
    /// TLS server profile (TLS flows).
    pub server_profile: Option<String>,
    /// Client address and port.
    pub client: SocketAddrV4,
    /// Server address and port.
    pub server: SocketAddrV4,
    /// Host name for SNI and `Host`.
    pub host: String,
    /// What follows the handshake.
    pub exchanges: Vec<Exchange>,
}

/// Client addresses: 198.18.0.0/16.
pub fn client_addr(i: u32) -> Ipv4Addr {
    Ipv4Addr::new(198, 18, (1 + i / 250) as u8, (1 + i % 250) as u8)
}

/// Server addresses: 198.19.0.0/16.
pub fn server_addr(i: u32) -> Ipv4Addr {
    Ipv4Addr::new(198, 19, (1 + i / 250) as u8, (1 + i % 250) as u8)
}

const DOMAINS: &[&str] = &[
    "www.shop.test",
    "cdn.assets.test",
    "api.weather.test",
    "mail.corp.test",
    "static.news.test",
    "login.bank.test",
    "updates.vendor.test",
    "video.stream.test",
    "www.flood.test",
    "img.social.test",
    "telemetry.os.test",
    "docs.dev.test",
];

fn host_name<R: Rng>(rng: &mut R, odd_share: f64) -> String {
    if rng.random_bool(odd_share) {
        // Algorithmically generated names, as many C2 and scanners use.
        let len = rng.random_range(8..20);
        let label: String = (0..len).map(|_| (b'a' + rng.random_range(0..26)) as char).collect();
        let tld = ["test", "example", "invalid"].choose(rng).copied().unwrap_or("test");
        format!("{label}.{tld}")
    } else {
        DOMAINS.choose(rng).copied().unwrap_or("www.flood.test").to_owned()
    }
}

fn lognormal<R: Rng>(rng: &mut R, median: f64, sigma: f64, max: f64) -> f64 {
    let d = LogNormal::new(median.ln(), sigma).expect("valid log-normal");
    d.sample(rng).min(max)
}

fn ms(x: f64, scale: f64) -> u32 {
    (x * scale).round().clamp(0.0, 600_000.0) as u32
}

#[expect(clippy::too_many_lines, reason = "one arm per behaviour")]
fn tls_exchanges<R: Rng>(rng: &mut R, behaviour: Behaviour, scale: f64) -> Vec<Exchange> {
    let ex = |delay: u32, req: usize, resp: u32, chunks: u16, gap: u16| Exchange {
        delay_ms: delay,
        request: padded_request(req),
        response: resp,
        chunks: chunks.max(1),
        chunk_gap_ms: gap,
    };
    let size = |rng: &mut R, median: f64, sigma: f64, max: f64| lognormal(rng, median, sigma, max) as usize;
    match behaviour {
        Behaviour::Browsing => {
            let mut v = vec![ex(
                ms(lognormal(rng, 5.0, 1.0, 200.0), scale),
                size(rng, 450.0, 0.4, 2000.0),
                size(rng, 30_000.0, 1.0, 400_000.0) as u32,
                1,
                0,
            )];
            for _ in 0..rng.random_range(1..12) {
                let think = if rng.random_bool(0.8) {
                    lognormal(rng, 15.0, 1.0, 300.0)
                } else {
                    lognormal(rng, 800.0, 1.0, 5000.0)
                };
                v.push(ex(
                    ms(think, scale),
                    size(rng, 380.0, 0.4, 2000.0),
                    size(rng, 8000.0, 1.3, 300_000.0) as u32,
                    1,
                    0,
                ));
            }
            v
        }
        Behaviour::Api => (0..rng.random_range(1..8))
            .map(|_| {
                ex(
                    ms(lognormal(rng, 200.0, 1.2, 5000.0), scale),
                    size(rng, 300.0, 0.6, 4000.0),
                    size(rng, 900.0, 1.0, 30_000.0) as u32,
                    1,
                    0,
                )
            })
            .collect(),
        Behaviour::Streaming => {
            let chunks = rng.random_range(8..40);
            vec![ex(
                ms(lognormal(rng, 5.0, 1.0, 100.0), scale),
                size(rng, 500.0, 0.3, 1500.0),
                u32::from(chunks) * size(rng, 16_000.0, 0.5, 64_000.0) as u32,
                chunks,
                ms(lognormal(rng, 40.0, 0.5, 250.0), scale) as u16,
            )]
        }
        Behaviour::Download => {
            vec![ex(
                ms(lognormal(rng, 5.0, 1.0, 100.0), scale),
                size(rng, 350.0, 0.4, 1500.0),
                size(rng, 400_000.0, 1.0, 3_000_000.0) as u32,
                1,
                0,
            )]
        }
        Behaviour::Beacon => {
            let period = lognormal(rng, 600.0, 0.6, 5000.0);
            let jitter = rng.random_range(0.0..0.4);
            (0..rng.random_range(3..10))
                .map(|_| {
                    let d = period * (1.0 + rng.random_range(-jitter..=jitter));
                    ex(ms(d, scale), size(rng, 250.0, 0.5, 2000.0), size(rng, 120.0, 1.2, 20_000.0) as u32, 1, 0)
                })
                .collect()
        }
        Behaviour::Checkin => vec![ex(
            ms(lognormal(rng, 5.0, 1.0, 200.0), scale),
            size(rng, 400.0, 0.6, 3000.0),
            size(rng, 300.0, 0.8, 5000.0) as u32,
            1,
            0,
        )],
        Behaviour::Exfil => (0..rng.random_range(1..5))
            .map(|_| {
                ex(
                    ms(lognormal(rng, 100.0, 1.0, 2000.0), scale),
                    size(rng, 120_000.0, 1.0, 1_500_000.0),
                    size(rng, 80.0, 0.5, 600.0) as u32,
                    1,
                    0,
                )
            })
            .collect(),
        Behaviour::Probe => Vec::new(),
        Behaviour::Bruteforce => (0..rng.random_range(3..20))
            .map(|_| {
                ex(
                    ms(lognormal(rng, 60.0, 0.5, 1000.0), scale),
                    size(rng, 520.0, 0.1, 900.0),
                    size(rng, 420.0, 0.1, 900.0) as u32,
                    1,
                    0,
                )
            })
            .collect(),
        Behaviour::Requests => vec![ex(
            ms(lognormal(rng, 5.0, 1.0, 200.0), scale),
            size(rng, 500.0, 0.5, 3000.0),
            size(rng, 5000.0, 1.2, 200_000.0) as u32,
            1,
            0,
        )],
    }
}

fn http_exchanges<R: Rng>(
    rng: &mut R,
    corpus: &HttpCorpus,
    f: &Family,
    host: &str,
    scale: f64,
) -> Result<Vec<Exchange>> {
    let source = f.http.as_ref().context("HTTP family without source")?;
    let (count, response) = match (f.class, f.behaviour) {
        (_, Behaviour::Download) => (1, lognormal(rng, 300_000.0, 1.0, 3_000_000.0)),
        (_, Behaviour::Beacon) => (rng.random_range(2..6), lognormal(rng, 200.0, 1.0, 5000.0)),
        (Class::Attack, Behaviour::Probe) => (rng.random_range(3..16), lognormal(rng, 400.0, 0.8, 20_000.0)),
        (Class::Attack, _) => (rng.random_range(1..4), lognormal(rng, 1500.0, 1.2, 60_000.0)),
        (Class::Malware, _) => (1, lognormal(rng, 400.0, 1.0, 20_000.0)),
        (Class::Benign, _) => (rng.random_range(1..7), lognormal(rng, 9000.0, 1.3, 400_000.0)),
    };
    let mut v = Vec::with_capacity(count);
    for i in 0..count {
        let delay = match (f.behaviour, i) {
            (Behaviour::Beacon, _) => lognormal(rng, 700.0, 0.3, 4000.0),
            (_, 0) => lognormal(rng, 3.0, 1.0, 100.0),
            (Behaviour::Probe, _) => lognormal(rng, 20.0, 0.6, 500.0),
            _ => lognormal(rng, 300.0, 1.2, 5000.0),
        };
        let req = corpus.request(rng, &f.name, source, host)?;
        let resp = if i == 0 { response } else { lognormal(rng, response.max(200.0), 0.8, 400_000.0) };
        v.push(Exchange {
            delay_ms: ms(delay, scale),
            request: req,
            response: resp as u32,
            chunks: 1,
            chunk_gap_ms: 0,
        });
    }
    Ok(v)
}

/// Draws every flow of `scenario`. Deterministic in the seed.
#[expect(clippy::many_single_char_names, reason = "t, x, k, c, s read as in the formulas")]
pub fn draw(cat: &Catalogue, scenario: &Scenario, corpus: &HttpCorpus) -> Result<Vec<FlowPlan>> {
    let mut rng = ChaCha8Rng::seed_from_u64(scenario.seed);
    let weights: Vec<f64> = scenario.mix.iter().map(|m| m.weight).collect();
    let total: f64 = weights.iter().sum();
    let arrivals = Exp::new(scenario.rate / 1000.0).context("rate")?;
    let mut used: HashSet<(SocketAddrV4, SocketAddrV4)> = HashSet::new();
    let mut t = 0.0f64;
    let mut plans = Vec::with_capacity(scenario.flows as usize);
    for _ in 0..scenario.flows {
        t += arrivals.sample(&mut rng);
        let mut x = rng.random_range(0.0..total);
        let mut k = 0;
        while k + 1 < weights.len() && x >= weights[k] {
            x -= weights[k];
            k += 1;
        }
        let mix = &scenario.mix[k];
        let fi = cat.family.iter().position(|f| f.name == mix.family).context("family vanished")?;
        let f = &cat.family[fi];
        let (client_profile, server_profile) = match f.transport {
            Transport::Tls => {
                let clients = mix.clients.as_ref().unwrap_or(&f.clients);
                let servers = mix.servers.as_ref().unwrap_or(&f.servers);
                (clients.choose(&mut rng).cloned(), servers.choose(&mut rng).cloned())
            }
            Transport::Http => (None, None),
        };
        let (clients, servers) = if scenario.partition_hosts {
            let n = scenario.mix.len() as u32;
            let (c, s) = (scenario.client_hosts / n, scenario.server_hosts / n);
            (k as u32 * c..(k as u32 + 1) * c, k as u32 * s..(k as u32 + 1) * s)
        } else {
            (0..scenario.client_hosts, 0..scenario.server_hosts)
        };
        let (client, server) = loop {
            let c = SocketAddrV4::new(client_addr(rng.random_range(clients.clone())), rng.random_range(10_000..61_000));
            let s = SocketAddrV4::new(
                server_addr(rng.random_range(servers.clone())),
                *f.ports.choose(&mut rng).context("ports")?,
            );
            if used.insert((c, s)) {
                break (c, s);
            }
        };
        let host = host_name(&mut rng, f.odd_host_share);
        let exchanges = match f.transport {
            Transport::Tls => tls_exchanges(&mut rng, f.behaviour, scenario.time_scale),
            Transport::Http => http_exchanges(&mut rng, corpus, f, &host, scenario.time_scale)?,
        };
        plans.push(FlowPlan {
            start_ms: t as u64,
            family: fi,
            class: f.class,
            client_profile,
            server_profile,
            client,
            server,
            host,
            exchanges,
        });
    }
    Ok(plans)
}
