//! The daemon's running key set for zero-downtime key rotation, shared between the
//! event loop, which takes a snapshot for each new handshake and counts which key each live
//! connection uses, and the control socket ([`super::control`]), which changes the set.
//!
//! Operations, modelled on the managed-Redis AUTH token rotation:
//! - [`KeyRing::rotate`] adds a key while the others stay accepted, up to the `--max-keys`
//!   bound (default [`DEFAULT_MAX_KEYS`]);
//! - [`KeyRing::set`] leaves only a key that is already accepted, and refuses to drop a key that
//!   live connections still use unless forced (`-d` only: on `-e` nothing depends on it);
//! - [`KeyRing::replace`] makes the set equal to freshly read `-k` files (`SIGHUP`).
//!
//! Nothing here ever interrupts a connection: a removed key stops being accepted for new
//! handshakes, and connections established with it carry on; it is still listed by
//! [`KeyRing::status`] as "retired" until its last connection closes. Keys are named only by
//! [`Key::fingerprint`].

use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::SystemTime;

use subtle::ConstantTimeEq;

use crate::proto::key::{Key, KeySet};

use super::keyfile::KeyFileError;

pub use crate::cli::spiped::{DEFAULT_MAX_KEYS, MAX_KEYS_LIMIT};

/// Which mode's rules apply (see [`KeyRing::set`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RingMode {
    /// `-e`: new connections use the first key; the others wait to be SET.
    Encrypt,
    /// `-d`: a client may use any accepted key.
    Decrypt,
}

/// Why a change to the key set was refused. The set is unchanged in every case.
#[derive(Debug)]
pub enum KeyRingError {
    /// More distinct keys than the bound: holds how many were given and the bound.
    TooMany {
        /// Distinct keys given.
        given: usize,
        /// The `--max-keys` bound.
        max: usize,
    },
    /// `rotate` when the set is full. Holds the bound.
    Full(usize),
    /// `rotate` of a key that is already accepted. Holds its fingerprint.
    AlreadyAccepted(String),
    /// `set` of a key that is not accepted yet. Holds its fingerprint.
    NotRotatedIn(String),
    /// `set` without force would drop a key that live connections use (`-d`).
    InUse {
        /// The key that would be dropped.
        fingerprint: String,
        /// Its live connections.
        live: usize,
    },
    /// A key file named for a reload or rotation could not be read (the rules of
    /// [`super::keyfile`]).
    KeyFile(KeyFileError),
    /// A reload found no key at all.
    NoKeys,
}

impl fmt::Display for KeyRingError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::TooMany { given, max } => write!(
                f,
                "{given} distinct keys given, but at most {max} are accepted at once \
                 (--max-keys {max})"
            ),
            Self::Full(max) => write!(
                f,
                "already {max} keys accepted (--max-keys {max}): SET one of them first"
            ),
            Self::AlreadyAccepted(fp) => write!(f, "key {fp} is already accepted"),
            Self::NotRotatedIn(fp) => write!(
                f,
                "There is no key {fp} to SET. Rotate it in first (spiperelay keys rotate)."
            ),
            Self::InUse { fingerprint, live } => write!(
                f,
                "key {fingerprint} is still used by {live} live connection(s); SET would \
                 refuse new connections with it (they would fail on reconnect). Wait until \
                 `keys status` shows 0, or use --force"
            ),
            Self::KeyFile(e) => e.fmt(f),
            Self::NoKeys => f.write_str("no key to accept"),
        }
    }
}

impl std::error::Error for KeyRingError {}

/// One key's report line (see [`KeyRing::status`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyStatus {
    /// [`Key::fingerprint`].
    pub fingerprint: String,
    /// Whether new connections may use it (false: removed, kept only for its live ones).
    pub accepted: bool,
    /// Whether it is the key `-e` uses for new connections (the first accepted one).
    pub primary: bool,
    /// Connections established with it and still open.
    pub live: usize,
    /// Handshakes completed with it since it was added.
    pub handshakes: u64,
    /// When a connection using it last started or ended; `None` if never used.
    pub last_used: Option<SystemTime>,
}

/// A live connection's claim on a key, from [`KeyRing::begin_use`]; hand it back to
/// [`KeyRing::end_use`] exactly once when the connection ends.
#[derive(Debug)]
pub struct KeyUse {
    id: u64,
    fingerprint: Arc<str>,
}

impl KeyUse {
    /// The fingerprint of the key the connection uses, for log lines.
    pub fn fingerprint(&self) -> &str {
        &self.fingerprint
    }
}

struct Entry {
    id: u64,
    key: Key,
    fingerprint: Arc<str>,
    live: usize,
    handshakes: u64,
    last_used: Option<SystemTime>,
}

struct Ring {
    mode: RingMode,
    max: usize,
    /// Accepted keys, in order (the first is `-e`'s key).
    accepted: Vec<Entry>,
    /// Removed keys that live connections still use.
    retired: Vec<Entry>,
    /// `accepted` as a set, handed to new handshakes.
    snapshot: KeySet,
    next_id: u64,
}

/// The running key set, cheap to clone (all clones share one set). See the module docs.
#[derive(Clone)]
pub struct KeyRing(Arc<Mutex<Ring>>);

impl fmt::Debug for KeyRing {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let fps: Vec<String> = self.status().into_iter().map(|s| s.fingerprint).collect();
        f.debug_tuple("KeyRing").field(&fps).finish()
    }
}

fn same(a: &Key, b: &Key) -> bool {
    bool::from(a.as_bytes().ct_eq(b.as_bytes()))
}

/// `keys` without repeats, first occurrence kept.
fn distinct(keys: &KeySet) -> Vec<Key> {
    let mut out: Vec<Key> = Vec::with_capacity(keys.len());
    for k in keys.iter() {
        if !out.iter().any(|o| same(o, k)) {
            out.push(k.clone());
        }
    }
    out
}

impl Ring {
    fn new_entry(&mut self, key: Key) -> Entry {
        self.next_id += 1;
        Entry {
            id: self.next_id,
            fingerprint: Arc::from(key.fingerprint()),
            key,
            live: 0,
            handshakes: 0,
            last_used: None,
        }
    }

    /// Takes the entry for `key` out of `accepted` or `retired` (keeping its counters), or
    /// makes a fresh one.
    fn take_entry(&mut self, key: &Key) -> Entry {
        for list in [&mut self.accepted, &mut self.retired] {
            if let Some(i) = list.iter().position(|e| same(&e.key, key)) {
                return list.remove(i);
            }
        }
        self.new_entry(key.clone())
    }

    /// Installs `keys` (distinct, non-empty) as the accepted set; removed keys with live
    /// connections are retired, others forgotten.
    fn install(&mut self, keys: Vec<Key>) {
        let mut accepted = Vec::with_capacity(keys.len());
        for k in &keys {
            accepted.push(self.take_entry(k));
        }
        let dropped = std::mem::replace(&mut self.accepted, accepted);
        self.retired
            .extend(dropped.into_iter().filter(|e| e.live > 0));
        self.retired.retain(|e| e.live > 0);
        if let Some(set) = KeySet::new(keys) {
            self.snapshot = set;
        }
    }

    fn fingerprints(&self) -> String {
        self.accepted
            .iter()
            .map(|e| &*e.fingerprint)
            .collect::<Vec<_>>()
            .join(", ")
    }
}

impl KeyRing {
    /// A ring accepting the distinct keys of `keys` (repeats are merged), in order, with at
    /// most `max_keys` accepted at once.
    ///
    /// # Errors
    /// [`KeyRingError::TooMany`] if `keys` holds more than `max_keys` distinct keys.
    pub fn new(keys: KeySet, max_keys: usize, mode: RingMode) -> Result<Self, KeyRingError> {
        let max = max_keys.max(1);
        let list = distinct(&keys);
        if list.len() > max {
            return Err(KeyRingError::TooMany {
                given: list.len(),
                max,
            });
        }
        let mut ring = Ring {
            mode,
            max,
            accepted: Vec::new(),
            retired: Vec::new(),
            snapshot: keys,
            next_id: 0,
        };
        ring.install(list);
        Ok(Self(Arc::new(Mutex::new(ring))))
    }

    fn lock(&self) -> MutexGuard<'_, Ring> {
        // A panic while holding the lock cannot leave the ring inconsistent in a way that
        // matters more than stopping would; keep serving.
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The accepted keys now, for a new handshake (the first is `-e`'s key).
    pub fn current(&self) -> KeySet {
        self.lock().snapshot.clone()
    }

    /// How many keys are accepted now (at least 1).
    pub fn len(&self) -> usize {
        self.lock().accepted.len()
    }

    /// Always `false`: the ring never accepts zero keys.
    pub fn is_empty(&self) -> bool {
        self.lock().accepted.is_empty()
    }

    /// The accepted keys' fingerprints, comma-separated, for log lines.
    pub fn fingerprints(&self) -> String {
        self.lock().fingerprints()
    }

    /// Records that a connection completed its handshake with `key`: one more live connection,
    /// last used now.
    ///
    /// If `key` was removed while the handshake ran: on `-d` this returns `None` and counts
    /// nothing (the caller drops the connection: the key is no longer accepted); on `-e` the
    /// connection is counted against the removed key, listed as retired (the server, not this
    /// end, decides which keys it accepts, and it has just accepted this one).
    pub fn begin_use(&self, key: &Key) -> Option<KeyUse> {
        let mut ring = self.lock();
        let ring = &mut *ring;
        let found = ring.accepted.iter().position(|e| same(&e.key, key));
        let e = match (found, ring.mode) {
            (Some(i), _) => ring.accepted.get_mut(i)?,
            (None, RingMode::Decrypt) => return None,
            (None, RingMode::Encrypt) => {
                if !ring.retired.iter().any(|e| same(&e.key, key)) {
                    let entry = ring.new_entry(key.clone());
                    ring.retired.push(entry);
                }
                ring.retired.iter_mut().find(|e| same(&e.key, key))?
            }
        };
        e.live += 1;
        e.handshakes += 1;
        e.last_used = Some(SystemTime::now());
        Some(KeyUse {
            id: e.id,
            fingerprint: e.fingerprint.clone(),
        })
    }

    /// Records that the connection holding `used` ended (last used now). A retired key is
    /// forgotten once its last connection ends.
    pub fn end_use(&self, used: KeyUse) {
        let mut ring = self.lock();
        let ring = &mut *ring;
        for list in [&mut ring.accepted, &mut ring.retired] {
            if let Some(e) = list.iter_mut().find(|e| e.id == used.id) {
                e.live = e.live.saturating_sub(1);
                e.last_used = Some(SystemTime::now());
            }
        }
        ring.retired.retain(|e| e.live > 0);
    }

    /// ROTATE: accepts `key` in addition to the current keys (at the end: on `-e` the first
    /// key stays in use until [`KeyRing::set`]). Returns a one-line description of the result.
    ///
    /// # Errors
    /// [`KeyRingError::AlreadyAccepted`], or [`KeyRingError::Full`] when `--max-keys` keys are
    /// accepted already.
    pub fn rotate(&self, key: Key) -> Result<String, KeyRingError> {
        let mut ring = self.lock();
        let fp = key.fingerprint();
        if ring.accepted.iter().any(|e| same(&e.key, &key)) {
            return Err(KeyRingError::AlreadyAccepted(fp));
        }
        if ring.accepted.len() >= ring.max {
            return Err(KeyRingError::Full(ring.max));
        }
        let mut keys: Vec<Key> = ring.accepted.iter().map(|e| e.key.clone()).collect();
        keys.push(key);
        ring.install(keys);
        Ok(format!(
            "rotated in key {fp}; accepted keys: {}",
            ring.fingerprints()
        ))
    }

    /// SET: leaves `key` as the only accepted key. It must be accepted already (rotated in
    /// first). On `-d`, dropping a key that live connections use is refused unless `force`;
    /// those connections are never interrupted either way, only new connections with a dropped
    /// key are refused. Returns a one-line description of the result.
    ///
    /// # Errors
    /// [`KeyRingError::NotRotatedIn`], or [`KeyRingError::InUse`] (`-d`, without `force`).
    pub fn set(&self, key: Key, force: bool) -> Result<String, KeyRingError> {
        let mut ring = self.lock();
        let fp = key.fingerprint();
        if !ring.accepted.iter().any(|e| same(&e.key, &key)) {
            return Err(KeyRingError::NotRotatedIn(fp));
        }
        if ring.mode == RingMode::Decrypt
            && !force
            && let Some(e) = ring
                .accepted
                .iter()
                .find(|e| !same(&e.key, &key) && e.live > 0)
        {
            return Err(KeyRingError::InUse {
                fingerprint: e.fingerprint.to_string(),
                live: e.live,
            });
        }
        let removed: Vec<String> = ring
            .accepted
            .iter()
            .filter(|e| !same(&e.key, &key))
            .map(|e| match e.live {
                0 => e.fingerprint.to_string(),
                n => format!("{} ({n} live connections continue)", e.fingerprint),
            })
            .collect();
        ring.install(vec![key]);
        Ok(if removed.is_empty() {
            format!("key {fp} was already the only accepted key")
        } else {
            format!("set key {fp}; no longer accepted: {}", removed.join(", "))
        })
    }

    /// Reload: makes the accepted set equal to `keys` (repeats merged), keeping the counters of
    /// keys that stay. Live connections are untouched. Returns a one-line description.
    ///
    /// # Errors
    /// [`KeyRingError::TooMany`] if `keys` holds more than `--max-keys` distinct keys.
    pub fn replace(&self, keys: &KeySet) -> Result<String, KeyRingError> {
        let mut ring = self.lock();
        let list = distinct(keys);
        if list.len() > ring.max {
            return Err(KeyRingError::TooMany {
                given: list.len(),
                max: ring.max,
            });
        }
        let before = ring.fingerprints();
        ring.install(list);
        let after = ring.fingerprints();
        Ok(if before == after {
            format!("keys unchanged: {after}")
        } else {
            format!("accepted keys were {before}; now {after}")
        })
    }

    /// Per key, accepted ones first (in order), then retired ones that live connections still
    /// use.
    pub fn status(&self) -> Vec<KeyStatus> {
        let ring = self.lock();
        let line = |e: &Entry, accepted: bool, primary: bool| KeyStatus {
            fingerprint: e.fingerprint.to_string(),
            accepted,
            primary,
            live: e.live,
            handshakes: e.handshakes,
            last_used: e.last_used,
        };
        let mut out: Vec<KeyStatus> = ring
            .accepted
            .iter()
            .enumerate()
            .map(|(i, e)| line(e, true, i == 0))
            .collect();
        out.extend(ring.retired.iter().map(|e| line(e, false, false)));
        out
    }

    /// The `--max-keys` bound.
    pub fn max_keys(&self) -> usize {
        self.lock().max
    }

    /// Which mode's rules apply.
    pub fn mode(&self) -> RingMode {
        self.lock().mode
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn k(s: &str) -> Key {
        Key::from_key_file(s.as_bytes())
    }

    fn ring(keys: &[&str], mode: RingMode) -> KeyRing {
        let set = KeySet::new(keys.iter().map(|s| k(s)).collect()).expect("non-empty");
        KeyRing::new(set, DEFAULT_MAX_KEYS, mode).expect("ring")
    }

    #[test]
    fn new_merges_repeats_and_bounds() {
        let r = ring(&["a", "a"], RingMode::Decrypt);
        assert_eq!(r.len(), 1);
        let set = KeySet::new(vec![k("a"), k("b"), k("c")]).expect("set");
        assert!(matches!(
            KeyRing::new(set, 2, RingMode::Decrypt),
            Err(KeyRingError::TooMany { given: 3, max: 2 })
        ));
    }

    #[test]
    fn rotate_then_set() {
        let r = ring(&["old"], RingMode::Decrypt);
        assert!(matches!(
            r.set(k("new"), false),
            Err(KeyRingError::NotRotatedIn(_))
        ));
        r.rotate(k("new")).expect("rotate");
        assert_eq!(r.current().len(), 2);
        assert!(matches!(
            r.rotate(k("new")),
            Err(KeyRingError::AlreadyAccepted(_))
        ));
        assert!(matches!(r.rotate(k("third")), Err(KeyRingError::Full(2))));
        let a = r.begin_use(&k("old")).expect("old accepted");
        assert_eq!(a.fingerprint(), k("old").fingerprint());
        let e = r.set(k("new"), false).expect_err("old in use");
        assert!(matches!(e, KeyRingError::InUse { live: 1, .. }), "{e}");
        r.set(k("new"), true).expect("forced");
        assert_eq!(r.current().len(), 1);
        assert_eq!(r.current().first().as_bytes(), k("new").as_bytes());
        let st = r.status();
        assert_eq!(st.len(), 2);
        assert!(st[0].accepted && st[0].primary && st[0].live == 0);
        assert!(!st[1].accepted && st[1].live == 1 && st[1].last_used.is_some());
        assert!(r.begin_use(&k("old")).is_none(), "old no longer accepted");
        r.end_use(a);
        assert_eq!(
            r.status().len(),
            1,
            "retired key forgotten after its last close"
        );
    }

    #[test]
    fn encrypt_side_set_ignores_live_use() {
        let r = ring(&["old", "new"], RingMode::Encrypt);
        let _a = r.begin_use(&k("old")).expect("old");
        assert!(r.status()[0].primary);
        r.set(k("new"), false).expect("set on -e needs no --force");
        assert_eq!(r.current().first().as_bytes(), k("new").as_bytes());
        // A handshake that began with the old key before the SET still counts on -e.
        let late = r.begin_use(&k("old")).expect("-e keeps a late handshake");
        assert_eq!(r.status().iter().filter(|s| !s.accepted).count(), 1);
        assert_eq!(r.status()[1].live, 2);
        r.end_use(late);
        assert_eq!(r.status()[1].live, 1);
    }

    #[test]
    fn replace_keeps_counters_of_kept_keys() {
        let r = ring(&["a"], RingMode::Decrypt);
        let u = r.begin_use(&k("a")).expect("a");
        let set = KeySet::new(vec![k("b"), k("a")]).expect("set");
        r.replace(&set).expect("replace");
        let st = r.status();
        assert_eq!(st[1].fingerprint, k("a").fingerprint());
        assert_eq!(st[1].live, 1);
        r.end_use(u);
        assert_eq!(r.status()[1].live, 0);
        let big = KeySet::new(vec![k("x"), k("y"), k("z")]).expect("set");
        assert!(r.replace(&big).is_err());
        assert_eq!(r.len(), 2, "a refused replace changes nothing");
    }
}
