//! The protocol document the code cites is in the repository, and every citation resolves.
//!
//! A `§N` or `§N.M` in the sources (src/, tests/, crates/, benches/, fuzz/, examples/,
//! scripts/) and in the top-level documents means section N.M of `docs/protocol.md`, unless it
//! directly follows the name of an outside standard (`RFC 7748 §5`, `FIPS 180-4 §6.2.2`,
//! `FIPS-197 §5.2`).
//! This test finds each such citation and checks that `docs/protocol.md` has a heading of that
//! number; it also checks that no file still points at the protocol notes that used to live
//! outside the repository.

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};

/// Directories walked for citations, relative to the crate root.
const SOURCE_DIRS: &[&str] = &[
    "src", "tests", "crates", "benches", "fuzz", "examples", "scripts", "docs",
];

/// Top-level documents walked for citations.
const TOP_FILES: &[&str] = &["README.md", "FUZZING.md", "PERFORMANCE.md"];

/// Directories never walked: build output, the fuzz corpus (binary inputs), git metadata.
const SKIP_DIRS: &[&str] = &["target", "corpus", "artifacts", "coverage", ".git"];

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Every text file under `dir` (recursively), skipping `SKIP_DIRS`.
fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let name = entry.file_name();
        if path.is_dir() {
            if !SKIP_DIRS.iter().any(|s| name == *s) {
                walk(&path, out);
            }
        } else if path.is_file() {
            out.push(path);
        }
    }
}

/// All files this test reads, with their text (files that are not UTF-8 are skipped).
fn sources() -> Vec<(String, String)> {
    let root = root();
    let mut paths = Vec::new();
    for d in SOURCE_DIRS {
        walk(&root.join(d), &mut paths);
    }
    for f in TOP_FILES {
        paths.push(root.join(f));
    }
    paths.sort();
    paths
        .into_iter()
        .filter_map(|p| {
            let text = fs::read_to_string(&p).ok()?;
            let rel = p.strip_prefix(&root).ok()?.to_string_lossy().into_owned();
            Some((rel, text))
        })
        .collect()
}

/// The section numbers `docs/protocol.md` defines: every heading `## N. Title` or
/// `### N.M Title` (or deeper) gives `N` or `N.M`.
fn doc_sections() -> BTreeSet<String> {
    let doc = fs::read_to_string(root().join("docs/protocol.md")).expect("docs/protocol.md");
    let mut set = BTreeSet::new();
    for line in doc.lines() {
        // A heading is one or more `#` and a space (a line such as `#463).` is not one).
        let Some(rest) = line
            .strip_prefix('#')
            .and_then(|r| r.trim_start_matches('#').strip_prefix(' '))
        else {
            continue;
        };
        let number: String = rest
            .chars()
            .take_while(|c| c.is_ascii_digit() || *c == '.')
            .collect();
        let number = number.trim_end_matches('.');
        if !number.is_empty() {
            set.insert(number.to_owned());
        }
    }
    set
}

/// Whether the text just before a `§` names an outside standard (`RFC 7748 `, `FIPS 180-4 `,
/// `FIPS-197 `), so the section number is that standard's, not ours.
fn cites_outside_standard(before: &str) -> bool {
    let mut words = before.split_whitespace().rev();
    let last = words.next().unwrap_or("");
    let prev = words.next().unwrap_or("");
    let is_id = |w: &str| !w.is_empty() && w.chars().all(|c| c.is_ascii_digit() || c == '-');
    last.starts_with("RFC")
        || last.starts_with("FIPS")
        || ((prev.ends_with("RFC") || prev.ends_with("FIPS")) && is_id(last))
}

/// Every citation of `docs/protocol.md` in `text`: (line number, section number).
fn citations(text: &str) -> Vec<(usize, String)> {
    let mut found = Vec::new();
    for (i, line) in text.lines().enumerate() {
        for (at, _) in line.match_indices('§') {
            let after = line[at + '§'.len_utf8()..].trim_start_matches(' ');
            let number: String = after
                .chars()
                .take_while(|c| c.is_ascii_digit() || *c == '.')
                .collect();
            let number = number.trim_end_matches('.');
            if number.is_empty() || cites_outside_standard(&line[..at]) {
                continue;
            }
            found.push((i + 1, number.to_owned()));
        }
    }
    found
}

#[test]
fn every_section_citation_names_a_heading_of_the_protocol_document() {
    let sections = doc_sections();
    // The document's top-level parts, which the code cites throughout.
    for part in [
        "1", "1.1", "1.5", "1.7", "2", "3", "3.1", "3.2", "3.3", "4", "5", "6",
    ] {
        assert!(
            sections.contains(part),
            "docs/protocol.md lacks section {part}"
        );
    }
    let mut count = 0;
    let mut missing = Vec::new();
    for (path, text) in sources() {
        for (line, number) in citations(&text) {
            count += 1;
            if !sections.contains(&number) {
                missing.push(format!("{path}:{line}: §{number}"));
            }
        }
    }
    assert!(
        missing.is_empty(),
        "citations of sections docs/protocol.md does not have:\n{}",
        missing.join("\n")
    );
    // The code cites the document some 150 times; finding far fewer means the walk broke.
    assert!(
        count > 100,
        "only {count} citations found: is the walk reading the sources?"
    );
}

#[test]
fn no_file_cites_the_protocol_notes_outside_the_repository() {
    // Spelled in two halves so this file does not match itself.
    let stale = [
        format!("{}-protocol.md", "spiped"),
        format!("{}.md", "PROTOCOL"),
    ];
    let mut hits = Vec::new();
    for (path, text) in sources() {
        for (i, line) in text.lines().enumerate() {
            for s in &stale {
                if line.contains(s.as_str()) {
                    hits.push(format!("{path}:{}: {s}", i + 1));
                }
            }
        }
    }
    assert!(
        hits.is_empty(),
        "references to documents that are not in the repository (cite docs/protocol.md):\n{}",
        hits.join("\n")
    );
}

#[test]
fn outside_standards_are_told_apart_from_our_sections() {
    let cites = |s: &str| citations(s).into_iter().map(|(_, n)| n).collect::<Vec<_>>();
    assert_eq!(cites("RFC 7748 §6.1 and ours (§1.5)"), ["1.5"]);
    assert_eq!(
        cites("FIPS 180-4 §5.3.3, FIPS-197 §5.2, spec §3.1"),
        ["3.1"]
    );
    assert_eq!(cites("§1–§2 of the document"), ["1", "2"]);
    assert_eq!(cites("vectors of § 6."), ["6"]);
}
