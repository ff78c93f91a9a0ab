//! The relay with spiped's command line, as `spiperelay -e|-d` runs it (`relay::run` of the
//! command line's config), plus a measurement hook: what [`release_free_heap`] gives back once
//! a burst has ended.
//!
//! ```text
//! SPIPERELAY_TRIM_TRIGGER=/tmp/x cargo run --release --example relay_trim -- -F -e -s ... -t ... -k KEY
//! ```
//! A helper thread (daemon signals blocked) looks for the file named by
//! `SPIPERELAY_TRIM_TRIGGER` every 100 ms; when it appears, the thread reads `VmRSS`, calls
//! [`release_free_heap`] (`malloc_trim(0)`, which trims every arena of the process, so calling
//! it from this thread has the effect a call from the event loop would have), reads `VmRSS`
//! again, writes `BEFORE_KIB AFTER_KIB RELEASED MICROSECONDS POOL_KIB` (`POOL_KIB`: the resident
//! part of the receive buffer pool, which `malloc_trim` cannot return) to the trigger path with
//! `.done` appended, and removes the trigger. `scripts/mem-per-conn.sh --trim` uses it. Not a
//! way to run the relay in production: the hook exists only here.

use std::ffi::OsString;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use spiperelay::cli::{SpipedArgs, SpipedCommand};
use spiperelay::os::memory::release_free_heap;
use spiperelay::os::thread::make_background_thread;

/// `VmRSS` of this process in KiB, 0 if unreadable.
fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

/// The resident KiB of the mappings of this process whose size is `size_kib` or up to 8 KiB
/// more, summed: the receive pools are anonymous mappings of their buffers' size (io_uring's
/// own `mmap`; epoll's a `Vec`, which glibc maps with a header page).
fn rss_of_mappings_sized(size_kib: u64) -> u64 {
    let Ok(smaps) = std::fs::read_to_string("/proc/self/smaps") else {
        return 0;
    };
    let (mut total, mut matching) = (0, false);
    for line in smaps.lines() {
        let mut f = line.split_whitespace();
        match (f.next(), f.next()) {
            (Some("Size:"), Some(v)) => {
                matching = v
                    .parse::<u64>()
                    .is_ok_and(|v| (size_kib..=size_kib + 8).contains(&v));
            }
            (Some("Rss:"), Some(v)) if matching => total += v.parse::<u64>().unwrap_or(0),
            _ => {}
        }
    }
    total
}

/// Serves trim requests on `trigger` until the process exits.
fn serve_trims(trigger: PathBuf) {
    make_background_thread();
    let mut done = trigger.clone().into_os_string();
    done.push(".done");
    loop {
        std::thread::sleep(Duration::from_millis(100));
        if !trigger.exists() {
            continue;
        }
        let before = rss_kib();
        let t0 = Instant::now();
        let released = release_free_heap();
        let us = t0.elapsed().as_micros();
        let after = rss_kib();
        // The daemon's receive pool: 512 buffers of 16 KiB (relay::daemon::RECV_BUFFERS).
        let pool = rss_of_mappings_sized(512 * 16);
        let _ = std::fs::write(&done, format!("{before} {after} {released} {us} {pool}\n"));
        let _ = std::fs::remove_file(&trigger);
    }
}

fn main() -> ExitCode {
    let args: Vec<OsString> = std::env::args_os().skip(1).collect();
    let args = match SpipedArgs::parse(args) {
        Ok(SpipedCommand::Run(args)) => args,
        Ok(SpipedCommand::Version) => return ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("relay_trim: {e}");
            return ExitCode::FAILURE;
        }
    };
    if let Some(trigger) = std::env::var_os("SPIPERELAY_TRIM_TRIGGER") {
        let trigger = PathBuf::from(trigger);
        std::thread::spawn(move || serve_trims(trigger));
    }
    let source = spiperelay::relay::ConfigSource::CommandLine(args.to_full_config());
    match spiperelay::relay::run("relay_trim", source) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("relay_trim: {e}");
            ExitCode::FAILURE
        }
    }
}
