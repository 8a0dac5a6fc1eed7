"""Labelling rules of the real corpus, on small synthetic inputs (no sensor, no shared data)."""

import json
import os
import stat

import numpy as np
import pytest

from nightjar_model import dataset, realcorpus as rc
from nightjar_model.realcorpus import Flow, Knowledge, Label

NDPI_OUT = """\
JA3 Host Stats:
\t1\t 10.0.0.1 \t 1

\t1\tTCP 10.0.0.1:50000 <-> 93.184.216.34:443 [proto: 91.212/TLS.Teams][IP: 0/Unknown][Encrypted][cat: Collaborative/15][Risk: ** Malicious Fingerpint **** Missing SNI TLS Extn **][Risk Score: 60]
\t2\tTCP 93.184.216.35:80 <-> 10.0.0.1:50001 [VLAN: 7][proto: 7/HTTP][cat: Download/7][Risk: ** Binary App Transfer **][URL: x/y.exe]
\t3\tTCP [2001:db8::1]:40000 <-> [2001:db8:0:0::2]:443 [proto: 91/TLS][cat: Web/5]
\t4\tUDP 10.0.0.1:5353 -> 224.0.0.251:5353 [proto: 8/MDNS][cat: Network/14]
\t5\tTCP 10.0.0.1:50002 <-> 93.184.216.36:80 [proto: 7/HTTP][cat: Malware/100]
"""

README = """\
# Evil RAT

# Links:
https://app.any.run/tasks/abc/
https://www.exploit-db.com/exploits/1

# Sample:

```
#!/bin/sh
POST /gate.php HTTP/1.1
Host: c2.example.net:8080
Referer: http://drop.example.org/x
Mail: ops@mailer.example.com
beacon 192.168.56.12 to 93.184.216.34 and 999.1.1.1
```
"""


def flow(source="anyrun_malshare_2019", run="r1", **kw):
    kw.setdefault("client_ip", "10.0.0.1")
    kw.setdefault("client_port", 50000)
    kw.setdefault("server_ip", "198.51.100.7")
    kw.setdefault("server_port", 443)
    kw.setdefault("app", "tls")
    return Flow(source=source, run=run, capture=f"{source}/{run}", **kw)


@pytest.fixture
def trails(tmp_path):
    (tmp_path / "emotet.txt").write_text("# Emotet\nevil.example\n203.0.113.5:449\nhttp://198.51.100.9/gate.php\n"
                                         "/generic/path\ndrop.example/payload.exe # comment\n")
    (tmp_path / "generic.txt").write_text("203.0.113.77\nshared.example\n")
    (tmp_path / "zeus.txt").write_text("shared.example\n203.0.113.6\n")
    return rc.Trails.load(tmp_path)


# -- nDPI result files and rules ------------------------------------------------------------

def test_parse_ndpi_result_reads_tcp_lines_order_free():
    got = rc.parse_ndpi_result(NDPI_OUT)
    assert len(got) == 4
    teams = got[rc.endpoint_pair(("10.0.0.1", 50000), ("93.184.216.34", 443))][0]
    assert teams.app == "TLS.Teams" and teams.category == "Collaborative"
    assert teams.risks == {"Malicious Fingerpint", "Missing SNI TLS Extn"}
    http = got[rc.endpoint_pair(("10.0.0.1", 50001), ("93.184.216.35", 80))][0]
    assert http.app == "HTTP" and "Binary App Transfer" in http.risks
    assert rc.endpoint_pair(("2001:db8::1", 40000), ("2001:db8::2", 443)) in got


def ndpi_flow(run="teams.pcap", port=50000, server="93.184.216.34", sport=443, app="tls"):
    return flow("ndpi_tests", run, client_port=port, server_ip=server, server_port=sport, app=app)


@pytest.fixture
def ndpi_kb():
    parsed = rc.parse_ndpi_result(NDPI_OUT)
    return Knowledge(ndpi={name: parsed for name in ("teams.pcap", "WebattackRCE.pcap", "emotet.pcap", "malware.pcap")})


def test_ndpi_app_is_benign_and_its_fingerprint_risk_is_ignored(ndpi_kb):
    assert rc.label(ndpi_flow(), ndpi_kb) == Label("benign", "ndpi:tls.teams", "ndpi_app")


def test_ndpi_serious_risk_and_malware_category_stay_unlabelled(ndpi_kb):
    assert rc.label(ndpi_flow(port=50001, server="93.184.216.35", sport=80, app="http"), ndpi_kb) == \
        Label(None, None, "ndpi_serious_risk")
    assert rc.label(ndpi_flow(port=50002, server="93.184.216.36", sport=80), ndpi_kb).why == "ndpi_serious_risk"


def test_ndpi_named_captures_come_first(ndpi_kb):
    risky = dict(port=50001, server="93.184.216.35", sport=80, app="http")
    assert rc.label(ndpi_flow("WebattackRCE.pcap", **risky), ndpi_kb) == Label("attack", "nikto", "ndpi_capture")
    assert rc.label(ndpi_flow("emotet.pcap"), ndpi_kb) == Label("malware", "emotet", "ndpi_capture")
    assert rc.label(ndpi_flow("malware.pcap"), ndpi_kb) == Label(None, None, "ndpi_test_domains")
    assert rc.label(ndpi_flow("fuzz-2006.pcap"), ndpi_kb).cls is None


def test_ndpi_flow_without_result_line_stays_unlabelled(ndpi_kb):
    assert rc.label(ndpi_flow(port=1), ndpi_kb) == Label(None, None, "ndpi_no_result_line")
    assert rc.label(ndpi_flow("other.pcap"), ndpi_kb).cls is None


def test_ndpi_conflicting_lines_stay_unlabelled():
    key = rc.endpoint_pair(("10.0.0.1", 50000), ("93.184.216.34", 443))
    kb = Knowledge(ndpi={"teams.pcap": {key: [rc.NdpiFlow("TLS.Teams", "", frozenset()),
                                              rc.NdpiFlow("TLS.Zoom", "", frozenset())]}})
    assert rc.label(ndpi_flow(), kb) == Label(None, None, "ndpi_ambiguous")


# -- spiderlabs ----------------------------------------------------------------------------

def test_readme_iocs_take_samples_not_links_nor_private_addresses():
    assert rc.readme_iocs(README) == {"c2.example.net", "drop.example.org", "93.184.216.34"}


def spider_flow(folder, run=None, **kw):
    return flow("spiderlabs_iocs", run or f"{folder}/{folder.lower()}.pcap", folder=folder, **kw)


@pytest.fixture
def spider_kb():
    return Knowledge(iocs={"Evil_RAT": {"c2.example.net", "203.0.113.9", "www.bing.com"},
                           "CVE-2019-2725": {"203.0.113.20"}, "Bots_Scanners": {"203.0.113.30"}})


def test_spider_readme_ioc_has_the_folder_class(spider_kb):
    assert rc.label(spider_flow("Evil_RAT", sni="c2.example.net"), spider_kb) == Label("malware", "evil_rat", "readme_ioc")
    assert rc.label(spider_flow("CVE-2019-2725", app="http", host="203.0.113.20", uri="/_async/x"), spider_kb) == \
        Label("attack", "cve-2019-2725", "readme_ioc")


def test_spider_infrastructure_is_benign_unless_the_readme_names_it(spider_kb):
    assert rc.label(spider_flow("Evil_RAT", sni="v10.events.data.microsoft.com"), spider_kb) == \
        Label("benign", "infra:data.microsoft.com", "infrastructure")
    assert rc.label(spider_flow("Evil_RAT", sni="www.bing.com"), spider_kb).why == "readme_ioc"


def test_spider_other_flows_take_the_folder(spider_kb):
    assert rc.label(spider_flow("Evil_RAT", sni="unknown.example"), spider_kb) == Label("malware", "evil_rat", "folder")
    assert rc.label(spider_flow("HoneyPots", app="http", uri="/x.php?cmd=id"), spider_kb) == \
        Label("attack", "honeypots", "folder")
    assert rc.label(spider_flow("Beacons", "Beacons/ps-empire.pcap"), spider_kb).family == "beacons/ps-empire"


def test_spider_control_capture_and_bare_root_probe(spider_kb):
    assert rc.label(spider_flow("CVE-2019-0708", "CVE-2019-0708/normal_rdp.pcap", server_port=3389), spider_kb) == \
        Label("benign", "spider:normal_rdp", "control_capture")
    assert rc.label(spider_flow("Bots_Scanners", app="http", uri="/", host="203.0.113.30"), spider_kb) == \
        Label(None, None, "bare_root_request")
    assert rc.label(spider_flow("Bots_Scanners", app="http", uri="/x.php", host="203.0.113.30"), spider_kb).why == "readme_ioc"
    assert rc.label(spider_flow("Evil_RAT", app="http", uri="/"), spider_kb).cls == "malware"


def test_spider_folder_classes():
    assert [rc.spider_class(f) for f in ("CVE-2017-10271", "PrintNightmare_CVE-2021-34527", "Bots_Scanners",
                                         "HoneyPots", "RigEK", "Emotet", "Mirai")] == \
        ["attack", "attack", "attack", "attack", "malware", "malware", "malware"]


# -- infrastructure ----------------------------------------------------------------------------

@pytest.mark.parametrize("kw,want", [
    (dict(host="www.download.windowsupdate.com"), "windowsupdate.com"),
    (dict(sni="www.google.co.jp"), "google"),
    (dict(host="ocsp.sectigo.com"), "sectigo.com"),
    (dict(host="ocsp.int-x3.example"), "ocsp/crl"),
    (dict(server_ip="192.168.56.11", server_port=2869, host="192.168.56.11"), "lan-discovery"),
    (dict(server_ip="93.184.216.34", server_port=2869), None),
    (dict(uri="/wp-cron.php?doing_wp_cron=1"), "wp-cron"),
    (dict(host="checkip.amazonaws.com"), None),
    (dict(host="support.microsoft.com"), None),
    (dict(sni="notgoogle.com.evil.example"), None),
])
def test_infrastructure_name(kw, want):
    assert rc.infrastructure_name(flow(**kw)) == want


# -- maltrail and the sandbox runs --------------------------------------------------------------

def test_trails_match_names_subdomains_ips_and_urls(trails):
    assert trails.name_family(flow(sni="a.b.evil.example")) == "emotet"
    assert trails.name_family(flow(sni="notevil.example")) is None
    assert trails.name_family(flow(app="http", host="drop.example", uri="/payload.exe?x=1")) == "emotet"
    assert trails.name_family(flow(app="http", host="drop.example", uri="/index.html")) is None
    assert trails.name_family(flow(app="http", server_ip="198.51.100.9", host="198.51.100.9", uri="/gate.php")) == "emotet"
    assert trails.ip_family(flow(server_ip="203.0.113.5", server_port=449)) == "emotet"
    assert trails.ip_family(flow(server_ip="203.0.113.5", server_port=443)) is None
    assert trails.ip_family(flow(server_ip="203.0.113.6", sni="shop.example")) is None
    assert trails.ip_family(flow(server_ip="203.0.113.6", app="http", host="203.0.113.6")) == "zeus"
    assert trails.ip_family(flow(server_ip="203.0.113.6"), with_port_only=True) is None
    assert "/generic/path" not in str(trails.urls)


def test_trails_prefer_a_specific_family(trails):
    assert trails.name_family(flow(sni="shared.example")) == "zeus"
    assert trails.ip_family(flow(server_ip="203.0.113.77")) == "generic"


def test_sandbox_rule_priority(trails):
    kb = Knowledge(trails=trails, run_family={"r1": "emotet"})
    assert rc.label(flow(sni="evil.example"), kb) == Label("malware", "emotet", "maltrail_name")
    assert rc.label(flow(sni="www.google.com", server_ip="203.0.113.6"), kb) == Label("benign", "infra:google", "infrastructure")
    assert rc.label(flow(server_ip="203.0.113.5", server_port=449), kb) == Label("malware", "emotet", "maltrail_ip")
    assert rc.label(flow(sni="checkip.amazonaws.com"), kb) == Label("malware", "emotet", "sandbox_run")
    assert rc.label(flow(run="r2", sni="unknown.example"), kb) == Label("malware", "anyrun_unknown", "sandbox_run")


def test_derive_sandbox_knowledge(trails):
    flows = [flow(run="a", sni="evil.example"), flow(run="a", server_ip="203.0.113.77"),
             flow(run="b", server_ip="203.0.113.6"),
             flow(run="c", server_ip="203.0.113.5", server_port=449)]
    flows += [flow(run=r, sni="checkip.example") for r in ("a", "b", "c", "d", "e")]
    flows += [flow(run=r, host="www.download.windowsupdate.com", app="http") for r in ("a", "b", "c", "d", "e")]
    kb = Knowledge(trails=trails)
    rc.derive_sandbox_knowledge(flows, kb, min_groups=4)
    assert kb.run_family == {"a": "emotet", "c": "emotet"}
    # a and c are one group (emotet); b, d, e their own: four groups, infrastructure excluded
    assert kb.recurring == {"checkip.example": 4, "198.51.100.7": 4}


def test_recurring_destinations_counts_run_groups():
    flows = [flow(run=r, sni="x.example") for r in ("a", "b", "c")]
    assert rc.recurring_destinations(flows, {}, 3) == {"x.example": 3, "198.51.100.7": 3}
    assert rc.recurring_destinations(flows, {"a": "f", "b": "f"}, 3) == {}


def test_mercury_captures():
    kb = Knowledge()
    assert rc.label(flow("fingerprint_dbs", "top_100_fingerprints.pcap"), kb) == \
        Label("benign", "mercury:top_100_fingerprints", "mercury_capture")
    assert rc.label(flow("fingerprint_dbs", "malware_tls.pcap"), kb).cls == "malware"


# -- fingerprint knowledge base ---------------------------------------------------------------

def test_conformance_tests_stay_unlabelled():
    kb = rc.Knowledge()
    probe = Flow("fingerprint_dbs", "capture2.pcap", app="http", client_ip="127.0.0.1", server_ip="127.0.0.1",
                 uri="/b/c/d;p?q&path=../../g")
    assert rc.label(probe, kb) == Label(None, None, "conformance_test")
    lan = Flow("fingerprint_dbs", "capture2.pcap", app="http", client_ip="10.0.0.5", server_ip="93.184.216.34", uri="/")
    assert rc.label(lan, kb) == Label("benign", "mercury:capture2", "mercury_capture")


def test_fingerprint_keys_agree_between_ja3_and_mercury_strings():
    ja3 = "771,4865-4866-49195,0-23-65281-10,29-23,0"
    mercury = "tls/(0303)(0a0a13011302c02b)((0a0a)(0000000e000c0000096578616d706c65)(ff01000100)(0017)(000a00040002001d))"
    joy = "(0303)(13011302c02b)((0017)(0000)(000a00040002001d)(ff01000100))"
    assert rc.key_from_ja3(ja3) == rc.key_from_str_repr(mercury) == rc.key_from_str_repr(joy)
    assert rc.key_from_ja3("") is None and rc.key_from_str_repr("quic/(1)") is None


def test_fingerprint_kb_is_a_prior_with_process_counts(tmp_path):
    import gzip
    lines = [{"str_repr": "(0303)(c02b)((0000))", "process_info": [{"process": "a.exe", "count": 5},
                                                                  {"process": "B.exe", "count": 9}]},
             {"str_repr": "(0303)(c02b)((0000))", "process_info": [{"process": "b.exe", "prevalence": 0.5}]}]
    with gzip.open(tmp_path / "kb.json.gz", "wt") as f:
        f.writelines(json.dumps(j) + "\n" for j in lines)
    kb = rc.load_fingerprint_kb(tmp_path)
    assert kb == {rc.key_from_ja3("771,49195,0"): rc.KbEntry("b.exe", 2)}


# -- replay cache, join, outputs ----------------------------------------------------------------

FAKE_SENSOR = """#!/bin/sh
echo run >> "{log}"
while [ $# -gt 1 ]; do
  case "$1" in --events) ev="$2";; --features) fe="$2";; esac
  shift
done
printf '%s\\n' '{{"flow_id":1,"app":"tls","src_ip":"10.0.0.1","src_port":5,"dest_ip":"198.51.100.7","dest_port":443,"start":"2019-07-01T00:00:00Z","tls":{{"sni":"Evil.Example.","ja3":"x","ja3_string":"771,49195,0"}}}}' \\
  '{{"flow_id":2,"app":"other","src_ip":"10.0.0.1","src_port":6,"dest_ip":"198.51.100.7","dest_port":445}}' \\
  '{{"flow_id":3,"app":"http","src_ip":"10.0.0.1","src_port":7,"dest_ip":"198.51.100.8","dest_port":80,"http":{{"host":"a.example:8080","uri":"/"}}}}' > "$ev"
printf '%s\\n' '{{"flow_id":1}}' '{{"flow_id":2}}' > "$fe"
"""


@pytest.fixture
def sensor(tmp_path):
    log = tmp_path / "sensor.log"
    path = tmp_path / "nightjar"
    path.write_text(FAKE_SENSOR.format(log=log))
    path.chmod(path.stat().st_mode | stat.S_IEXEC)
    return path, log


def make_capture(tmp_path, name="run1.pcap"):
    pcaps = tmp_path / "data/anyrun_malshare_2019/pcaps"
    pcaps.mkdir(parents=True, exist_ok=True)
    (pcaps / name).write_bytes(b"pcap")
    return rc.find_captures(tmp_path / "data")


def test_replay_is_cached_per_capture_and_sensor(tmp_path, sensor):
    path, log = sensor
    caps = make_capture(tmp_path)
    assert [(c.source, c.run, c.rel) for c in caps] == [("anyrun_malshare_2019", "run1",
                                                       "anyrun_malshare_2019/pcaps/run1.pcap")]
    rc.replay_all(path, caps, tmp_path / "cache")
    rc.replay_all(path, caps, tmp_path / "cache")
    assert log.read_text().count("run") == 1
    os.utime(caps[0].path, ns=(1, 1))
    dirs = rc.replay_all(path, caps, tmp_path / "cache")
    assert log.read_text().count("run") == 2
    assert [d.name for d in (tmp_path / "cache").iterdir()] == [dirs[caps[0].rel].name]


def test_read_flows_keeps_tls_http_with_features(tmp_path, sensor):
    path, _ = sensor
    caps = make_capture(tmp_path)
    d = rc.replay_all(path, caps, tmp_path / "cache")[caps[0].rel]
    counts = rc.Counter()
    flows = rc.read_flows(caps[0], d, counts)
    assert [(f.flow_id, f.sni, f.server_port) for f in flows] == [(1, "evil.example", 443)]
    assert counts == {"not_tls_http": 1, "no_feature_line": 1}


def feature_line(flow_id, schema):
    n, t = len(schema["static_features"]), schema["sequence_length"]
    return {"schema_version": schema["schema_version"], "flow_id": flow_id, "client_ip": "10.0.0.1", "client_port": flow_id,
            "server_ip": "198.51.100.7", "server_port": 443, "start_ts": 1.0, "app": "tls",
            "static_features": [0.5] * n, "packets": [[1.0] * 6] * t, "records": [[2.0] * 6] * t, "url_tokens": ["a"]}


def test_unlabelled_flows_are_not_training_data(tmp_path):
    schema = rc_schema()
    cache = tmp_path / "c1"
    cache.mkdir()
    (cache / "features.jsonl").write_text("".join(json.dumps(feature_line(i, schema)) + "\n" for i in (1, 2, 3)))
    cap = rc.Capture(tmp_path / "x.pcap", "anyrun_malshare_2019/pcaps/x.pcap", "anyrun_malshare_2019", "x")
    flows = [Flow("anyrun_malshare_2019", "x", cap.rel, flow_id=i, ja3_string="771,49195,0") for i in (1, 2)]
    labels = {(cap.rel, 1): Label("malware", "emotet", "maltrail_name"), (cap.rel, 2): Label(None, None, "no_rule")}
    kb = {rc.key_from_ja3("771,49195,0"): rc.KbEntry("schannel", 40)}
    n = rc.write_features(tmp_path / "features.jsonl", [cap], {cap.rel: cache},
                          {(f.capture, f.flow_id): f for f in flows}, labels, kb)
    lines = [json.loads(l) for l in open(tmp_path / "features.jsonl")]
    assert n == 1 and [j["flow_id"] for j in lines] == [1]
    assert {k: lines[0][k] for k in ("class", "family", "source", "run", "why", "kb_process", "kb_processes")} == \
        {"class": "malware", "family": "emotet", "source": "anyrun_malshare_2019", "run": "x", "why": "maltrail_name",
         "kb_process": "schannel", "kb_processes": 40}
    rc.write_csvs(tmp_path, flows, labels)
    assert len(open(tmp_path / "flows.csv").readlines()) == 2
    assert open(tmp_path / "unlabelled.csv").readlines()[1].split(",")[9] == "no_rule"
    summary = rc.summarise(flows, labels, rc.Counter(not_tls_http=4), Knowledge(), kb)
    assert (summary["labelled"], summary["unlabelled"], summary["unlabelled_by_reason"]) == (1, 1, {"no_rule": 1})
    assert summary["per_rule"] == {"maltrail_name": 1} and summary["not_candidates"] == {"not_tls_http": 4}
    assert "no_rule" in rc.format_summary(summary)

    dataset.build_labelled(tmp_path / "features.jsonl", tmp_path / "real.npz")
    d = dataset.load(tmp_path / "real.npz")
    assert d["static"].shape == (1, len(schema["static_features"]))
    assert d["seq"].shape == (1, schema["sequence_length"], 12)
    assert list(d["y"]) == [2] and list(d["source"]) == ["anyrun_malshare_2019"] and list(d["run"]) == ["x"]
    assert set(d) >= {"tokens", "family", "profile", "client", "server", "session"}


def rc_schema():
    from nightjar_model.schema import load_schema
    return load_schema()


def test_dataset_build_keeps_the_5_tuple_join(tmp_path):
    schema = rc_schema()
    (tmp_path / "f.jsonl").write_text("".join(json.dumps(feature_line(i, schema)) + "\n" for i in (1, 2)))
    (tmp_path / "l.csv").write_text("client_ip,client_port,server_ip,server_port,class,family\n"
                                    "10.0.0.1,1,198.51.100.7,443,attack,sqli\n")
    s = dataset.build(tmp_path / "f.jsonl", tmp_path / "l.csv", tmp_path / "d.npz", "train")
    assert s["flows"] == 1 and s["unlabelled_flows_skipped"] == 1
    d = np.load(tmp_path / "d.npz")
    assert list(d["y"]) == [1] and list(d["family"]) == ["sqli"] and list(d["session"]) == ["train"]
