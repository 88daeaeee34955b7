//! The resolver against fake DNS servers on loopback, fake hosts and resolv.conf files, and hostile packets.

use super::*;
use std::net::Ipv4Addr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

const T: Duration = Duration::from_secs(5);
/// The generous bound on calls that must give up: they are given far less than this.
const BOUND: Duration = Duration::from_secs(10);
const K8S_RESOLV_CONF: &str = "nameserver 127.0.0.1\n\
                               search ns.svc.cluster.local svc.cluster.local cluster.local\n\
                               options ndots:5\n";

// ---- A fake DNS server ----------------------------------------------------------------------------------

#[derive(Clone, Debug)]
enum Rec {
    A(&'static str, [u8; 4]),
    Aaaa(&'static str, Ipv6Addr),
    Cname(&'static str, &'static str),
}

/// What the fake server does when asked about a name.
#[derive(Clone, Debug)]
enum Act {
    /// NOERROR with these records (those of the asked type, and every CNAME); empty: no data.
    Answer(Vec<Rec>),
    Nx,
    ServFail,
    Silent,
    /// Random bytes, and a bare header with the right id.
    Garbage,
    /// A correct answer (10.9.9.9) under another id.
    WrongId,
    /// A correct answer (10.9.9.9) cut short.
    CutShort,
    /// An answer whose record name is a compression pointer to itself.
    Loop,
    /// The TC bit and no records.
    TruncatedEmpty,
    /// The TC bit, one complete A record (10.7.7.7) then half of another.
    TruncatedPartial,
    /// Every kind of junk first (wrong id, no QR bit, another question, cut short, garbage, a loop), then this.
    Noisy(Box<Act>),
}

struct FakeDns {
    addr: SocketAddr,
    queries: Arc<Mutex<Vec<(String, u16)>>>,
    stop: Arc<AtomicBool>,
    handle: Option<JoinHandle<()>>,
}

impl FakeDns {
    /// Serves on `socket`; names not in `zone` get `default`.
    fn serve(socket: UdpSocket, zone: Vec<(&'static str, Act)>, default: Act) -> FakeDns {
        let addr = socket.local_addr().unwrap();
        let queries = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let (q, s) = (queries.clone(), stop.clone());
        socket.set_read_timeout(Some(Duration::from_millis(20))).unwrap();
        let handle = std::thread::spawn(move || {
            let mut buf = [0u8; 1500];
            while !s.load(Ordering::SeqCst) {
                let Ok((n, from)) = socket.recv_from(&mut buf) else { continue };
                let Some((id, qname, qtype, question)) = parse_query(&buf[..n]) else { continue };
                q.lock().unwrap().push((qname.clone(), qtype));
                let act = zone.iter().find(|(name, _)| name.eq_ignore_ascii_case(&qname)).map(|(_, a)| a);
                for packet in respond(act.unwrap_or(&default), id, &qname, qtype, question) {
                    let _ = socket.send_to(&packet, from);
                }
            }
        });
        FakeDns { addr, queries, stop, handle: Some(handle) }
    }

    fn start(zone: Vec<(&'static str, Act)>) -> FakeDns {
        FakeDns::serve(UdpSocket::bind("127.0.0.1:0").unwrap(), zone, Act::Nx)
    }

    fn queries(&self) -> Vec<(String, u16)> {
        self.queries.lock().unwrap().clone()
    }

    fn names_asked(&self) -> Vec<String> {
        self.queries().into_iter().map(|(name, _)| name).collect()
    }
}

impl Drop for FakeDns {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(handle) = self.handle.take() {
            let _ = handle.join();
        }
    }
}

/// id, name, type and the question section's bytes of a query (uncompressed, as ours are).
fn parse_query(packet: &[u8]) -> Option<(u16, String, u16, Vec<u8>)> {
    let id = read_u16(packet, 0)?;
    let mut pos = 12;
    let mut labels = Vec::new();
    loop {
        let len = usize::from(*packet.get(pos)?);
        if len == 0 {
            break;
        }
        labels.push(String::from_utf8_lossy(packet.get(pos + 1..pos + 1 + len)?).into_owned());
        pos += 1 + len;
    }
    let qtype = read_u16(packet, pos + 1)?;
    Some((id, labels.join("."), qtype, packet.get(12..pos + 5)?.to_vec()))
}

fn encode_name(name: &str) -> Vec<u8> {
    let mut out = Vec::new();
    for label in name.split('.').filter(|l| !l.is_empty()) {
        out.push(label.len() as u8);
        out.extend_from_slice(label.as_bytes());
    }
    out.push(0);
    out
}

/// A reply: the question copied, then the records of type `qtype` and every CNAME. A record owned by the
/// question's name uses a compression pointer to it (offset 12), so decompression is exercised.
fn reply(id: u16, flags: u16, question: &[u8], qname: &str, qtype: u16, recs: &[Rec]) -> Vec<u8> {
    let mut answers = Vec::new();
    let mut count = 0u16;
    for rec in recs {
        let (owner, rtype, data) = match rec {
            Rec::A(owner, ip) => (*owner, TYPE_A, ip.to_vec()),
            Rec::Aaaa(owner, ip) => (*owner, TYPE_AAAA, ip.octets().to_vec()),
            Rec::Cname(owner, target) => (*owner, TYPE_CNAME, encode_name(target)),
        };
        if rtype != qtype && rtype != TYPE_CNAME {
            continue;
        }
        count += 1;
        if owner.eq_ignore_ascii_case(qname) {
            answers.extend_from_slice(&[0xc0, 12]);
        } else {
            answers.extend(encode_name(owner));
        }
        answers.extend_from_slice(&rtype.to_be_bytes());
        answers.extend_from_slice(&CLASS_IN.to_be_bytes());
        answers.extend_from_slice(&300u32.to_be_bytes());
        answers.extend_from_slice(&(data.len() as u16).to_be_bytes());
        answers.extend(data);
    }
    let mut packet = id.to_be_bytes().to_vec();
    packet.extend_from_slice(&flags.to_be_bytes());
    packet.extend_from_slice(&[0, 1]);
    packet.extend_from_slice(&count.to_be_bytes());
    packet.extend_from_slice(&[0, 0, 0, 0]);
    packet.extend_from_slice(question);
    packet.extend(answers);
    packet
}

fn respond(act: &Act, id: u16, qname: &str, qtype: u16, question: Vec<u8>) -> Vec<Vec<u8>> {
    let ok = |recs: &[Rec]| reply(id, 0x8180, &question, qname, qtype, recs);
    let fixed = || vec![Rec::A(Box::leak(qname.to_owned().into_boxed_str()), [10, 9, 9, 9])];
    match act {
        Act::Answer(recs) => vec![ok(recs)],
        Act::Nx => vec![reply(id, 0x8183, &question, qname, qtype, &[])],
        Act::ServFail => vec![reply(id, 0x8182, &question, qname, qtype, &[])],
        Act::Silent => vec![],
        Act::Garbage => {
            let mut bare = id.to_be_bytes().to_vec();
            bare.extend_from_slice(&[0x81, 0x80, 0, 1, 0, 1, 0, 0, 0, 0]);
            vec![b"\x00\x01garbage".to_vec(), bare, pseudo_random_bytes(u64::from(id), 300)]
        }
        Act::WrongId => vec![reply(id ^ 0x5a5a, 0x8180, &question, qname, qtype, &fixed())],
        Act::CutShort => {
            let full = ok(&fixed());
            vec![full[..full.len() - 2].to_vec(), full[..20].to_vec()]
        }
        Act::Loop => {
            let mut packet = reply(id, 0x8180, &question, qname, qtype, &[]);
            packet[7] = 1;
            let at = packet.len();
            packet.extend_from_slice(&[0xc0 | (at >> 8) as u8, at as u8, 0, 1, 0, 1, 0, 0, 1, 0, 0, 4, 10, 6, 6, 6]);
            vec![packet]
        }
        Act::TruncatedEmpty => vec![reply(id, 0x8380, &question, qname, qtype, &[])],
        Act::TruncatedPartial => {
            let name: &'static str = Box::leak(qname.to_owned().into_boxed_str());
            let full =
                reply(id, 0x8380, &question, qname, qtype, &[Rec::A(name, [10, 7, 7, 7]), Rec::A(name, [10, 8, 8, 8])]);
            vec![full[..full.len() - 3].to_vec()]
        }
        Act::Noisy(inner) => {
            let mut packets = respond(&Act::WrongId, id, qname, qtype, question.clone());
            let mut not_a_response = ok(&fixed());
            not_a_response[2] &= 0x7f;
            packets.push(not_a_response);
            let mut other_question = ok(&fixed());
            other_question[13] = b'#';
            packets.push(other_question);
            let mut other_type = ok(&fixed());
            let type_at = 12 + question.len() - 4;
            other_type[type_at..type_at + 2].copy_from_slice(&99u16.to_be_bytes());
            packets.push(other_type);
            for junk in [Act::CutShort, Act::Garbage, Act::Loop] {
                packets.extend(respond(&junk, id, qname, qtype, question.clone()));
            }
            packets.extend(respond(inner, id, qname, qtype, question));
            packets
        }
    }
}

fn pseudo_random_bytes(seed: u64, max_len: usize) -> Vec<u8> {
    let mut state = seed | 1;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let len = (next() as usize) % (max_len + 1);
    (0..len).map(|_| next() as u8).collect()
}

// ---- Configuration files --------------------------------------------------------------------------------

/// A directory of test files, removed at the end of the test.
struct Files(PathBuf);

impl Files {
    fn new(hosts: &str, resolv_conf: &str) -> Files {
        static N: AtomicUsize = AtomicUsize::new(0);
        let dir = std::env::temp_dir().join(format!(
            "redis-k8s-resolve-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::SeqCst)
        ));
        fs::create_dir_all(&dir).unwrap();
        fs::write(dir.join("hosts"), hosts).unwrap();
        fs::write(dir.join("resolv.conf"), resolv_conf).unwrap();
        Files(dir)
    }

    fn resolver(&self, dns_port: u16) -> Resolver {
        Resolver { hosts_path: self.0.join("hosts"), resolv_conf_path: self.0.join("resolv.conf"), dns_port }
    }
}

impl Drop for Files {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

fn ips(addrs: &[SocketAddr]) -> Vec<String> {
    addrs.iter().map(|a| a.to_string()).collect()
}

/// Resolves `host` with `resolv_conf` against a fake server serving `zone`.
fn lookup(zone: Vec<(&'static str, Act)>, resolv_conf: &str, host: &str) -> (io::Result<Vec<SocketAddr>>, FakeDns) {
    let dns = FakeDns::start(zone);
    let files = Files::new("127.0.0.1 localhost\n", resolv_conf);
    let result = files.resolver(dns.addr.port()).resolve(host, 26379, T);
    (result, dns)
}

// ---- Literals, host:port, hosts file, resolv.conf -------------------------------------------------------

#[test]
fn ip_literals_are_themselves_without_io() {
    // No files and no time: any I/O would fail.
    let nowhere = Resolver {
        hosts_path: "/nonexistent/hosts".into(),
        resolv_conf_path: "/nonexistent/resolv.conf".into(),
        dns_port: 1,
    };
    let r = |host| nowhere.resolve(host, 6379, Duration::ZERO).map(|a| ips(&a));
    assert_eq!(r("10.1.2.3").unwrap(), ["10.1.2.3:6379"]);
    assert_eq!(r("::1").unwrap(), ["[::1]:6379"]);
    assert_eq!(r("[fe80::1:2]").unwrap(), ["[fe80::1:2]:6379"]);
    assert_eq!(r("0.0.0.0").unwrap(), ["0.0.0.0:6379"]);
    assert_eq!(r("redis-0").unwrap_err().kind(), io::ErrorKind::NotFound, "a name needs a nameserver");
    let long_label = "x".repeat(64);
    for bad in ["", "[10.1.2.3]", "[::1", "a..b", "has space", "a/b", "é.example", ".", "..", long_label.as_str()] {
        assert_eq!(r(bad).unwrap_err().kind(), io::ErrorKind::InvalidInput, "{bad:?}");
    }
    assert_eq!(r(&format!("{}.b", ["a"; 127].join("."))).unwrap_err().kind(), io::ErrorKind::InvalidInput);
}

#[test]
fn host_port_strings_split() {
    assert_eq!(split_host_port("redis-0.redis-endpoints:26379").unwrap(), ("redis-0.redis-endpoints", 26379));
    assert_eq!(split_host_port("10.0.0.1:6379").unwrap(), ("10.0.0.1", 6379));
    assert_eq!(split_host_port("[::1]:6379").unwrap(), ("::1", 6379));
    assert_eq!(split_host_port("host.:1").unwrap(), ("host.", 1));
    for bad in ["no-port-here", "host:", ":6379", "::1:6379", "[::1]", "[::1]6379", "host:+1", "host:65536", "h:x"] {
        assert_eq!(split_host_port(bad).unwrap_err().kind(), io::ErrorKind::InvalidInput, "{bad:?}");
    }
    assert_eq!(ips(&resolve_host_port("[::1]:6379", Duration::ZERO).unwrap()), ["[::1]:6379"]);
    assert!(resolve_host_port("no-port-here", T).is_err());
}

#[test]
fn hosts_file_is_parsed_robustly() {
    let hosts = "# comment line\n\
                 127.0.0.1\tlocalhost\n\
                 \n   \t\n\
                 10.0.0.5   Redis-0.Redis-Endpoints   redis-0 # trailing comment redis-9\n\
                 bogus-address redis-0\n\
                 fd00::5\tredis-0.redis-endpoints.\n\
                 10.0.0.6 other redis-0.\n\
                 10.0.0.5 redis-0\n\
                 fe80::7%eth0 linklocal\n\
                 10.0.0.8\n\
                 #10.0.0.9 redis-0\n";
    assert_eq!(lookup_hosts(hosts, "redis-0"), ["10.0.0.5".parse::<IpAddr>().unwrap(), "10.0.0.6".parse().unwrap()]);
    assert_eq!(
        lookup_hosts(hosts, "REDIS-0.redis-endpoints."),
        ["10.0.0.5".parse::<IpAddr>().unwrap(), "fd00::5".parse().unwrap()],
        "case-insensitive, trailing dots ignored, IPv4 first"
    );
    assert_eq!(lookup_hosts(hosts, "linklocal"), ["fe80::7".parse::<IpAddr>().unwrap()]);
    assert!(lookup_hosts(hosts, "redis-9").is_empty());
    assert!(lookup_hosts(hosts, "10.0.0.8").is_empty());
    assert!(lookup_hosts("", "localhost").is_empty());
}

#[test]
fn hosts_file_answers_before_dns() {
    // No nameserver at all: the hosts file is enough.
    let files = Files::new("10.3.3.3 sentinel-host\n", "# no nameserver\n");
    assert_eq!(ips(&files.resolver(1).resolve("Sentinel-Host", 26379, T).unwrap()), ["10.3.3.3:26379"]);
    let err = files.resolver(1).resolve("elsewhere", 26379, T).unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::NotFound);
    assert!(err.to_string().contains("no nameserver"), "{err}");
}

#[test]
fn resolv_conf_is_parsed_robustly() {
    let conf = ResolvConf::parse(
        "; comment\n# another\n\
         domain first.example\n\
         nameserver 10.96.0.10\n\
         nameserver not-an-ip\n\
         nameserver\tfd00::10  # inline comment\n\
         nameserver fe80::1%eth0\n\
         nameserver 10.0.0.4\n\
         search ns.svc.cluster.local. svc.cluster.local bad..domain cluster.local\n\
         options timeout:1 ndots:5 attempts:2\n\
         options ndots:bad\n\
         unknown keyword\n",
    );
    assert_eq!(
        conf.nameservers,
        ["10.96.0.10".parse::<IpAddr>().unwrap(), "fd00::10".parse().unwrap(), "fe80::1".parse().unwrap()]
    );
    assert_eq!(conf.search, ["ns.svc.cluster.local", "svc.cluster.local", "cluster.local"], "search replaces domain");
    assert_eq!(conf.ndots, 5);
    assert_eq!(ResolvConf::parse("options ndots:99").ndots, MAX_NDOTS);
    assert_eq!(ResolvConf::parse("search a.example\ndomain b.example").search, ["b.example"], "the last line wins");
    let empty = ResolvConf::parse("");
    assert_eq!((empty.nameservers.len(), empty.search.len(), empty.ndots), (0, 0, 1));
    let many = (1..=10).map(|i| format!("d{i}.example")).collect::<Vec<_>>().join(" ");
    assert_eq!(ResolvConf::parse(&format!("search {many}")).search.len(), MAX_SEARCH_DOMAINS);
}

#[test]
fn candidates_follow_ndots_and_the_search_list() {
    let k8s = ResolvConf::parse(K8S_RESOLV_CONF);
    assert_eq!(
        k8s.candidates("redis-0.redis-endpoints"),
        [
            "redis-0.redis-endpoints.ns.svc.cluster.local",
            "redis-0.redis-endpoints.svc.cluster.local",
            "redis-0.redis-endpoints.cluster.local",
            "redis-0.redis-endpoints",
        ]
    );
    assert_eq!(k8s.candidates("redis-0.redis-endpoints."), ["redis-0.redis-endpoints"], "absolute");
    assert_eq!(k8s.candidates("a.b.c.d.e.f")[0], "a.b.c.d.e.f", "as many dots as ndots: as-is first");
    let plain = ResolvConf::parse("nameserver 10.0.0.1\nsearch example.org\n");
    assert_eq!(plain.candidates("host"), ["host.example.org", "host"]);
    assert_eq!(plain.candidates("a.b"), ["a.b", "a.b.example.org"]);
    let long = format!("{}.x", "a".repeat(63));
    let near_limit = ResolvConf::parse(&format!("search {}\n", [long.as_str(); 3].join(".")));
    assert_eq!(near_limit.candidates(&"b".repeat(63)), ["b".repeat(63)], "a name over 253 characters is skipped");
}

// ---- DNS against the fake server ------------------------------------------------------------------------

#[test]
fn kubernetes_names_resolve_through_the_search_list() {
    let zone = vec![(
        "redis-0.redis-endpoints.ns.svc.cluster.local",
        Act::Answer(vec![Rec::A("redis-0.redis-endpoints.ns.svc.cluster.local", [10, 1, 2, 3])]),
    )];
    let (result, dns) = lookup(zone, K8S_RESOLV_CONF, "redis-0.redis-endpoints");
    assert_eq!(ips(&result.unwrap()), ["10.1.2.3:26379"]);
    assert_eq!(dns.queries(), [("redis-0.redis-endpoints.ns.svc.cluster.local".to_owned(), TYPE_A)]);
}

#[test]
fn nxdomain_moves_on_to_the_next_search_domain() {
    let zone = vec![
        ("sentinel.ns.svc.cluster.local", Act::Nx),
        // No data (the name exists without addresses): also moves on, after asking for AAAA.
        ("sentinel.svc.cluster.local", Act::Answer(vec![])),
        ("sentinel.cluster.local", Act::Answer(vec![Rec::A("sentinel.cluster.local", [10, 4, 4, 4])])),
    ];
    let (result, dns) = lookup(zone, K8S_RESOLV_CONF, "sentinel");
    assert_eq!(ips(&result.unwrap()), ["10.4.4.4:26379"]);
    assert_eq!(
        dns.queries(),
        [
            ("sentinel.ns.svc.cluster.local".to_owned(), TYPE_A),
            ("sentinel.svc.cluster.local".to_owned(), TYPE_A),
            ("sentinel.svc.cluster.local".to_owned(), TYPE_AAAA),
            ("sentinel.cluster.local".to_owned(), TYPE_A),
        ]
    );
}

#[test]
fn a_name_found_nowhere_is_not_found_after_every_candidate() {
    let (result, dns) = lookup(vec![], K8S_RESOLV_CONF, "redis-9.redis-endpoints");
    let err = result.unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::NotFound);
    assert!(err.to_string().contains("redis-9.redis-endpoints.cluster.local"), "{err}");
    assert_eq!(dns.names_asked().len(), 4);
    assert_eq!(dns.names_asked()[3], "redis-9.redis-endpoints", "as-is last");
}

#[test]
fn absolute_names_skip_the_search_list() {
    let zone = vec![("redis-0.redis-endpoints", Act::Answer(vec![Rec::A("redis-0.redis-endpoints", [10, 5, 5, 5])]))];
    let (result, dns) = lookup(zone.clone(), K8S_RESOLV_CONF, "redis-0.redis-endpoints.");
    assert_eq!(ips(&result.unwrap()), ["10.5.5.5:26379"]);
    assert_eq!(dns.names_asked(), ["redis-0.redis-endpoints"]);
    let (result, dns) = lookup(zone, K8S_RESOLV_CONF, "missing.example.");
    assert_eq!(result.unwrap_err().kind(), io::ErrorKind::NotFound);
    assert_eq!(dns.names_asked(), ["missing.example"]);
}

#[test]
fn cname_chains_are_followed_within_one_answer() {
    let zone = vec![(
        "alias.example",
        Act::Answer(vec![
            // Out of order, with a decoy address for a name outside the chain.
            Rec::A("decoy.example", [10, 0, 0, 66]),
            Rec::A("final.example", [10, 0, 0, 2]),
            Rec::Cname("middle.example", "Final.Example"),
            Rec::Cname("alias.example", "middle.example"),
            Rec::A("final.example", [10, 0, 0, 1]),
            Rec::A("final.example", [10, 0, 0, 2]),
        ]),
    )];
    let (result, _dns) = lookup(zone, "nameserver 127.0.0.1\n", "ALIAS.example");
    assert_eq!(ips(&result.unwrap()), ["10.0.0.2:26379", "10.0.0.1:26379"]);

    let looping = vec![(
        "a.example",
        Act::Answer(vec![Rec::Cname("a.example", "b.example"), Rec::Cname("b.example", "a.example")]),
    )];
    let (result, _dns) = lookup(looping, "nameserver 127.0.0.1\n", "a.example");
    assert!(result.unwrap_err().to_string().contains("CNAME chain"));
}

#[test]
fn aaaa_is_asked_only_without_an_a_record() {
    let v6: Ipv6Addr = "fd00::1234".parse().unwrap();
    let zone = vec![
        ("six.example", Act::Answer(vec![Rec::Aaaa("six.example", v6)])),
        ("both.example", Act::Answer(vec![Rec::Aaaa("both.example", v6), Rec::A("both.example", [10, 6, 6, 6])])),
    ];
    let (result, dns) = lookup(zone.clone(), "nameserver 127.0.0.1\n", "six.example");
    assert_eq!(ips(&result.unwrap()), ["[fd00::1234]:26379"]);
    assert_eq!(dns.queries(), [("six.example".to_owned(), TYPE_A), ("six.example".to_owned(), TYPE_AAAA)]);
    let (result, dns) = lookup(zone, "nameserver 127.0.0.1\n", "both.example");
    assert_eq!(ips(&result.unwrap()), ["10.6.6.6:26379"]);
    assert_eq!(dns.queries().len(), 1);
}

#[test]
fn junk_replies_are_ignored_until_the_real_one() {
    let zone =
        vec![("redis-0.example", Act::Noisy(Box::new(Act::Answer(vec![Rec::A("redis-0.example", [10, 2, 2, 2])]))))];
    let (result, dns) = lookup(zone, "nameserver 127.0.0.1\n", "redis-0.example");
    assert_eq!(ips(&result.unwrap()), ["10.2.2.2:26379"], "none of the junk's 10.9.9.9 or 10.6.6.6");
    assert_eq!(dns.queries().len(), 1, "answered by the first try");
}

#[test]
fn a_truncated_reply_gives_its_complete_records() {
    let (result, _dns) = lookup(vec![("big.example", Act::TruncatedPartial)], "nameserver 127.0.0.1\n", "big.example");
    assert_eq!(ips(&result.unwrap()), ["10.7.7.7:26379"]);
}

/// Servers that never give a usable answer: the call fails, within its timeout, after at most 3 tries each.
#[test]
fn bad_servers_give_bounded_errors() {
    for act in [Act::Silent, Act::Garbage, Act::WrongId, Act::CutShort, Act::Loop, Act::TruncatedEmpty, Act::ServFail] {
        let dns = FakeDns::serve(UdpSocket::bind("127.0.0.1:0").unwrap(), vec![], act.clone());
        let files = Files::new("", K8S_RESOLV_CONF);
        let start = Instant::now();
        let result =
            files.resolver(dns.addr.port()).resolve("redis-0.redis-endpoints", 26379, Duration::from_millis(600));
        let elapsed = start.elapsed();
        let err = result.unwrap_err();
        assert!(elapsed < BOUND, "{act:?} took {elapsed:?}");
        assert!(matches!(err.kind(), io::ErrorKind::TimedOut | io::ErrorKind::Other), "{act:?}: {err}");
        // A server failure stops the search (it does not prove the name absent): one candidate only.
        let names = dns.names_asked();
        assert!(!names.is_empty() && names.len() <= RETRIES + 1, "{act:?}: {names:?}");
        assert!(names.iter().all(|n| n == "redis-0.redis-endpoints.ns.svc.cluster.local"), "{act:?}: {names:?}");
    }
}

#[test]
fn a_closed_nameserver_port_fails_fast_and_zero_time_fails_at_once() {
    let port = UdpSocket::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let files = Files::new("", "nameserver 127.0.0.1\n");
    let start = Instant::now();
    assert!(files.resolver(port).resolve("redis-0", 26379, T).is_err());
    assert!(start.elapsed() < BOUND);
    let dns = FakeDns::start(vec![]);
    let err = files.resolver(dns.addr.port()).resolve("redis-0", 26379, Duration::ZERO).unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::TimedOut, "{err}");
    assert!(dns.queries().is_empty());
}

#[test]
fn a_failing_server_is_skipped_for_the_next() {
    // Two servers on the same port (resolv.conf has no port syntax): 127.0.0.1 fails, 127.0.0.2 answers.
    let (first, second) = (0..20)
        .find_map(|_| {
            let first = UdpSocket::bind("127.0.0.1:0").ok()?;
            let second = UdpSocket::bind(("127.0.0.2", first.local_addr().ok()?.port())).ok()?;
            Some((first, second))
        })
        .expect("cannot bind 127.0.0.1 and 127.0.0.2 on the same UDP port");
    let port = first.local_addr().unwrap().port();
    let zone = vec![("redis-0.example", Act::Answer(vec![Rec::A("redis-0.example", [10, 8, 8, 8])]))];
    for failure in [Act::ServFail, Act::Silent] {
        let first = FakeDns::serve(first.try_clone().unwrap(), vec![], failure.clone());
        let second = FakeDns::serve(second.try_clone().unwrap(), zone.clone(), Act::Nx);
        let files = Files::new("", "nameserver 127.0.0.1\nnameserver 127.0.0.2\n");
        let result = files.resolver(port).resolve("redis-0.example", 26379, Duration::from_secs(3));
        assert_eq!(ips(&result.unwrap()), ["10.8.8.8:26379"], "{failure:?}");
        assert_eq!((first.queries().len(), second.queries().len()), (1, 1), "{failure:?}");
    }
}

// ---- The response parser --------------------------------------------------------------------------------

fn sample_question(name: &str, qtype: u16) -> Vec<u8> {
    let mut q = encode_name(name);
    q.extend_from_slice(&qtype.to_be_bytes());
    q.extend_from_slice(&CLASS_IN.to_be_bytes());
    q
}

#[test]
fn the_parser_checks_id_qr_and_question() {
    let q = sample_question("x.example", TYPE_A);
    let good = reply(7, 0x8180, &q, "x.example", TYPE_A, &[Rec::A("x.example", [1, 2, 3, 4])]);
    let a = Reply::Addrs(vec![IpAddr::V4(Ipv4Addr::new(1, 2, 3, 4))]);
    assert_eq!(parse_response(&good, 7, "x.example", TYPE_A), Some(a));
    assert_eq!(parse_response(&good, 7, "X.Example", TYPE_A).map(|_| ()), Some(()), "case-insensitive");
    assert_eq!(parse_response(&good, 8, "x.example", TYPE_A), None, "id");
    assert_eq!(parse_response(&good, 7, "y.example", TYPE_A), None, "question");
    assert_eq!(parse_response(&good, 7, "x.example", TYPE_AAAA), None, "question type");
    let mut query = good.clone();
    query[2] &= 0x7f;
    assert_eq!(parse_response(&query, 7, "x.example", TYPE_A), None, "QR bit");
    for cut in 0..good.len() {
        assert_eq!(parse_response(&good[..cut], 7, "x.example", TYPE_A), None, "cut at {cut}");
    }
    let nx = reply(7, 0x8183, &q, "x.example", TYPE_A, &[]);
    assert_eq!(parse_response(&nx, 7, "x.example", TYPE_A), Some(Reply::NoName));
    let refused = reply(7, 0x8185, &q, "x.example", TYPE_A, &[]);
    assert!(matches!(parse_response(&refused, 7, "x.example", TYPE_A), Some(Reply::Failure(_))));
}

#[test]
fn compression_loops_terminate() {
    // A pointer to itself, and two pointers to each other.
    assert_eq!(read_name(&[0xc0, 0x00], 0), None);
    assert_eq!(read_name(&[0xc0, 0x02, 0xc0, 0x00], 0), None);
    // A label, then a pointer back to the start: the name would be endless.
    assert_eq!(read_name(&[1, b'a', 0xc0, 0x00], 0), None);
    // Pointers out of bounds, reserved label types, dots inside labels.
    assert_eq!(read_name(&[0xc0, 0xff], 0), None);
    assert_eq!(read_name(&[0xc0], 0), None);
    assert_eq!(read_name(&[0x40, 0x00], 0), None);
    assert_eq!(read_name(&[3, b'a', b'.', b'b', 0], 0), None);
    // And a good one with a pointer: the end is just after the first pointer.
    assert_eq!(read_name(&[1, b'B', 0, 1, b'a', 0xc0, 0x00], 3), Some(("a.b".to_owned(), 7)));
}

/// Random packets, and random mutations of good ones with the right id and question: never a panic.
#[test]
fn random_packets_never_panic() {
    let q = sample_question("x.example", TYPE_A);
    let good = reply(
        7,
        0x8180,
        &q,
        "x.example",
        TYPE_A,
        &[Rec::Cname("x.example", "y.example"), Rec::A("y.example", [1, 2, 3, 4]), Rec::A("x.example", [5, 6, 7, 8])],
    );
    let mut state: u64 = 0x2545_f491_4f6c_dd1d;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let mut answered = 0;
    for round in 0..30_000u64 {
        let packet = if round % 3 == 0 {
            let mut p = pseudo_random_bytes(next(), 600);
            if p.len() >= 2 {
                p[..2].copy_from_slice(&7u16.to_be_bytes());
            }
            p
        } else {
            let mut p = good.clone();
            for _ in 0..1 + next() % 4 {
                let at = 12 + q.len() + (next() as usize) % (p.len() - 12 - q.len());
                p[at] = next() as u8;
            }
            if next() % 4 == 0 {
                p[2] ^= 0x02; // the TC bit
            }
            if next() % 4 == 0 {
                p.truncate((next() as usize) % (p.len() + 1));
            }
            p
        };
        if parse_response(&packet, 7, "x.example", TYPE_A).is_some() {
            answered += 1;
        }
    }
    assert!(answered > 0, "some mutations stay valid");
}
