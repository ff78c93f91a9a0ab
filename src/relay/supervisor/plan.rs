//! What a reload changes: the running pipes against the pipes of the new configuration.
//!
//! Pipes are matched by their source (the listening address), not by name: a listener whose
//! pipe still exists with the same source is never closed, whatever else changed (its name
//! included). A pipe whose source changed is a pipe removed and a pipe added.

use crate::config::PipeSpec;

/// What happens to one pipe of the new configuration.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Change {
    /// The running pipe at this index stays exactly as it is (its key files are still
    /// re-read).
    Keep(usize),
    /// The running pipe at this index keeps its listener and takes this description for new
    /// connections.
    Update(usize, PipeSpec),
    /// A new pipe: bind its source and start it.
    Add(PipeSpec),
}

/// Every change of a reload.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Plan {
    /// One change per pipe of the new configuration, in its order.
    pub changes: Vec<Change>,
    /// The running pipes (indexes) that no pipe of the new configuration matches: they stop
    /// accepting and drain.
    pub removed: Vec<usize>,
}

impl Plan {
    /// `added N, removed N, changed N, unchanged N`, for the log and systemd's status.
    pub fn summary(&self) -> String {
        let count = |f: fn(&Change) -> bool| self.changes.iter().filter(|c| f(c)).count();
        format!(
            "{} added, {} removed, {} changed, {} unchanged",
            count(|c| matches!(c, Change::Add(_))),
            self.removed.len(),
            count(|c| matches!(c, Change::Update(..))),
            count(|c| matches!(c, Change::Keep(_))),
        )
    }
}

/// The plan that turns `running` into `wanted`. Sources are unique within each list (the
/// configuration refuses duplicates), so each running pipe is matched at most once.
pub fn plan(running: &[&PipeSpec], wanted: &[PipeSpec]) -> Plan {
    let mut matched = vec![false; running.len()];
    let changes = wanted
        .iter()
        .map(
            |w| match running.iter().position(|r| r.source == w.source) {
                Some(i) => {
                    matched[i] = true;
                    if running[i] == w {
                        Change::Keep(i)
                    } else {
                        Change::Update(i, w.clone())
                    }
                }
                None => Change::Add(w.clone()),
            },
        )
        .collect();
    let removed = (0..running.len()).filter(|&i| !matched[i]).collect();
    Plan { changes, removed }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{KeySource, Mode, SockAddrSpec};

    fn pipe(name: &str, source: &str, target: &str) -> PipeSpec {
        PipeSpec::new(
            name,
            Mode::Decrypt,
            SockAddrSpec::parse(source).expect("source"),
            SockAddrSpec::parse(target).expect("target"),
            vec![KeySource::File("/k".into())],
        )
    }

    #[test]
    fn unchanged_changed_added_and_removed() {
        let a = pipe("a", "/run/a.sock", "[127.0.0.1]:1");
        let b = pipe("b", "[127.0.0.1]:2", "[127.0.0.1]:3");
        let c = pipe("c", "[127.0.0.1]:4", "[127.0.0.1]:5");
        let mut b2 = b.clone();
        b2.target = SockAddrSpec::parse("[127.0.0.1]:9").expect("target");
        let d = pipe("d", "/run/d.sock", "[127.0.0.1]:6");
        let p = plan(&[&a, &b, &c], &[d.clone(), b2.clone(), a.clone()]);
        assert_eq!(
            p.changes,
            vec![Change::Add(d), Change::Update(1, b2), Change::Keep(0)]
        );
        assert_eq!(p.removed, vec![2]);
        assert_eq!(p.summary(), "1 added, 1 removed, 1 changed, 1 unchanged");
    }

    #[test]
    fn a_rename_keeps_the_listener_and_a_moved_source_does_not() {
        let a = pipe("a", "/run/a.sock", "[127.0.0.1]:1");
        let renamed = pipe("z", "/run/a.sock", "[127.0.0.1]:1");
        let p = plan(&[&a], std::slice::from_ref(&renamed));
        assert_eq!(p.changes, vec![Change::Update(0, renamed)]);
        assert!(p.removed.is_empty());
        let moved = pipe("a", "/run/b.sock", "[127.0.0.1]:1");
        let p = plan(&[&a], std::slice::from_ref(&moved));
        assert_eq!(p.changes, vec![Change::Add(moved)]);
        assert_eq!(p.removed, vec![0]);
    }

    #[test]
    fn empty_sides() {
        let a = pipe("a", "/run/a.sock", "[127.0.0.1]:1");
        assert_eq!(
            plan(&[], std::slice::from_ref(&a)).changes,
            vec![Change::Add(a.clone())]
        );
        let p = plan(&[&a], &[]);
        assert!(p.changes.is_empty());
        assert_eq!(p.removed, vec![0]);
    }
}
