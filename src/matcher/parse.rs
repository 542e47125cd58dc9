//! List formats: detection and line parsing into entries plus problems with line numbers.
//!
//! Every line is parsed independently; a bad line becomes a [`Problem`] and never stops the
//! rest of the list. Nothing here panics on any input (see the `blocklist_parse` fuzz target).

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::str::FromStr;

use ipnet::IpNet;
use serde::Serialize;

use super::normalize::{clip, normalize_entry, plain_domain_entry};

/// Longest list line considered; longer lines are reported and skipped (a real entry is at most
/// 253 bytes plus hosts/adblock decoration; megabyte lines are junk or attacks).
pub const MAX_LINE_LEN: usize = 4096;
/// Problems kept per list; beyond it they are only counted, so a hostile upload cannot make
/// the report itself unbounded.
pub const MAX_PROBLEMS: usize = 10_000;
/// Widest IPv4 block accepted as a list entry. A pool operator's network is a few /24s at most;
/// a block wider than a /8 (16 M addresses, and `0.0.0.0/0` above all) names a slice of the
/// Internet and would make every benign host that talks to it a `direct_ip` detection.
pub const MIN_PREFIX_V4: u8 = 8;
/// Widest IPv6 block accepted as a list entry: wider than any RIR allocation to a provider
/// (/19 at most), so a shorter prefix (`::/0` above all) names the Internet, not a pool.
pub const MIN_PREFIX_V6: u8 = 16;
/// IPv4-mapped IPv6 (`::ffff:0:0/96`): a block inside it is an IPv4 block and gets the IPv4
/// minimum on top of these 96 bits.
const V4_MAPPED_BITS: u8 = 96;
/// Lines inspected to detect a list's format.
const DETECT_LINES: usize = 200;

/// A list file format.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ListFormat {
    /// One domain (`d`, `*.d`), IP, CIDR or `IP:port` per line.
    Plain,
    /// `0.0.0.0 d1 d2…` / `127.0.0.1 d` hosts file.
    Hosts,
    /// AdBlock/uBlock: `||d^`, `||d^$third-party`, `@@||d^` exceptions.
    Adblock,
    /// dnsmasq: `server=/d/…`, `address=/d/…`, `local=/d/`.
    Dnsmasq,
    /// Domains quoted in detection rules: Suricata/Snort `dns.query`/`tls.sni` contents, Sigma
    /// YAML and KQL string lists. Quoted strings that are not domains are ignored.
    Rules,
}

impl ListFormat {
    pub const ALL: [ListFormat; 5] = [
        ListFormat::Plain,
        ListFormat::Hosts,
        ListFormat::Adblock,
        ListFormat::Dnsmasq,
        ListFormat::Rules,
    ];
    pub fn as_str(self) -> &'static str {
        match self {
            ListFormat::Plain => "plain",
            ListFormat::Hosts => "hosts",
            ListFormat::Adblock => "adblock",
            ListFormat::Dnsmasq => "dnsmasq",
            ListFormat::Rules => "rules",
        }
    }
}

impl fmt::Display for ListFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for ListFormat {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.to_ascii_lowercase().as_str() {
            "plain" | "domains" | "txt" => Ok(ListFormat::Plain),
            "hosts" => Ok(ListFormat::Hosts),
            "adblock" | "ublock" | "abp" => Ok(ListFormat::Adblock),
            "dnsmasq" => Ok(ListFormat::Dnsmasq),
            "rules" | "suricata" | "sigma" | "yaml" => Ok(ListFormat::Rules),
            _ => Err(format!(
                "unknown list format `{}` (expected plain, hosts, adblock, dnsmasq or rules)",
                clip(s)
            )),
        }
    }
}

/// What an entry covers.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Target {
    /// A normalised domain: covers itself and every subdomain.
    Domain(String),
    /// An address or a CIDR block (a single address is a /32 or /128).
    Net(IpNet),
    /// A pool endpoint: address and port.
    Endpoint(IpAddr, u16),
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Target::Domain(d) => f.write_str(d),
            Target::Net(n) if n.prefix_len() == n.max_prefix_len() => write!(f, "{}", n.addr()),
            Target::Net(n) => write!(f, "{n}"),
            Target::Endpoint(ip, port) => write!(f, "{}", SocketAddr::new(*ip, *port)),
        }
    }
}

/// One parsed list entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    pub target: Target,
    /// An exception (`@@||d^`): allows rather than blocks.
    pub exception: bool,
    /// 1-based line number.
    pub line: u32,
}

/// How bad a problem is: errors make `lint` fail; warnings are skipped lines that are valid in
/// their format but mean nothing at the DNS level (cosmetic or URL rules).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    Warning,
    Error,
}

/// A problem found on one line.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Problem {
    pub line: u32,
    pub severity: Severity,
    pub message: String,
}

/// The result of parsing one list text.
#[derive(Clone, Debug, Default)]
pub struct ParsedList {
    pub format: Option<ListFormat>,
    pub entries: Vec<Entry>,
    /// The first [`MAX_PROBLEMS`] problems, in line order.
    pub problems: Vec<Problem>,
    /// Invalid lines (errors), including those beyond [`MAX_PROBLEMS`].
    pub invalid: u64,
    /// Skipped lines (warnings: rules with no DNS meaning), including those beyond the cap.
    pub skipped: u64,
    /// Non-blank, non-comment lines seen.
    pub rule_lines: u64,
}

impl ParsedList {
    pub fn errors(&self) -> impl Iterator<Item = &Problem> {
        self.problems
            .iter()
            .filter(|p| p.severity == Severity::Error)
    }

    fn problem(&mut self, line: u32, severity: Severity, message: String) {
        match severity {
            Severity::Error => self.invalid += 1,
            Severity::Warning => self.skipped += 1,
        }
        if self.problems.len() < MAX_PROBLEMS {
            self.problems.push(Problem {
                line,
                severity,
                message,
            });
        }
    }
}

/// Guesses a list's format from its first rule lines.
pub fn detect_format(text: &str) -> ListFormat {
    let (mut hosts, mut adblock, mut dnsmasq, mut plain, mut rules) =
        (0u32, 0u32, 0u32, 0u32, 0u32);
    for line in text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !is_comment(l))
        .take(DETECT_LINES)
    {
        if RULE_STARTS.iter().any(|k| line.starts_with(k)) {
            rules += 1;
        } else if line.starts_with("||") || line.starts_with("@@") || line.contains("##") {
            adblock += 1;
        } else if DNSMASQ_KEYS.iter().any(|k| line.starts_with(k)) {
            dnsmasq += 1;
        } else {
            let mut it = line.split_whitespace();
            let first_is_ip = it.next().is_some_and(|t| t.parse::<IpAddr>().is_ok());
            if first_is_ip && it.next().is_some() {
                hosts += 1;
            } else {
                plain += 1;
            }
        }
    }
    let max = hosts.max(adblock).max(dnsmasq).max(plain);
    // One rule header or YAML detection key marks a rule file: its other lines look "plain".
    if rules > 0 {
        ListFormat::Rules
    } else if max == 0 || plain == max {
        ListFormat::Plain
    } else if adblock == max {
        ListFormat::Adblock
    } else if hosts == max {
        ListFormat::Hosts
    } else {
        ListFormat::Dnsmasq
    }
}

/// Line starts that mark a detection-rule file (Suricata/Snort rules, Sigma and Sentinel YAML).
const RULE_STARTS: [&str; 9] = [
    "alert ",
    "drop ",
    "reject ",
    "pass ",
    "detection:",
    "logsource:",
    "query: |",
    "query:",
    "title:",
];

const DNSMASQ_KEYS: [&str; 4] = ["server=/", "address=/", "local=/", "ipset=/"];

fn is_comment(line: &str) -> bool {
    (line.starts_with('#') && !line.starts_with("##") && !line.starts_with("#@#"))
        || line.starts_with('!')
        || line.starts_with(';')
        || (line.starts_with('[') && line.ends_with(']') && !line.contains(':'))
}

/// Parses a list text. `format: None` detects it. Handles BOM, CRLF, comments (`#`, `!`, `;`).
pub fn parse_list(text: &str, format: Option<ListFormat>) -> ParsedList {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let format = format.unwrap_or_else(|| detect_format(text));
    let mut out = ParsedList {
        format: Some(format),
        ..ParsedList::default()
    };
    for (i, raw) in text.split('\n').enumerate() {
        let line_no = u32::try_from(i.saturating_add(1)).unwrap_or(u32::MAX);
        let line = raw.trim();
        if line.is_empty() || is_comment(line) {
            continue;
        }
        out.rule_lines += 1;
        if line.len() > MAX_LINE_LEN {
            out.problem(
                line_no,
                Severity::Error,
                format!("line longer than {MAX_LINE_LEN} bytes"),
            );
            continue;
        }
        if line.contains('\0') {
            out.problem(line_no, Severity::Error, "NUL byte in line".into());
            continue;
        }
        match format {
            ListFormat::Adblock => parse_adblock(line, line_no, &mut out),
            ListFormat::Dnsmasq => parse_dnsmasq(line, line_no, &mut out),
            ListFormat::Rules => parse_rules(line, line_no, &mut out),
            ListFormat::Plain | ListFormat::Hosts => parse_plain_or_hosts(line, line_no, &mut out),
        }
    }
    out
}

/// Strips an inline ` # comment`.
fn strip_inline_comment(line: &str) -> &str {
    match line.find(" #").or_else(|| line.find("\t#")) {
        Some(i) => line.get(..i).unwrap_or(line).trim_end(),
        None => line,
    }
}

fn push_domain(out: &mut ParsedList, raw: &str, line: u32, exception: bool) {
    match normalize_entry(raw) {
        Ok(d) => out.entries.push(Entry {
            target: Target::Domain(d),
            exception,
            line,
        }),
        Err(m) => out.problem(line, Severity::Error, m),
    }
}

/// Records what [`parse_ip_token`] made of a token: an entry, or the line's error.
fn push_ip(out: &mut ParsedList, r: Result<Target, String>, line: u32, exception: bool) {
    match r {
        Ok(target) => out.entries.push(Entry {
            target,
            exception,
            line,
        }),
        Err(m) => out.problem(line, Severity::Error, m),
    }
}

/// Parses an address, CIDR block or `IP:port` / `[v6]:port` token.
pub fn parse_ip_token(tok: &str) -> Option<Result<Target, String>> {
    if let Ok(ip) = tok.parse::<IpAddr>() {
        return Some(Ok(Target::Net(IpNet::from(ip))));
    }
    if let Ok(sa) = tok.parse::<SocketAddr>() {
        if sa.port() == 0 {
            return Some(Err(format!("port 0 in endpoint `{}`", clip(tok))));
        }
        return Some(Ok(Target::Endpoint(sa.ip(), sa.port())));
    }
    if let Some((addr, len)) = tok.split_once('/') {
        if addr.parse::<IpAddr>().is_ok() {
            return Some(match tok.parse::<IpNet>() {
                // Store the network address so `10.1.2.3/8` and `10.0.0.0/8` are one entry.
                Ok(n) => check_prefix(n.trunc()).map(Target::Net),
                Err(_) => Err(format!("invalid CIDR prefix length `{}`", clip(len))),
            });
        }
    }
    // Looks numeric (digits, dots, colons) but is no address: a typo, not a domain.
    if tok
        .bytes()
        .all(|b| b.is_ascii_digit() || b == b'.' || b == b':' || b == b'/')
    {
        return Some(Err(format!("invalid IP address `{}`", clip(tok))));
    }
    None
}

/// Refuses blocks wider than [`MIN_PREFIX_V4`] / [`MIN_PREFIX_V6`] (IPv4-mapped IPv6 blocks
/// count as IPv4): such an entry would match a good part of the Internet.
pub fn check_prefix(n: IpNet) -> Result<IpNet, String> {
    let (min, family) = match n {
        IpNet::V4(_) => (MIN_PREFIX_V4, "IPv4"),
        IpNet::V6(v6) => {
            let mapped_space = std::net::Ipv6Addr::new(0, 0, 0, 0, 0, 0xffff, 0, 0);
            let inside_mapped =
                ipnet::Ipv6Net::new(mapped_space, V4_MAPPED_BITS).is_ok_and(|m| m.contains(&v6));
            if inside_mapped {
                (V4_MAPPED_BITS + MIN_PREFIX_V4, "IPv4-mapped IPv6")
            } else {
                (MIN_PREFIX_V6, "IPv6")
            }
        }
    };
    if n.prefix_len() < min {
        return Err(format!(
            "CIDR block `{n}` is too wide for a pool entry: {family} blocks need a prefix of /{min} or longer"
        ));
    }
    Ok(n)
}

fn parse_plain_or_hosts(line: &str, line_no: u32, out: &mut ParsedList) {
    // Most lines of a large list are a bare, already normalised domain: take those without the
    // token split, the address parses and the copy-and-lowercase (same entry, no problem).
    if let Some(d) = plain_domain_entry(line) {
        out.entries.push(Entry {
            target: Target::Domain(d),
            exception: false,
            line: line_no,
        });
        return;
    }
    parse_plain_or_hosts_general(line, line_no, out);
}

/// The plain/hosts rule for any line (what [`plain_domain_entry`] shortcuts).
fn parse_plain_or_hosts_general(line: &str, line_no: u32, out: &mut ParsedList) {
    let line = strip_inline_comment(line);
    let mut toks = line.split_whitespace();
    let Some(first) = toks.next() else {
        return;
    };
    let rest: Vec<&str> = toks.collect();
    match parse_ip_token(first) {
        Some(Ok(Target::Net(n))) if !rest.is_empty() && n.prefix_len() == n.max_prefix_len() => {
            // hosts line: the address is a sink, the names are the entries.
            for name in rest {
                if HOSTS_BOILERPLATE.contains(&name) || name.parse::<IpAddr>().is_ok() {
                    continue;
                }
                push_domain(out, name, line_no, false);
            }
        }
        Some(Ok(t)) => {
            if !rest.is_empty() {
                out.problem(
                    line_no,
                    Severity::Error,
                    format!("unexpected text after `{}`", clip(first)),
                );
                return;
            }
            out.entries.push(Entry {
                target: t,
                exception: false,
                line: line_no,
            });
        }
        Some(Err(m)) => out.problem(line_no, Severity::Error, m),
        None => {
            if first.contains("://") || first.contains('/') {
                out.problem(
                    line_no,
                    Severity::Error,
                    format!("URL or path, not a domain: `{}`", clip(first)),
                );
                return;
            }
            if !rest.is_empty() {
                out.problem(
                    line_no,
                    Severity::Error,
                    format!("unexpected text after `{}`", clip(first)),
                );
                return;
            }
            // `pool.example:3333`: a pool endpoint by name; DNS matching ignores the port.
            if let Some((host, port)) = first.rsplit_once(':') {
                if !port.is_empty()
                    && port.bytes().all(|b| b.is_ascii_digit())
                    && !host.contains(':')
                {
                    out.problem(
                        line_no,
                        Severity::Warning,
                        format!(
                            "port `{}` ignored for name entry `{}`",
                            clip(port),
                            clip(host)
                        ),
                    );
                    push_domain(out, host, line_no, false);
                    return;
                }
            }
            push_domain(out, first, line_no, false);
        }
    }
}

/// Names that hosts files carry for the loopback and broadcast addresses.
const HOSTS_BOILERPLATE: [&str; 10] = [
    "localhost",
    "localhost.localdomain",
    "local",
    "broadcasthost",
    "ip6-localhost",
    "ip6-loopback",
    "ip6-localnet",
    "ip6-mcastprefix",
    "ip6-allnodes",
    "ip6-allrouters",
];

/// AdBlock options that keep a `||d^` rule a whole-domain block (anything else narrows it to
/// some requests or pages, which a DNS-level list cannot express).
const ADBLOCK_DOMAIN_OPTIONS: [&str; 18] = [
    "third-party",
    "3p",
    "first-party",
    "1p",
    "~third-party",
    "important",
    "all",
    "document",
    "doc",
    "script",
    "websocket",
    "xmlhttprequest",
    "xhr",
    "subdocument",
    "frame",
    "popup",
    "other",
    "match-case",
];

fn parse_adblock(line: &str, line_no: u32, out: &mut ParsedList) {
    if line.contains("##") || line.contains("#@#") || line.contains("#?#") || line.contains("#$#") {
        out.problem(line_no, Severity::Warning, "cosmetic rule skipped".into());
        return;
    }
    let (exception, rule) = match line.strip_prefix("@@") {
        Some(r) => (true, r),
        None => (false, line),
    };
    let (pattern, options) = match rule.rsplit_once('$') {
        Some((p, o)) if !p.is_empty() => (p, Some(o)),
        _ => (rule, None),
    };
    if let Some(opts) = options {
        if let Some(bad) = opts
            .split(',')
            .map(str::trim)
            .find(|o| !ADBLOCK_DOMAIN_OPTIONS.contains(o))
        {
            out.problem(
                line_no,
                Severity::Warning,
                format!(
                    "rule with option `{}` is not a whole-domain rule; skipped",
                    clip(bad)
                ),
            );
            return;
        }
    }
    let host = if let Some(h) = pattern.strip_prefix("||") {
        let h = h
            .strip_suffix('^')
            .or_else(|| h.strip_suffix("^|"))
            .unwrap_or(h);
        if h.contains(['/', '^', '*', '?', '=', '|', ':']) {
            out.problem(line_no, Severity::Warning, "URL rule skipped".into());
            return;
        }
        h
    } else if pattern.starts_with('|')
        || pattern.starts_with('/')
        || pattern.contains(['/', '^', '*', '?', '=', '$'])
    {
        out.problem(
            line_no,
            Severity::Warning,
            "URL or pattern rule skipped".into(),
        );
        return;
    } else {
        // uBlock treats a bare hostname line as a hostname filter.
        if let Some(r) = parse_ip_token(pattern) {
            push_ip(out, r, line_no, exception);
            return;
        }
        if !pattern.contains('.') {
            out.problem(line_no, Severity::Warning, "keyword rule skipped".into());
            return;
        }
        pattern
    };
    // `||203.0.113.9^`: an address rule.
    if let Some(r) = parse_ip_token(host) {
        push_ip(out, r, line_no, exception);
        return;
    }
    push_domain(out, host, line_no, exception);
}

fn parse_dnsmasq(line: &str, line_no: u32, out: &mut ParsedList) {
    let Some(key) = DNSMASQ_KEYS.iter().find(|k| line.starts_with(**k)) else {
        if line.contains('=') {
            out.problem(
                line_no,
                Severity::Warning,
                "dnsmasq option without a domain skipped".into(),
            );
        } else {
            // Lists sold as "dnsmasq" often mix in bare domains.
            parse_plain_or_hosts(line, line_no, out);
        }
        return;
    };
    let rest = line.get(key.len()..).unwrap_or("");
    // `server=/d1/d2/target`: the last field (after the final `/`) is the upstream or address.
    let Some((domains, _target)) = rest.rsplit_once('/') else {
        out.problem(line_no, Severity::Error, "missing closing `/`".into());
        return;
    };
    let mut any = false;
    for d in domains.split('/').filter(|d| !d.is_empty()) {
        any = true;
        push_domain(out, d, line_no, false);
    }
    if !any {
        out.problem(line_no, Severity::Error, "no domain between slashes".into());
    }
}

/// Domains in quotes on a rule line. A Suricata rule counts only when it inspects a DNS name
/// (`dns.query`, `dns_query`, `tls.sni`); hex-escaped contents (`|03|com`) are not domains.
fn parse_rules(line: &str, line_no: u32, out: &mut ParsedList) {
    let suricata = ["alert ", "drop ", "reject ", "pass "]
        .iter()
        .any(|k| line.starts_with(k));
    if suricata
        && !["dns.query", "dns_query", "tls.sni", "tls_sni"]
            .iter()
            .any(|k| line.contains(k))
    {
        out.problem(
            line_no,
            Severity::Warning,
            "rule without a DNS query or TLS SNI name skipped".into(),
        );
        return;
    }
    let mut rest = line;
    while let Some(start) = rest.find(['"', '\'']) {
        let quote = rest.as_bytes().get(start).copied().unwrap_or(b'"');
        let after = rest.get(start + 1..).unwrap_or("");
        let Some(end) = after.find(char::from(quote)) else {
            break;
        };
        let s = after.get(..end).unwrap_or("");
        rest = after.get(end + 1..).unwrap_or("");
        if looks_like_domain(s) {
            push_domain(out, s, line_no, false);
        }
    }
}

/// A quoted string worth taking as a domain: no spaces or rule syntax, two or more labels, and
/// an alphabetic last label (so `1.2` and `mining.subscribe`-style method names with digits do
/// not sneak in; method names are still possible, which is why rules are a separate format).
fn looks_like_domain(s: &str) -> bool {
    let s = s.trim_matches('.');
    if s.len() < 4 || s.contains(|c: char| c.is_whitespace() || "|;:/\\=*()[]{}<>,$^%".contains(c))
    {
        return false;
    }
    let Some((_, tld)) = s.rsplit_once('.') else {
        return false;
    };
    tld.len() >= 2
        && tld.chars().all(|c| c.is_alphabetic() || c == '-')
        && normalize_entry(s).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn domains(p: &ParsedList) -> Vec<String> {
        p.entries.iter().map(|e| e.target.to_string()).collect()
    }

    #[test]
    fn formats() {
        let p = parse_list(
            "\u{feff}# c\r\n0.0.0.0 a.example b.example\r\n127.0.0.1 localhost\r\n",
            None,
        );
        assert_eq!(p.format, Some(ListFormat::Hosts));
        assert_eq!(domains(&p), ["a.example", "b.example"]);
        let p = parse_list(
            "! t\n||x.example^\n@@||y.example^$third-party\n##.ad\n||z.example/path\n",
            None,
        );
        assert_eq!(p.format, Some(ListFormat::Adblock));
        assert_eq!(domains(&p), ["x.example", "y.example"]);
        assert!(p.entries[1].exception);
        assert_eq!(p.skipped, 2);
        let p = parse_list(
            "server=/a.example/b.example/127.0.0.1\naddress=/c.example/0.0.0.0\n",
            None,
        );
        assert_eq!(p.format, Some(ListFormat::Dnsmasq));
        assert_eq!(domains(&p), ["a.example", "b.example", "c.example"]);
        let p = parse_list(
            "*.w.example\n198.51.100.7\n203.0.113.9/24\n198.51.100.8:3333\n[2001:db8::1]:443\n",
            None,
        );
        assert_eq!(
            domains(&p),
            [
                "w.example",
                "198.51.100.7",
                "203.0.113.0/24",
                "198.51.100.8:3333",
                "[2001:db8::1]:443"
            ]
        );
        let p = parse_list(
            "alert dns any any -> any any (msg:\"x\"; dns.query; content:\".pool-r.example\"; endswith; content:\"|03|com\";)\n\
             alert tcp any any -> any any (msg:\"a.example\"; content:\"mining.subscribe\";)\n    - 'sigma.example'\n",
            None,
        );
        assert_eq!(p.format, Some(ListFormat::Rules));
        assert_eq!(domains(&p), ["pool-r.example", "sigma.example"]);
        let p = parse_list("bad..example\n1.2.3.999\nok.example # fine\n", None);
        assert_eq!(p.invalid, 2);
        assert_eq!(p.problems[0].line, 1);
        assert_eq!(p.problems[1].line, 2);
        assert_eq!(domains(&p), ["ok.example"]);
    }

    /// The plain-line shortcut (issue #16) yields exactly what the general rule yields, and
    /// only where the general rule yields one domain and no problem: bare domains, addresses,
    /// the numeric typo, decorated, uppercase, IDN, over-long and single-label lines, and every
    /// one-byte edit of a few of them.
    #[test]
    fn plain_shortcut_agrees_with_the_general_rule() {
        let long_label = format!("{}.example", "a".repeat(64));
        let long_name = format!("{}.example", ["abcdefghij"; 25].join("."));
        let mut lines: Vec<String> = [
            "pool.example",
            "2miners.com",
            "a-b_c.9x.example",
            "1.2.3.4",
            "1.2.3.999",
            "10.0.0.0",
            "123.456",
            "x.1",
            "1.x",
            "ex",
            "_x",
            "a..b",
            ".a.example",
            "a.example.",
            "*.a.example",
            "A.Example",
            "bücher.example",
            "a.example:3333",
            "a.example # c",
            "a.example b.example",
            "http://a.example",
            "a.example/x",
            "-",
            "a.-",
            "0.0.0.0",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        lines.push(long_label);
        lines.push(long_name.clone());
        lines.push(long_name[..253].trim_end_matches('.').to_string());
        for seed in ["pool.example", "1.2.3.4", "ab.cd"] {
            for i in 0..seed.len() {
                for c in [
                    b'.', b'0', b'z', b'Z', b'-', b':', b'/', b' ', b'*', b'#', 0xc3,
                ] {
                    let mut b = seed.as_bytes().to_vec();
                    b[i] = c;
                    if let Ok(s) = String::from_utf8(b) {
                        lines.push(s);
                    }
                }
            }
        }
        let mut taken = 0;
        for line in &lines {
            let mut general = ParsedList::default();
            parse_plain_or_hosts_general(line, 7, &mut general);
            match plain_domain_entry(line) {
                Some(d) => {
                    taken += 1;
                    assert!(
                        general.problems.is_empty(),
                        "{line:?}: {:?}",
                        general.problems
                    );
                    assert_eq!(
                        general.entries,
                        [Entry {
                            target: Target::Domain(d),
                            exception: false,
                            line: 7
                        }],
                        "{line:?}"
                    );
                }
                None => {
                    let one_domain = general.problems.is_empty()
                        && matches!(general.entries.as_slice(), [e] if matches!(&e.target, Target::Domain(d) if d == line));
                    // Every line that is already its own normalised entry is taken.
                    assert!(!one_domain, "{line:?} left to the general rule");
                }
            }
        }
        assert!(taken >= 10, "the shortcut took only {taken} lines");
    }
}
