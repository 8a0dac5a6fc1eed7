"""Labelled real corpus (`python -m nightjar_model corpus`). Every capture under
`../../shared/data/real_traffic` is replayed once through `nightjar --model none replay
--features` (cached per capture and sensor binary), each flow's event and feature line are
joined by `flow_id`, and the TLS/HTTP flows are labelled by the rules below, in the order
`RULES` gives per source; the first rule that decides wins. A rule either labels a flow,
vetoes it (it stays unlabelled, with the reason) or passes. Unlabelled flows are not
training data. model/README.md ("Real corpus") documents the rules and their counts."""

import csv
import gzip
import hashlib
import ipaddress
import json
import re
import shutil
import subprocess
from collections import Counter, defaultdict, namedtuple
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path

from tqdm import tqdm

# Where each source keeps its captures, relative to the data directory.
CAPTURE_DIRS = {"anyrun_malshare_2019": "anyrun_malshare_2019/pcaps", "spiderlabs_iocs": "spiderlabs_iocs",
                "ndpi_tests": "ndpi_tests/pcap", "fingerprint_dbs": "fingerprint_dbs/mercury_pcaps"}
CANDIDATE_APPS = ("tls", "http")
CSV_COLUMNS = ["client_ip", "client_port", "server_ip", "server_port", "start", "class", "family", "source", "run",
               "why", "capture", "flow_id"]

Label = namedtuple("Label", "cls family why")
Label.__doc__ = "A rule's decision: `cls` benign/attack/malware, or None for a veto (stays unlabelled, `why` says why)."


@dataclass
class Capture:
    """One capture file: `rel` is its path under the data directory, `run` what identifies the
    run (sample MD5, path inside spiderlabs_iocs, or file name), `folder` the spiderlabs folder."""
    path: Path
    rel: str
    source: str
    run: str
    folder: str = ""


@dataclass
class Flow:
    """A flow as the labelling rules see it: the 5-tuple and what the sensor's event says."""
    source: str
    run: str
    capture: str = ""
    folder: str = ""
    flow_id: int = 0
    client_ip: str = ""
    client_port: int = 0
    server_ip: str = ""
    server_port: int = 0
    start: str = ""
    app: str = ""
    sni: str = ""
    host: str = ""
    uri: str = ""
    ja3: str = ""
    ja3_string: str = ""

    def names(self):
        """The server names the client used (SNI, HTTP Host), lower case, without port."""
        return [n for n in dict.fromkeys((self.sni, self.host)) if n]

    def destinations(self):
        """Names and the server IP: what "the same destination" means across runs."""
        return self.names() + [self.server_ip]


# ---------------------------------------------------------------------------------------
# Captures and the sensor


def find_captures(data: Path) -> list:
    """Every capture of the four sources, in a stable order."""
    out = []
    for source, sub in CAPTURE_DIRS.items():
        base = data / sub
        for p in sorted(base.rglob("*")):
            if not p.is_file() or p.suffix not in (".pcap", ".pcapng"):
                continue
            inner = p.relative_to(base).as_posix()
            run = p.stem if source == "anyrun_malshare_2019" else inner
            folder = inner.split("/")[0] if source == "spiderlabs_iocs" else ""
            out.append(Capture(p, p.relative_to(data).as_posix(), source, run, folder))
    return out


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def cache_key(cap: Capture, sensor_digest: str) -> str:
    """Changes when the capture (path, size, mtime) or the sensor binary changes."""
    st = cap.path.stat()
    return hashlib.sha256(f"{cap.rel}\0{st.st_size}\0{st.st_mtime_ns}\0{sensor_digest}".encode()).hexdigest()[:24]


def replay(sensor: Path, cap: Capture, out: Path) -> Path:
    """One `nightjar replay` of one capture into `out` (events, features, exit status). Exit
    code 2 (a corrupt or truncated capture) keeps the flows read up to the error."""
    tmp = out.with_name(out.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    cmd = [str(sensor), "--model", "none", "replay", "--quiet", "--workers", "1", "--events", str(tmp / "events.jsonl"),
           "--features", str(tmp / "features.jsonl"), str(cap.path)]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    (tmp / "replay.json").write_text(json.dumps({"capture": cap.rel, "returncode": proc.returncode,
                                                 "stderr": proc.stderr[-2000:]}) + "\n")
    if proc.returncode not in (0, 2):
        raise RuntimeError(f"{cap.rel}: nightjar replay exited {proc.returncode}: {proc.stderr[-500:]}")
    tmp.rename(out)
    return out


def replay_all(sensor: Path, caps: list, cache: Path, jobs: int = 2) -> dict:
    """Replays the captures whose cache entry is missing (at most `jobs` sensors at once) and
    drops entries no current capture uses. Returns capture rel path -> cache directory."""
    digest = file_sha256(sensor)
    cache.mkdir(parents=True, exist_ok=True)
    dirs = {c.rel: cache / cache_key(c, digest) for c in caps}
    todo = [c for c in caps if not (dirs[c.rel] / "replay.json").exists()]
    with ThreadPoolExecutor(max_workers=max(1, min(jobs, 2))) as pool:
        futures = [pool.submit(replay, sensor, c, dirs[c.rel]) for c in todo]
        for f in tqdm(as_completed(futures), total=len(futures), desc="replaying captures", unit=" captures"):
            f.result()
    keep = {d.name for d in dirs.values()}
    for d in cache.iterdir():
        if d.name not in keep:
            shutil.rmtree(d, ignore_errors=True)
    return dirs


def normalise_ip(ip: str) -> str:
    try:
        return ipaddress.ip_address(ip).compressed
    except ValueError:
        return ip


def strip_port(host: str) -> str:
    """`Host` header or URL authority -> lower-case host name, without port or brackets."""
    host = host.strip().lower().rstrip(".")
    if host.startswith("["):
        return host[1:].split("]")[0]
    if host.count(":") == 1:
        host = host.split(":")[0]
    return host.rstrip(".")


def flow_from_event(cap: Capture, ev: dict) -> Flow:
    tls, http = ev.get("tls") or {}, ev.get("http") or {}
    return Flow(source=cap.source, run=cap.run, capture=cap.rel, folder=cap.folder, flow_id=ev["flow_id"],
                client_ip=normalise_ip(ev["src_ip"]), client_port=ev["src_port"], server_ip=normalise_ip(ev["dest_ip"]),
                server_port=ev["dest_port"], start=ev.get("start", ""), app=ev.get("app", ""),
                sni=strip_port(tls.get("sni") or ""), host=strip_port(http.get("host") or ""),
                uri=http.get("uri") or "",
                ja3=tls.get("ja3") or "", ja3_string=tls.get("ja3_string") or "")


def read_flows(cap: Capture, d: Path, counts: Counter) -> list:
    """The capture's TLS/HTTP flows that have both an event and a feature line; `counts`
    gets the flows that are not candidates, by reason."""
    with open(d / "features.jsonl") as f:
        featured = {json.loads(line)["flow_id"] for line in f}
    flows = []
    with open(d / "events.jsonl") as f:
        for line in f:
            ev = json.loads(line)
            if ev.get("app") not in CANDIDATE_APPS:
                counts["not_tls_http"] += 1
            elif ev["flow_id"] not in featured:
                counts["no_feature_line"] += 1
            else:
                flows.append(flow_from_event(cap, ev))
    return flows


# ---------------------------------------------------------------------------------------
# Knowledge: nDPI result files, spiderlabs READMEs, maltrail, fingerprint knowledge bases

NdpiFlow = namedtuple("NdpiFlow", "app category risks")
NDPI_LINE = re.compile(r"^\s+\d+\s+TCP\s+(\S+)\s+<?->\s+(\S+)\s+(.*)$")
NDPI_FIELD = re.compile(r"\[(proto|cat|Risk): ([^\]]*)\]")


def parse_endpoint(s: str):
    host, _, port = s.rpartition(":")
    return normalise_ip(host.strip("[]")), int(port)


def endpoint_pair(a, b):
    """Order-free key of a TCP connection: nDPI prints the side it saw first."""
    return tuple(sorted((a, b)))


def parse_ndpi_result(text: str) -> dict:
    """nDPI's `result/<pcap>.out` -> {endpoint pair: [NdpiFlow]} for its TCP flow lines.
    The application is the name after the last `/` of `proto` (`TLS.Teams`), risks are the
    `** ... **` items of `Risk`."""
    out = defaultdict(list)
    for line in text.splitlines():
        m = NDPI_LINE.match(line)
        if not m:
            continue
        fields = dict(NDPI_FIELD.findall(m.group(3)))
        app = fields.get("proto", "Unknown").rsplit("/", 1)[-1]
        risks = frozenset(r.strip() for r in fields.get("Risk", "").split("**") if r.strip())
        key = endpoint_pair(parse_endpoint(m.group(1)), parse_endpoint(m.group(2)))
        out[key].append(NdpiFlow(app, fields.get("cat", "").split("/")[0], risks))
    return dict(out)


HOST_HEADER = re.compile(r"^\s*host:\s*(\S+)", re.I)
URL_HOST = re.compile(r"\b[a-z][a-z0-9+.-]*://([^/\s'\"<>()\\]+)", re.I)
IPV4 = re.compile(r"(?<![\d.])(\d{1,3}(?:\.\d{1,3}){3})(?![\d.])")


def is_ipv4(s: str) -> bool:
    try:
        return isinstance(ipaddress.ip_address(s), ipaddress.IPv4Address)
    except ValueError:
        return False


def is_ip(s: str) -> bool:
    try:
        ipaddress.ip_address(s)
        return True
    except ValueError:
        return False


def readme_iocs(text: str) -> set:
    """The hosts and IPv4 addresses a spiderlabs README names in its samples: `Host:` header
    values, URL hosts and public IPv4 literals (private ones are the victims: an Adwind
    beacon names its host's 192.168.56.12). Headings inside code blocks (`#!/bin/sh`) are
    sample text; the `Links` section (any.run tasks, blogs, exploit-db) is references, not
    indicators, and is skipped."""
    iocs, in_code, in_links = set(), False, False
    for line in text.splitlines():
        if line.lstrip().startswith("```"):
            in_code = not in_code
            continue
        if not in_code and line.startswith("#"):
            in_links = "link" in line.lower()
            continue
        if in_links:
            continue
        m = HOST_HEADER.match(line)
        if m:
            iocs.add(strip_port(m.group(1)))
        iocs.update(strip_port(h.split("@")[-1]) for h in URL_HOST.findall(line))
        iocs.update(ip for ip in IPV4.findall(line) if is_ipv4(ip))
    return {i for i in iocs if i and (not is_ipv4(i) or ipaddress.ip_address(i).is_global)}


def load_readme_iocs(spider: Path) -> dict:
    """Folder -> indicators, from every README of the folder (some are spelt `REAME.md`)."""
    out = defaultdict(set)
    for p in spider.rglob("*"):
        if p.is_file() and p.suffix.lower() == ".md" and p.parent != spider:
            out[p.relative_to(spider).parts[0]] |= readme_iocs(p.read_text(errors="replace"))
    return dict(out)


def generic_trail(family: str) -> bool:
    """Trail files that name no family (sinkholes, generic lists, hacked sites)."""
    return family.startswith(("generic", "sinkhole", "hacked", "mass_")) or family.endswith("_generic")


def parent_names(name: str):
    """`a.b.example.com` -> itself, `b.example.com`, `example.com` (maltrail's domain trails
    cover subdomains); nothing for an IP address."""
    if not name or is_ip(name):
        return []
    labels = name.split(".")
    return [".".join(labels[i:]) for i in range(len(labels) - 1)]


class Trails:
    """maltrail's static malware trails: domains (and their subdomains), IPs, IP:port pairs and
    URLs (host + path prefix). Path-only trails (`/gate.php`) are not used: alone they name
    no server. A trail listed by several files keeps the first specific family."""

    def __init__(self):
        self.names, self.ips, self.ip_ports, self.urls = {}, {}, {}, defaultdict(list)

    @classmethod
    def load(cls, folder: Path) -> "Trails":
        t = cls()
        for p in sorted(folder.glob("*.txt")):
            family = p.stem
            for line in p.read_text(errors="replace").splitlines():
                t.add(line, family)
        return t

    @staticmethod
    def _put(table, key, family):
        old = table.get(key)
        if old is None or (generic_trail(old) and not generic_trail(family)):
            table[key] = family

    def add(self, line: str, family: str):
        trail = line.split("#", 1)[0].strip().lower()
        trail = re.sub(r"^[a-z][a-z0-9+.-]*://", "", trail)
        if not trail or trail.startswith("/"):
            return
        authority, _, path = trail.partition("/")
        if path:
            self.urls[strip_port(authority)].append(("/" + path, family))
            return
        host, _, port = authority.partition(":")
        if is_ipv4(host):
            if port.isdigit():
                self._put(self.ip_ports, (host, int(port)), family)
            else:
                self._put(self.ips, host, family)
        elif "." in host:
            self._put(self.names, host.rstrip("."), family)

    def name_family(self, flow: Flow):
        """Family of a domain or URL trail that the flow's SNI / Host (or IP Host) matches."""
        for name in flow.names():
            for n in parent_names(name):
                if n in self.names:
                    return self.names[n]
        for host in dict.fromkeys(flow.names() + [flow.server_ip]):
            for path, family in self.urls.get(host, ()):
                if flow.uri.lower().startswith(path):
                    return family
        return None

    def ip_family(self, flow: Flow, with_port_only: bool = False):
        """Family of an IP:port (or, unless `with_port_only`, IP) trail that the flow's server
        matches, for IP-direct flows only: a flow that names its server (and the name is no
        trail) reached a shared address (ipecho.net and myexternalip.com sit on trailed IPs)."""
        if any(not is_ip(n) for n in flow.names()):
            return None
        fam = self.ip_ports.get((flow.server_ip, flow.server_port))
        return fam if fam or with_port_only else self.ips.get(flow.server_ip)


GREASE = re.compile(r"^[0-9a-f]a[0-9a-f]a$")


def fingerprint_key(version: int, ciphers, extensions) -> tuple:
    """The part of a ClientHello that JA3 and the mercury/joy fingerprint strings share:
    version, cipher suites in order and the set of extension types, GREASE removed."""
    keep = [c for c in ciphers if not GREASE.match(f"{c:04x}")]
    exts = sorted({e for e in extensions if not GREASE.match(f"{e:04x}")})
    return version, tuple(keep), tuple(exts)


def key_from_ja3(ja3_string: str):
    parts = ja3_string.split(",")
    if len(parts) < 3 or not parts[0].isdigit():
        return None
    ints = [[int(x) for x in p.split("-") if x.isdigit()] for p in parts[1:3]]
    return fingerprint_key(int(parts[0]), ints[0], ints[1])


def key_from_str_repr(s: str):
    """mercury/joy `tls/(0303)(c02b...)((0000)(0017)...)` (the `tls/` prefix is the 2022 form)."""
    m = re.match(r"^(?:tls/)?\(([0-9a-f]{4})\)\(([0-9a-f]*)\)\((.*)\)$", s)
    if not m:
        return None
    ciphers = [int(m.group(2)[i:i + 4], 16) for i in range(0, len(m.group(2)), 4)]
    exts = [int(e[:4], 16) for e in re.findall(r"\(([0-9a-f]+)\)", m.group(3)) if len(e) >= 4]
    return fingerprint_key(int(m.group(1), 16), ciphers, exts)


KbEntry = namedtuple("KbEntry", "process processes")
KbEntry.__doc__ = "The process seen most with a fingerprint, and how many distinct processes share it."


def load_fingerprint_kb(folder: Path) -> dict:
    """Fingerprint key -> KbEntry, from the mercury (2020-09, 2022) and joy knowledge bases.
    A prior for "common real client", never a malware label: every entry of the public
    releases says `"malware": false`, and an OS TLS stack (SChannel) is one fingerprint for
    every process that uses it."""
    weight = defaultdict(Counter)
    for p in sorted(folder.glob("*.json.gz")):
        with gzip.open(p, "rt") as f:
            for line in f:
                j = json.loads(line)
                key = key_from_str_repr(j["str_repr"])
                for proc in j.get("process_info", []) if key else []:
                    weight[key][proc["process"].lower()] += proc.get("count", proc.get("prevalence", 1))
    return {k: KbEntry(c.most_common(1)[0][0], len(c)) for k, c in weight.items()}



# ---------------------------------------------------------------------------------------
# Benign infrastructure and recurrence

# Hosts an operating system, browser or lab machine contacts by itself: updates, telemetry,
# SmartScreen/Defender, certificate revocation, connectivity checks, start pages, CDNs.
# Deliberately not: IP-lookup services (checkip.amazonaws.com, ipify), paste sites, ngrok,
# dynamic DNS, Microsoft/Adobe web pages (Smoke Loader fetches those as decoys).
INFRASTRUCTURE = frozenset((
    "windowsupdate.com", "update.microsoft.com", "data.microsoft.com", "telemetry.microsoft.com",
    "checkappexec.microsoft.com", "urs.microsoft.com", "smartscreen.microsoft.com", "spynet2.microsoft.com",
    "wdcp.microsoft.com", "watson.microsoft.com", "sfdataservice.microsoft.com", "iecvlist.microsoft.com",
    "ieonline.microsoft.com", "r20swj13mr.microsoft.com", "dsp.mp.microsoft.com", "wns.windows.com",
    "login.live.com", "officeapps.live.com", "footprintdns.com", "msedge.net", "msn.com", "s-msn.com", "bing.com",
    "bing.net", "onenote.net", "msftncsi.com", "msftconnecttest.com",
    "digicert.com", "symcd.com", "symcb.com", "sectigo.com", "usertrust.com", "comodoca.com", "identrust.com",
    "globalsign.com", "globalsign.net", "lencr.org", "pki.goog", "entrust.net", "godaddy.com", "amazontrust.com",
    "gstatic.com", "googleapis.com", "google-analytics.com", "googleusercontent.com", "gvt1.com", "gvt2.com",
    "youtube.com", "ytimg.com", "googlevideo.com",
    "akamaized.net", "akamaiedge.net", "akamaihd.net", "akamai.net", "edgekey.net", "edgesuite.net",
    "ubuntu.com", "snapcraft.io", "apple.com", "icloud.com", "mozilla.com", "mozilla.net", "mozilla.org",
    "firefox.com",
))
GOOGLE = re.compile(r"^(?:[a-z0-9-]+\.)*google\.(?:[a-z]{2,3}|co\.[a-z]{2}|com\.[a-z]{2})$")
PKI_HOST = re.compile(r"^(?:ocsp|crl)\d*\.")
LAN_DISCOVERY_PORTS = {2869, 5357}   # Windows UPnP host and WS-Discovery, HTTP on the LAN
SELF_REQUEST_PATHS = ("/wp-cron.php",)  # WordPress calling its own scheduler


def infrastructure_name(flow: Flow):
    """The infrastructure entry a flow's destination matches, or None."""
    for name in flow.names():
        for n in parent_names(name):
            if n in INFRASTRUCTURE:
                return n
        if GOOGLE.match(name):
            return "google"
        if PKI_HOST.match(name):
            return "ocsp/crl"
    if flow.server_port in LAN_DISCOVERY_PORTS and ipaddress.ip_address(flow.server_ip).is_private:
        return "lan-discovery"
    if flow.uri.startswith(SELF_REQUEST_PATHS):
        return "wp-cron"
    return None


def recurring_destinations(flows, run_group: dict, min_groups: int) -> dict:
    """Destination (name or server IP) -> number of unrelated run groups whose flows reach it,
    for those reached by at least `min_groups`. Runs of one maltrail family are one group (a
    family's C2 and its habits recur in every run of it); a run with no family is its own."""
    groups = defaultdict(set)
    for f in flows:
        for d in f.destinations():
            groups[d].add(run_group.get(f.run, f.run))
    return {d: len(g) for d, g in sorted(groups.items(), key=lambda kv: -len(kv[1])) if len(g) >= min_groups}


# ---------------------------------------------------------------------------------------
# Labelling rules: rule(flow, kb) -> Label (a label or a veto) or None (no decision)


@dataclass
class Knowledge:
    """What the rules consult. `run_family` and `recurring` are derived from the anyrun
    flows themselves (`derive_sandbox_knowledge`)."""
    ndpi: dict = field(default_factory=dict)
    iocs: dict = field(default_factory=dict)
    trails: Trails = field(default_factory=Trails)
    run_family: dict = field(default_factory=dict)
    recurring: dict = field(default_factory=dict)


# nDPI test captures whose traffic is malicious, by the nDPI README and the captures
# themselves (Nikto, sqlmap-style probes, DVWA injections, Log4Shell chain, .env probe).
NDPI_ATTACK = {"WebattackRCE.pcap": "nikto", "WebattackSQLinj.pcap": "sqli_probe", "sql_injection.pcap": "sqli_dvwa",
               "xss.pcap": "xss_dvwa", "log4j-webapp-exploit.pcap": "log4shell", "dotenv.pcap": "dotenv_probe"}
NDPI_MALWARE = {"emotet.pcap": "emotet", "trickbot.pcap": "trickbot"}
# Named as malicious, but the traffic is not: left unlabelled.
NDPI_UNSOUND = {"malware.pcap": "ndpi_test_domains", "tls_malicious_sha1.pcapng": "ndpi_test_certificate",
                "bot.pcap": "ndpi_search_crawler"}
# nDPI risks that say "not a plain benign application"; a flow with one stays unlabelled.
NDPI_SERIOUS_RISKS = {"Binary App Transfer", "Possible Exploit Attempt", "RCE Injection", "SQL Injection", "XSS Attack",
                      "Malicious SSL Cert/SHA1 Fingerp.", "Client Contacted A Malware Host", "Susp DGA Domain name",
                      "HTTP Susp URL", "HTTP Susp Content"}
SPIDER_ATTACK = {"Bots_Scanners", "HoneyPots", "Drupal", "GPON", "Heartbleed", "Microsoft", "Oracle_WebLogic",
                 "WebLogic", "ThinkPHP", "Pivitol_Spring_Framework", "PetitPotem"}


def ndpi_capture(flow, kb):
    """nDPI captures named malicious: attack or malware as a whole; the unsound ones vetoed;
    fuzzed or synthetic captures vetoed."""
    if flow.run in NDPI_ATTACK:
        return Label("attack", NDPI_ATTACK[flow.run], "ndpi_capture")
    if flow.run in NDPI_MALWARE:
        return Label("malware", NDPI_MALWARE[flow.run], "ndpi_capture")
    if flow.run in NDPI_UNSOUND:
        return Label(None, None, NDPI_UNSOUND[flow.run])
    if "fuzz" in flow.run:
        return Label(None, None, "ndpi_fuzzed_capture")
    return None


def ndpi_lines(flow, kb):
    key = endpoint_pair((flow.client_ip, flow.client_port), (flow.server_ip, flow.server_port))
    return kb.ndpi.get(flow.run, {}).get(key, [])


def ndpi_risk(flow, kb):
    """A flow nDPI files under a serious risk or the Malware category is not a benign example.
    (`Malicious Fingerpint`, nDPI's JA3 block list, is ignored: it flags Alexa, WeChat, Webex.)"""
    for n in ndpi_lines(flow, kb):
        if n.risks & NDPI_SERIOUS_RISKS or n.category == "Malware":
            return Label(None, None, "ndpi_serious_risk")
    return None


def ndpi_app(flow, kb):
    """Any other flow of an nDPI capture that nDPI's result file names: benign, family the
    application (`TLS.Teams`). Flows the result file lacks, or names twice differently (port
    reuse), stay unlabelled."""
    apps = {n.app for n in ndpi_lines(flow, kb)}
    if len(apps) == 1:
        return Label("benign", "ndpi:" + apps.pop().lower(), "ndpi_app")
    return Label(None, None, "ndpi_ambiguous" if apps else "ndpi_no_result_line")


def spider_class(folder: str) -> str:
    return "attack" if folder.startswith(("CVE-", "PrintNightmare")) or folder in SPIDER_ATTACK else "malware"


def spider_family(flow: Flow) -> str:
    """The folder, or for `Beacons` (blacknet, dnscat2, ps-empire side by side) the capture."""
    return "beacons/" + Path(flow.run).stem if flow.folder == "Beacons" else flow.folder.lower()


def control_capture(flow, kb):
    """A capture a folder keeps as its benign baseline (`CVE-2019-0708/normal_rdp.pcap`)."""
    stem = Path(flow.run).stem.lower()
    return Label("benign", "spider:" + stem, "control_capture") if stem.startswith("normal") else None


def bare_root_request(flow, kb):
    """A bare `GET /` in an attack folder (a scanner's reachability probe, a request every
    browser sends, no exploit in it) stays unlabelled."""
    if spider_class(flow.folder) == "attack" and flow.app == "http" and flow.uri in ("", "/"):
        return Label(None, None, "bare_root_request")
    return None


def readme_ioc(flow, kb):
    """A destination the folder's README names: the folder's class and family."""
    if set(flow.destinations()) & kb.iocs.get(flow.folder, set()):
        return Label(spider_class(flow.folder), spider_family(flow), "readme_ioc")
    return None


def infrastructure(flow, kb):
    """Well-known benign infrastructure inside an infected or attacked host's capture: benign
    hard negatives from the same environment."""
    name = infrastructure_name(flow)
    return Label("benign", "infra:" + name, "infrastructure") if name else None


def maltrail_name(flow, kb):
    """A maltrail domain or URL trail: malware, family the trail file."""
    family = kb.trails.name_family(flow)
    return Label("malware", family, "maltrail_name") if family else None


def maltrail_ip(flow, kb):
    """A maltrail IP or IP:port trail (after `infrastructure`: IPs move, names stay)."""
    family = kb.trails.ip_family(flow)
    return Label("malware", family, "maltrail_ip") if family else None


def sandbox_run(flow, kb):
    """Any other TLS/HTTP flow of a malware sample's run is the sample's: malware, family the
    run's maltrail family if one of its flows hit a trail, else `anyrun_unknown`."""
    return Label("malware", kb.run_family.get(flow.run, "anyrun_unknown"), "sandbox_run")


def spider_folder(flow, kb):
    """Any other TLS/HTTP flow of a spiderlabs capture: the folder's class and family."""
    return Label(spider_class(flow.folder), spider_family(flow), "folder")


def conformance_test(flow, kb):
    """A URL-resolution test suite's requests (mercury's `capture2.pcap` holds Wireshark's
    RFC 3986 reference tests sent to 127.0.0.1: `/b/c/d;p?q&path=../../g`): built to be
    the shapes a parser gets wrong, which is what traversal looks like. Neither benign
    traffic nor an attack: unlabelled."""
    if flow.app == "http" and flow.server_ip.startswith("127.") and flow.client_ip.startswith("127."):
        return Label(None, None, "conformance_test")
    return None


def mercury_capture(flow, kb):
    """mercury's test captures: common real clients (benign), except `malware_tls.pcap`."""
    if flow.run == "malware_tls.pcap":
        return Label("malware", "mercury_malware_tls", "mercury_capture")
    return Label("benign", "mercury:" + Path(flow.run).stem, "mercury_capture")


RULES = {
    "ndpi_tests": [ndpi_capture, ndpi_risk, ndpi_app],
    "spiderlabs_iocs": [control_capture, bare_root_request, readme_ioc, infrastructure, spider_folder],
    "anyrun_malshare_2019": [maltrail_name, infrastructure, maltrail_ip, sandbox_run],
    "fingerprint_dbs": [conformance_test, mercury_capture],
}


def label(flow: Flow, kb: Knowledge) -> Label:
    """The first decision of the source's rules; `no_rule` if none decides."""
    for rule in RULES[flow.source]:
        got = rule(flow, kb)
        if got is not None:
            return got
    return Label(None, None, "no_rule")


def derive_sandbox_knowledge(flows, kb: Knowledge, min_groups: int):
    """Fills `kb.run_family`, the most frequent family of each anyrun run's maltrail name and
    IP:port hits (a specific family before a generic list; a bare IP, often shared hosting
    years later, names no run), and `kb.recurring`, the destinations outside
    `INFRASTRUCTURE` reached from at least `min_groups` unrelated runs. Recurrence is
    reported, not used as a label: in this corpus every such destination is an IP-lookup
    service or an IP-direct server that the samples themselves call (model/README.md)."""
    sandbox = [f for f in flows if f.source == "anyrun_malshare_2019"]
    hits = defaultdict(Counter)
    for f in sandbox:
        fam = kb.trails.name_family(f) or kb.trails.ip_family(f, with_port_only=True)
        if fam:
            hits[f.run][fam] += 1
    kb.run_family = {run: max(c, key=lambda fam: (not generic_trail(fam), c[fam])) for run, c in hits.items()}
    rest = [f for f in sandbox if infrastructure_name(f) is None]
    kb.recurring = recurring_destinations(rest, kb.run_family, min_groups)


# ---------------------------------------------------------------------------------------
# The command


def build(sensor: Path, data: Path, out: Path, jobs: int = 2, recurrence_runs: int = 5) -> dict:
    """Replays, labels and writes `flows.csv`, `unlabelled.csv`, `features.jsonl` and
    `summary.json` into `out`; prints the summary."""
    caps = find_captures(data)
    dirs = replay_all(sensor, caps, out / "cache", jobs)
    skipped, flows = Counter(), []
    for c in tqdm(caps, desc="joining events and features", unit=" captures"):
        flows += read_flows(c, dirs[c.rel], skipped)
    kb = Knowledge(
        ndpi={p.name[:-len(".out")]: parse_ndpi_result(p.read_text(errors="replace"))
              for p in sorted((data / "ndpi_tests/result").glob("*.out"))},
        iocs=load_readme_iocs(data / "spiderlabs_iocs"),
        trails=Trails.load(data / "maltrail_trails"))
    derive_sandbox_knowledge(flows, kb, recurrence_runs)
    fp_kb = load_fingerprint_kb(data / "fingerprint_dbs")
    labels = {(f.capture, f.flow_id): label(f, kb) for f in tqdm(flows, desc="labelling", unit=" flows")}
    out.mkdir(parents=True, exist_ok=True)
    write_csvs(out, flows, labels)
    n = write_features(out / "features.jsonl", caps, dirs, {(f.capture, f.flow_id): f for f in flows}, labels, fp_kb)
    summary = summarise(flows, labels, skipped, kb, fp_kb)
    summary["sandbox"]["recurrence_min_runs"] = recurrence_runs
    summary["features_lines"] = n
    (out / "summary.json").write_text(json.dumps(summary, indent=1) + "\n")
    print(format_summary(summary))
    return summary


def csv_row(f: Flow, lab: Label) -> list:
    return [f.client_ip, f.client_port, f.server_ip, f.server_port, f.start, lab.cls or "", lab.family or "", f.source,
            f.run, lab.why, f.capture, f.flow_id]


def write_csvs(out: Path, flows, labels):
    """`flows.csv`: the labelled flows; `unlabelled.csv`: the other candidates, `why` the reason."""
    with open(out / "flows.csv", "w", newline="") as a, open(out / "unlabelled.csv", "w", newline="") as b:
        wa, wb = csv.writer(a), csv.writer(b)
        wa.writerow(CSV_COLUMNS)
        wb.writerow(CSV_COLUMNS)
        for f in flows:
            lab = labels[(f.capture, f.flow_id)]
            (wa if lab.cls else wb).writerow(csv_row(f, lab))


def write_features(path: Path, caps, dirs, by_key, labels, fp_kb) -> int:
    """The labelled flows' feature lines, each with the label fields added, so that the
    arrays can be built without a 5-tuple join across captures (where 5-tuples collide).
    `kb_process` / `kb_processes`: the knowledge bases' top process for the ClientHello's
    fingerprint and how many processes share it (0: unknown fingerprint or not TLS)."""
    n = 0
    with open(path, "w") as out:
        for c in tqdm(caps, desc="writing features.jsonl", unit=" captures"):
            with open(dirs[c.rel] / "features.jsonl") as f:
                for line in f:
                    j = json.loads(line)
                    key = (c.rel, j["flow_id"])
                    lab = labels.get(key)
                    if lab is None or lab.cls is None:
                        continue
                    fl = by_key[key]
                    entry = fp_kb.get(key_from_ja3(fl.ja3_string))
                    j.update({"class": lab.cls, "family": lab.family, "source": fl.source, "run": fl.run,
                              "why": lab.why, "capture": fl.capture, "start": fl.start, "ja3": fl.ja3,
                              "kb_process": entry.process if entry else "",
                              "kb_processes": entry.processes if entry else 0})
                    out.write(json.dumps(j) + "\n")
                    n += 1
    return n


def summarise(flows, labels, skipped, kb, fp_kb) -> dict:
    """Counts per rule, source, class and family; unlabelled candidates by reason; how the
    fingerprint knowledge base and the recurring sandbox destinations relate to the labels."""
    per_rule, per_source, per_class, per_family = Counter(), defaultdict(Counter), Counter(), Counter()
    unlabelled, unlabelled_source, family_classes = Counter(), Counter(), defaultdict(set)
    kb_known, recurring = defaultdict(Counter), defaultdict(Counter)
    for f in flows:
        lab = labels[(f.capture, f.flow_id)]
        for d in f.destinations() if f.source == "anyrun_malshare_2019" else ():
            if d in kb.recurring:
                recurring[d][f"{lab.cls}/{lab.why}"] += 1
        if lab.cls is None:
            unlabelled[lab.why] += 1
            unlabelled_source[f.source] += 1
            continue
        per_rule[lab.why] += 1
        per_source[f.source][lab.cls] += 1
        per_class[lab.cls] += 1
        per_family[lab.family] += 1
        family_classes[lab.family].add(lab.cls)
        if f.app == "tls" and f.ja3_string:
            kb_known[f"{f.source}/{lab.cls}"]["known" if key_from_ja3(f.ja3_string) in fp_kb else "unknown"] += 1
    return {
        "candidates": len(flows),
        "labelled": sum(per_class.values()),
        "unlabelled": sum(unlabelled.values()),
        "not_candidates": dict(skipped),
        "per_rule": dict(per_rule.most_common()),
        "per_source": {s: dict(c) for s, c in sorted(per_source.items())},
        "per_class": dict(per_class.most_common()),
        "per_family": dict(per_family.most_common()),
        "families": len(per_family),
        "families_in_several_classes": sorted(f for f, c in family_classes.items() if len(c) > 1),
        "unlabelled_by_reason": dict(unlabelled.most_common()),
        "unlabelled_by_source": dict(unlabelled_source.most_common()),
        "tls_fingerprint_in_knowledge_base": {k: dict(v) for k, v in sorted(kb_known.items())},
        "sandbox": {"runs_with_maltrail_family": len(kb.run_family),
                    "run_families": dict(Counter(kb.run_family.values()).most_common()),
                    "recurring_destinations": {d: {"run_groups": g, "labels": dict(recurring[d])}
                                               for d, g in kb.recurring.items()}},
    }


def table(title, rows, header):
    widths = [max(len(str(x)) for x in col) for col in zip(header, *rows)]
    fmt = "  ".join(f"{{:<{w}}}" if i == 0 else f"{{:>{w}}}" for i, w in enumerate(widths))
    return "\n".join([title, fmt.format(*header)] + [fmt.format(*r) for r in rows])


def format_summary(s: dict) -> str:
    classes = ["benign", "attack", "malware"]
    sources = sorted(set(s["per_source"]) | set(s["unlabelled_by_source"]))
    return "\n\n".join([
        table("labelled flows per rule", list(s["per_rule"].items()), ["rule", "flows"]),
        table("flows per source", [(src, *(s["per_source"].get(src, {}).get(k, 0) for k in classes),
                                    s["unlabelled_by_source"].get(src, 0)) for src in sources],
              ["source", *classes, "unlabelled"]),
        table("top families", list(s["per_family"].items())[:25], ["family", "flows"]),
        table("unlabelled TLS/HTTP flows", list(s["unlabelled_by_reason"].items()), ["reason", "flows"]),
        table("not candidates", list(s["not_candidates"].items()), ["reason", "flows"]),
        f"{s['candidates']} TLS/HTTP flows: labelled {s['labelled']} "
        f"({', '.join(f'{k} {v}' for k, v in s['per_class'].items())}), unlabelled {s['unlabelled']}; "
        f"{s['families']} families",
    ])
