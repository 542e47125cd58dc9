//! Issue #16, packet path fourth pass: the name set is the hash walk behind the tail gate. The
//! differential test below builds real `Blocklists` (plain, hosts and AdBlock lists, allow
//! lists and `@@` exceptions, wildcards, IDN, duplicates across lists) and checks that every
//! answer — the `ListHit` reported (list, entry, category, line) and the allow rule — is the
//! one the reference automaton gives over the same entries.

use poolwatch::matcher::{Automaton, Blocklists, ListFormat, ListSource};
use poolwatch::model::{Category, ListHit};

struct Lcg(u64);
impl Lcg {
    fn below(&mut self, n: usize) -> usize {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        ((self.0 >> 33) % n as u64) as usize
    }
}

const LABELS: &[&str] = &[
    "pool",
    "xmr",
    "a",
    "ab",
    "b",
    "com",
    "org",
    "net",
    "moneroocean",
    "stream",
    "x-1",
    "9",
    "bücher",
    "xn--bcher-kva",
    "例え",
];

fn name(r: &mut Lcg, labels: usize) -> String {
    (0..labels)
        .map(|_| LABELS[r.below(LABELS.len())])
        .collect::<Vec<_>>()
        .join(".")
}

/// One list's text in `format`, and the names it was written from.
fn list(r: &mut Lcg, format: ListFormat, n: usize, out: &mut Vec<String>) -> String {
    let mut text = String::new();
    for _ in 0..n {
        let labels = 2 + r.below(3);
        let d = name(r, labels);
        let line = match (format, r.below(4)) {
            (ListFormat::Hosts, _) => format!("0.0.0.0 {d}"),
            (ListFormat::Adblock, 0) => format!("@@||{d}^"),
            (ListFormat::Adblock, _) => format!("||{d}^"),
            (_, 0) => format!("*.{}", d.to_uppercase()),
            (_, 1) => format!("{d}."),
            _ => d.clone(),
        };
        text.push_str(&line);
        text.push('\n');
        out.push(d);
    }
    text
}

fn key(h: &ListHit) -> (&str, &str, Category, u64) {
    (h.list.as_str(), h.entry.as_str(), h.category, h.line as u64)
}

#[test]
fn walk_gives_the_automatons_list_hits() {
    let mut r = Lcg(7);
    let mut compared = 0usize;
    let mut hits = 0usize;
    for round in 0..30 {
        let mut written = Vec::new();
        let n = 1 + r.below(60);
        let sources = vec![
            ListSource::memory(
                "plain",
                Category::Pool,
                Some(ListFormat::Plain),
                &list(&mut r, ListFormat::Plain, n, &mut written),
            ),
            ListSource::memory(
                "hosts",
                Category::MinerProxy,
                Some(ListFormat::Hosts),
                &list(&mut r, ListFormat::Hosts, n, &mut written),
            ),
            ListSource::memory(
                "adblock",
                Category::BrowserMiner,
                Some(ListFormat::Adblock),
                &list(&mut r, ListFormat::Adblock, n, &mut written),
            ),
            ListSource::memory(
                "allow",
                Category::Allow,
                Some(ListFormat::Plain),
                &list(&mut r, ListFormat::Plain, 1 + n / 4, &mut written),
            ),
        ];
        let b = Blocklists::build(sources).unwrap().0;
        assert_eq!(b.stats().engine, "hash-walk");
        let entries = b.name_entries();
        let reference = Automaton::new(entries.iter().map(|h| h.entry.as_str())).unwrap();
        let mut names: Vec<String> = Vec::new();
        for h in entries {
            let e = &h.entry;
            names.extend([
                e.clone(),
                format!("{e}."),
                format!("W.{}", e.to_ascii_uppercase()),
                format!("not{e}"),
                format!("{e}.evil.example"),
                e.split_once('.')
                    .map_or(String::new(), |(_, t)| t.to_string()),
            ]);
        }
        for d in &written {
            names.push(d.clone());
            names.push(format!("sub.{d}"));
        }
        for _ in 0..100 {
            let labels = 1 + r.below(5);
            names.push(name(&mut r, labels));
        }
        for q in &names {
            // The reference answer: the automaton over the punycode name the matcher sees.
            let ascii = if q.is_ascii() {
                Some(q.clone())
            } else {
                idna::domain_to_ascii(q.strip_suffix('.').unwrap_or(q)).ok()
            };
            let want = ascii
                .as_deref()
                .and_then(|a| reference.find(a))
                .map(|i| &entries[i]);
            let got = b.explain_name(q);
            assert_eq!(got.map(key), want.map(key), "round {round}: explain {q:?}");
            let blocked = want.filter(|h| h.category != Category::Allow);
            assert_eq!(
                b.match_name(q).map(key),
                blocked.map(key),
                "round {round}: {q:?}"
            );
            assert_eq!(
                b.match_name_bytes(q.as_bytes()).map(key),
                blocked.map(key),
                "round {round}: bytes {q:?}"
            );
            compared += 1;
            hits += usize::from(blocked.is_some());
        }
    }
    assert!(
        compared > 10_000 && hits > 1_000,
        "{compared} names, {hits} hits"
    );
}
