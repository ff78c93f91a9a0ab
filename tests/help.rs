//! The command line explains itself: `spiperelay --help`, `spiperelay help [COMMAND]` and
//! `spiperelay COMMAND --help` list every option of the parsers' option tables, and so does the
//! man page `dist/man/spiperelay.1`; the `spiped` and `spipe` personalities keep their programs'
//! exact output; `spiperelay spipe` names the cause of a failure before spipe's own line.
//! Every run is bounded (10 s).

mod bin_common;

use std::ffi::OsString;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use bin_common::{
    Output, SPIPE, TempDir, args, have_spiped, have_tool, relay_bin, relay_is_ours, run_bounded,
    spiped_bin,
};
use spiperelay::cli::help::{COMMANDS, ENVIRONMENT, HELP_WIDTH, OptDoc};
use spiperelay::cli::spipe::SPIPE_OPTIONS;
use spiperelay::cli::spiped::DAEMON_OPTIONS;
use spiperelay::cli::{GetoptError, SpipeArgs, SpipeArgsError, SpipedArgs, SpipedArgsError};

const BOUND: Duration = Duration::from_secs(10);

const MAN_PAGE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/dist/man/spiperelay.1");

fn run(a: &[&str]) -> Output {
    run_bounded(&relay_bin(), &args(a.iter().copied()), b"", BOUND)
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Every option of every command, with the command's name.
fn all_options() -> Vec<(&'static str, &'static OptDoc)> {
    COMMANDS
        .iter()
        .flat_map(|c| c.options.iter().map(move |o| (c.name, o)))
        .collect()
}

/// The man page as text a reader sees: roff's `\-` as `-`, font changes removed.
fn man_text() -> String {
    let roff = std::fs::read_to_string(MAN_PAGE).expect("dist/man/spiperelay.1");
    roff.replace("\\-", "-")
        .replace("\\fB", "")
        .replace("\\fI", "")
        .replace("\\fR", "")
        .replace("\\fP", "")
}

/// A sample argument for an option that takes one, valid for the parser's value checks.
fn sample_arg(o: &OptDoc) -> &'static str {
    match o.arg {
        "ADDR" => "/tmp/x.sock",
        "N" => "2",
        "SECS" => "5",
        "USER[:GROUP]" => "0:0",
        _ => "/tmp/x",
    }
}

#[test]
fn the_parsers_accept_exactly_the_options_their_tables_document() {
    // Each documented option is accepted (it may fail later for a missing -e/-d etc., never as
    // an illegal option) ...
    for o in DAEMON_OPTIONS {
        let mut a = vec![o.spec.name];
        if o.spec.takes_arg {
            a.push(sample_arg(o));
        }
        let r = SpipedArgs::parse(args(a.iter().copied()));
        assert!(
            !matches!(
                r,
                Err(SpipedArgsError::Getopt(GetoptError::IllegalOption(_)))
            ),
            "daemon option {} is documented but refused: {r:?}",
            o.spec.name
        );
    }
    for o in SPIPE_OPTIONS {
        let mut a = vec![o.spec.name];
        if o.spec.takes_arg {
            a.push(sample_arg(o));
        }
        let r = SpipeArgs::parse(args(a.iter().copied()));
        assert!(
            !matches!(
                r,
                Err(SpipeArgsError::Getopt(GetoptError::IllegalOption(_)))
            ),
            "spipe option {} is documented but refused: {r:?}",
            o.spec.name
        );
    }
    // ... and an undocumented one is not.
    for name in ["--help", "-h", "--frobnicate", "-x"] {
        assert!(matches!(
            SpipedArgs::parse(args([name])),
            Err(SpipedArgsError::Getopt(GetoptError::IllegalOption(_)))
        ));
        assert!(matches!(
            SpipeArgs::parse(args([name])),
            Err(SpipeArgsError::Getopt(GetoptError::IllegalOption(_)))
        ));
    }
}

#[test]
fn every_option_is_in_the_help_and_the_man_page() {
    let out = run(&["--help"]);
    assert_eq!(out.code(), Some(0), "--help: {out:?}");
    let help = stdout(&out);
    let man = man_text();
    for (command, o) in all_options() {
        let line = format!("  {}", o.label());
        assert!(help.contains(&line), "{command} {line:?} not in --help");
        assert!(
            help.contains(o.help),
            "{command} {:?} not in --help",
            o.help
        );
        assert!(
            man.contains(o.spec.name),
            "{command} {} not in the man page",
            o.spec.name
        );
        if !o.default.is_empty() && o.default != spiperelay::cli::help::REQUIRED {
            assert!(
                help.contains(&format!("[default: {}]", o.default)),
                "{command} {}: default {:?} not in --help",
                o.spec.name,
                o.default
            );
        }
    }
    for e in ENVIRONMENT {
        assert!(help.contains(e.name), "{} not in --help", e.name);
        assert!(man.contains(e.name), "{} not in the man page", e.name);
    }
    for c in COMMANDS {
        if c.name != "daemon" {
            let word = format!("spiperelay {}", c.name);
            assert!(help.contains(&word), "{word:?} not in --help");
            assert!(man.contains(&word), "{word:?} not in the man page");
        }
    }
}

#[test]
fn the_help_is_headed_spiperelay_and_fits_100_columns() {
    for a in [&["--help"][..], &["-h"], &["help"]] {
        let out = run(a);
        assert_eq!(out.code(), Some(0), "{a:?}: {out:?}");
        assert!(out.stderr.is_empty(), "{a:?}: {:?}", out.stderr);
        let help = stdout(&out);
        assert!(help.starts_with("spiperelay "), "{a:?}: {help:?}");
        assert!(
            !help.contains("usage: spiped"),
            "{a:?} prints spiped's usage"
        );
        for line in help.lines() {
            assert!(line.chars().count() <= HELP_WIDTH, "{a:?}: {line:?}");
        }
    }
}

#[test]
fn each_command_has_its_own_help() {
    for c in COMMANDS {
        let by_help = run(&["help", c.name]);
        assert_eq!(by_help.code(), Some(0), "help {}: {by_help:?}", c.name);
        let text = stdout(&by_help);
        for o in c.options {
            assert!(
                text.contains(&format!("  {}", o.label())),
                "help {}: {} missing",
                c.name,
                o.spec.name
            );
        }
        // Every command with a word of its own (all but the daemon, which has none) answers
        // `COMMAND --help` with the same text.
        if !matches!(c.name, "daemon" | "help") {
            for flag in ["--help", "-h"] {
                let by_flag = run(&[c.name, flag]);
                assert_eq!(by_flag.code(), Some(0), "{} {flag}: {by_flag:?}", c.name);
                assert_eq!(stdout(&by_flag), text, "{} {flag}", c.name);
            }
        }
    }
    // The daemon's options with --help among them.
    let out = run(&["-d", "-s", "/tmp/x", "--help"]);
    assert_eq!(out.code(), Some(0), "{out:?}");
    assert!(stdout(&out).starts_with("spiperelay "));
    // A --help that is an option's argument is a key file name, not a request.
    let out = run(&["spipe", "-t", "/nonexistent/x.sock", "-k", "--help"]);
    assert_eq!(out.code(), Some(1), "{out:?}");
    let out = run(&["help", "nonesuch"]);
    assert_eq!(out.code(), Some(1), "{out:?}");
    assert!(
        out.stderr.contains("spipe, keygen, keys"),
        "{:?}",
        out.stderr
    );
}

#[test]
fn a_wrong_command_line_points_at_the_help() {
    if !relay_is_ours() {
        return;
    }
    for (a, hint) in [
        (&["-x"][..], "spiperelay --help"),
        (&["-d"], "spiperelay --help"),
        (&["frobnicate"], "spiperelay --help"),
        (&["spipe", "-x"], "spiperelay help spipe"),
    ] {
        let out = run(a);
        assert_eq!(out.code(), Some(1), "{a:?}: {out:?}");
        assert!(
            out.stderr.lines().last().is_some_and(|l| l.contains(hint)),
            "{a:?}: {:?}",
            out.stderr
        );
    }
}

/// A directory holding links named `spiped` and `spipe` to the binary under test.
fn links(dir: &TempDir) -> (PathBuf, PathBuf) {
    let (spiped, spipe) = (dir.join("spiped"), dir.join("spipe"));
    symlink(relay_bin(), &spiped).expect("symlink spiped");
    symlink(relay_bin(), &spipe).expect("symlink spipe");
    (spiped, spipe)
}

#[test]
fn the_spiped_and_spipe_names_keep_their_programs_output_for_help_requests() {
    if !have_spiped() {
        return;
    }
    let dir = TempDir::new("help-links");
    let (spiped, spipe) = links(&dir);
    for (ours, theirs) in [(&spiped, spiped_bin()), (&spipe, PathBuf::from(SPIPE))] {
        for a in [&["--help"][..], &["-h"], &["help"], &[]] {
            let o = run_bounded(ours, &args(a.iter().copied()), b"", BOUND);
            let t = run_bounded(&theirs, &args(a.iter().copied()), b"", BOUND);
            assert_eq!(o.code(), t.code(), "{} {a:?}", ours.display());
            // spipe's usage is 1.6.2's plus 1.6.3's `-b` (see src/cli/spipe.rs): compare the
            // message lines, and the usage's first line.
            let first = |s: &str| s.lines().take_while(|l| !l.starts_with("    ")).count();
            let (ol, tl): (Vec<&str>, Vec<&str>) = (
                o.stderr.lines().take(first(&o.stderr)).collect(),
                t.stderr.lines().take(first(&t.stderr)).collect(),
            );
            assert_eq!(ol, tl, "{} {a:?}", ours.display());
            if ours == &spiped {
                assert_eq!(o.stderr, t.stderr, "spiped {a:?}: byte for byte");
            }
            assert!(
                o.stdout.is_empty(),
                "{} {a:?} wrote to stdout",
                ours.display()
            );
        }
    }
}

#[test]
fn spipe_failures_print_what_spipe_prints_and_spiperelay_spipe_adds_the_cause() {
    let dir = TempDir::new("help-spipe");
    let key = dir.key("key");
    let missing = dir.join("missing.sock");
    let a = |extra: &[&Path]| -> Vec<OsString> {
        let mut v = args(["-t"]);
        v.push(missing.clone().into());
        v.push("-k".into());
        v.push(key.clone().into());
        v.extend(extra.iter().map(|p| p.as_os_str().to_owned()));
        v
    };
    // As `spiperelay spipe`: the cause, then spipe's line.
    let mut sub = args(["spipe"]);
    sub.extend(a(&[]));
    let out = run_bounded(&relay_bin(), &sub, b"", BOUND);
    assert_eq!(out.code(), Some(1), "{out:?}");
    if relay_is_ours() {
        let lines: Vec<&str> = out.stderr.lines().collect();
        assert_eq!(lines.len(), 2, "{:?}", out.stderr);
        assert!(
            lines[0].starts_with("spipe: ") && lines[0].contains("No such file or directory"),
            "{:?}",
            out.stderr
        );
        assert_eq!(lines[1], "spipe: Could not connect");
    }
    // As `spipe`: exactly what spipe 1.6.2 prints.
    if have_spiped() {
        let (_, spipe) = links(&dir);
        let ours = run_bounded(&spipe, &a(&[]), b"", BOUND);
        let theirs = run_bounded(Path::new(SPIPE), &a(&[]), b"", BOUND);
        assert_eq!(ours.code(), theirs.code(), "{ours:?} / {theirs:?}");
        assert_eq!(ours.stderr, theirs.stderr);
        assert_eq!(ours.stderr, "spipe: Could not connect\n");
    }
}

#[test]
fn the_man_page_renders_without_warnings() {
    if !have_tool("/usr/bin/groff", "groff-base") {
        return;
    }
    let out = Command::new("groff")
        .args(["-man", "-ww", "-z", "-Tutf8", MAN_PAGE])
        .output()
        .expect("run groff");
    assert!(out.status.success(), "groff: {out:?}");
    let warnings = String::from_utf8_lossy(&out.stderr);
    assert!(warnings.is_empty(), "groff warnings:\n{warnings}");
    // And at the help's width, nothing runs past the right margin.
    let out = Command::new("groff")
        .args(["-man", "-Tutf8", "-P-cbou", "-rLL=94n", MAN_PAGE])
        .output()
        .expect("run groff");
    let text = String::from_utf8_lossy(&out.stdout);
    let too_wide: Vec<&str> = text
        .lines()
        .filter(|l| l.chars().count() > HELP_WIDTH)
        .collect();
    assert!(
        too_wide.is_empty(),
        "lines over {HELP_WIDTH} columns: {too_wide:#?}"
    );
}
