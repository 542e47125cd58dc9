//! What a name lookup costs, by kind of name (issue #16, packet path fourth pass): the hash
//! walk (production since that pass) and the reference automaton it replaced, each on the
//! same names, for callgrind's per-function counts:
//!
//! `valgrind --tool=callgrind cargo-built/examples/name_cost LIST.txt`, then
//! `callgrind_annotate --inclusive=yes` on the `walk_*` / `automaton_*` / `matcher_*`
//! functions. Each is called once with 100 000 names of one kind:
//!
//! * `listed`: `x<i>.<entry>` (a hit),
//! * `near`: an unlisted name the tail gate lets through (`q<i>.` + the last three labels of
//!   an entry of four labels or more, kept only when no entry covers it): the walk's and the
//!   automaton's own miss cost,
//! * `other`: `h<i>.d<i>.net`, unlisted and rejected by the gate in `matcher_other` (the
//!   lookup the scan does for nearly every name).
//!
//! Both structures answer every name the same (checked here; the program exits non-zero
//! otherwise). The gate runs in front of both in the scan, so for `listed` and `near` the
//! difference between `walk_*` and `automaton_*` is the difference per lookup.

// A test/bench/example fails loudly: unwrap/expect/indexing are allowed here (Cargo.toml [lints]).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use std::hint::black_box;
use std::path::PathBuf;

use poolwatch::matcher::{Automaton, Blocklists, HashWalk};

const NAMES: usize = 100_000;

#[inline(never)]
fn walk_listed(w: &HashWalk, names: &[String]) -> usize {
    names
        .iter()
        .filter(|n| w.find(black_box(n)).is_some())
        .count()
}
#[inline(never)]
fn automaton_listed(a: &Automaton, names: &[String]) -> usize {
    names
        .iter()
        .filter(|n| a.find(black_box(n)).is_some())
        .count()
}
#[inline(never)]
fn walk_near(w: &HashWalk, names: &[String]) -> usize {
    names
        .iter()
        .filter(|n| w.find(black_box(n)).is_some())
        .count()
}
#[inline(never)]
fn automaton_near(a: &Automaton, names: &[String]) -> usize {
    names
        .iter()
        .filter(|n| a.find(black_box(n)).is_some())
        .count()
}
#[inline(never)]
fn matcher_other(b: &Blocklists, names: &[String]) -> usize {
    names
        .iter()
        .filter(|n| b.match_name(black_box(n)).is_some())
        .count()
}
#[inline(never)]
fn matcher_near(b: &Blocklists, names: &[String]) -> usize {
    names
        .iter()
        .filter(|n| b.match_name(black_box(n)).is_some())
        .count()
}

fn main() {
    let list = PathBuf::from(std::env::args().nth(1).expect("usage: name_cost LIST.txt"));
    let b = Blocklists::load(&[list]).expect("list loads");
    let entries: Vec<&str> = b.name_entries().iter().map(|h| h.entry.as_str()).collect();
    let walk = HashWalk::new(entries.iter().copied());
    let ac = Automaton::new(entries.iter().copied()).expect("automaton builds");

    let listed: Vec<String> = (0..NAMES)
        .map(|i| format!("x{i}.{}", entries[i % entries.len()]))
        .collect();
    let long: Vec<&str> = entries
        .iter()
        .copied()
        .filter(|e| e.matches('.').count() >= 3)
        .collect();
    let mut near = Vec::with_capacity(NAMES);
    let mut i = 0usize;
    while near.len() < NAMES && !long.is_empty() && i < 100 * NAMES {
        let e = long[i % long.len()];
        let tail: Vec<&str> = e.rsplitn(4, '.').take(3).collect();
        let n = format!("q{i}.{}.{}.{}", tail[2], tail[1], tail[0]);
        if ac.find(&n).is_none() {
            near.push(n);
        }
        i += 1;
    }
    let other: Vec<String> = (0..NAMES).map(|i| format!("h{i}.d{i}.net")).collect();

    let counts = [
        ("walk_listed", walk_listed(&walk, &listed)),
        ("automaton_listed", automaton_listed(&ac, &listed)),
        ("walk_near", walk_near(&walk, &near)),
        ("automaton_near", automaton_near(&ac, &near)),
        ("matcher_near", matcher_near(&b, &near)),
        ("matcher_other", matcher_other(&b, &other)),
    ];
    println!(
        "{} entries, {} listed / {} near / {} other names",
        entries.len(),
        listed.len(),
        near.len(),
        other.len()
    );
    for (what, n) in counts {
        println!("{what}: {n} hits");
    }
    for n in listed.iter().chain(&near).chain(&other) {
        if walk.find(n) != ac.find(n) {
            eprintln!("walk and automaton disagree on {n}");
            std::process::exit(1);
        }
    }
}
