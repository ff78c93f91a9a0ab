//! The shared secret `K` derived from a key file (§1.1), and sets of accepted keys.

use std::fmt;
use std::sync::Arc;

use sha2::{Digest, Sha256};
use zeroize::Zeroize;

/// Length of `K`, the SHA-256 of the key file (§1.1).
pub const KEY_LEN: usize = 32;

/// `K = SHA-256(entire key file contents)` (§1.1): the PBKDF2 password of every derivation.
///
/// Zeroised on drop. It has no `Display`, and its `Debug` prints no key bytes, so it cannot end up
/// in a log by accident.
#[derive(Clone)]
pub struct Key([u8; KEY_LEN]);

impl Key {
    /// Hashes the complete contents of a key file into `K` (§1.1).
    ///
    /// Any length is accepted, including empty (`K = SHA-256("")`, what `-k /dev/null` gives), and
    /// nothing is trimmed: a trailing newline is part of the key. Never fails.
    pub fn from_key_file(contents: &[u8]) -> Self {
        Self(Sha256::digest(contents).into())
    }

    /// The 32 bytes of `K`, for the key derivations of this module and known-answer tests.
    /// Never log or print them.
    pub fn as_bytes(&self) -> &[u8; KEY_LEN] {
        &self.0
    }

    /// A short public name for this key, safe to log: the first [`FINGERPRINT_LEN`] bytes of
    /// `SHA-256(FINGERPRINT_CONTEXT ‖ K)` as lowercase hex (16 characters).
    ///
    /// The domain-separated hash reveals nothing usable about `K` (it is not one of the
    /// protocol's derivations), and the same key file always gives the same fingerprint, so
    /// `spiperelay keygen`, the daemon's logs and its key report all name a key the same way.
    /// Never fails.
    pub fn fingerprint(&self) -> String {
        let digest = Sha256::new()
            .chain_update(FINGERPRINT_CONTEXT)
            .chain_update(self.0)
            .finalize();
        digest[..FINGERPRINT_LEN]
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    }
}

/// Domain-separation prefix of [`Key::fingerprint`] (a spiperelay addition, not in spiped).
pub const FINGERPRINT_CONTEXT: &[u8] = b"spiperelay key fingerprint v1";

/// Bytes of the fingerprint hash shown by [`Key::fingerprint`] (as twice as many hex digits).
pub const FINGERPRINT_LEN: usize = 8;

impl Drop for Key {
    fn drop(&mut self) {
        self.0.zeroize();
    }
}

impl fmt::Debug for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Key(<secret>)")
    }
}

/// A non-empty, ordered set of accepted keys, shared cheaply between connections.
///
/// The encrypting side (client role) uses the first key. The decrypting side (server role)
/// accepts a client whose DH MAC verifies under any of them and uses that key for the session
/// (one HMAC per candidate, no exponentiation). A set of one key behaves exactly like spiped.
#[derive(Clone, Debug)]
pub struct KeySet(Arc<[Key]>);

impl KeySet {
    /// A set holding exactly one key.
    pub fn single(key: Key) -> Self {
        Self(Arc::from(vec![key]))
    }

    /// A set holding `keys` in order, or `None` if `keys` is empty.
    pub fn new(keys: Vec<Key>) -> Option<Self> {
        if keys.is_empty() {
            None
        } else {
            Some(Self(Arc::from(keys)))
        }
    }

    /// The key the client role uses: the first one in the set.
    pub fn first(&self) -> &Key {
        // A KeySet is never empty (both constructors guarantee it); fall back on indexing through
        // `iter` so no panic path exists even if that invariant were broken.
        self.0.iter().next().unwrap_or_else(|| unreachable_empty())
    }

    /// The keys in order; index `i` of this iterator is the `key_index` a session reports.
    pub fn iter(&self) -> impl Iterator<Item = &Key> {
        self.0.iter()
    }

    /// The keys as a slice, in order.
    pub fn as_slice(&self) -> &[Key] {
        &self.0
    }

    /// How many keys the set holds (at least 1).
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Always `false`: a key set is never empty. Present for API symmetry with `len`.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

#[cold]
fn unreachable_empty() -> &'static Key {
    // Constructors reject empty sets, so this cannot run. Returning a fixed key instead of
    // panicking would silently weaken security, so abort loudly: this is a programming error,
    // never reachable from input.
    unreachable!("KeySet is never empty")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_file_gives_sha256_of_nothing() {
        // §6: K of the empty key file.
        let k = Key::from_key_file(b"");
        let hex: String = k.as_bytes().iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(
            hex,
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
    }

    #[test]
    fn trailing_newline_is_part_of_the_key() {
        assert_ne!(
            Key::from_key_file(b"secret").as_bytes(),
            Key::from_key_file(b"secret\n").as_bytes()
        );
    }

    #[test]
    fn fingerprint_is_stable_short_and_not_k() {
        let k = Key::from_key_file(b"");
        let fp = k.fingerprint();
        assert_eq!(fp.len(), 2 * FINGERPRINT_LEN);
        assert!(
            fp.bytes()
                .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
        );
        // Independently computed: SHA-256("spiperelay key fingerprint v1" ‖ SHA-256("")).
        let mut h = Sha256::new();
        h.update(b"spiperelay key fingerprint v1");
        h.update(Sha256::digest(b""));
        let want: String = h.finalize()[..8]
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        assert_eq!(fp, want);
        assert!(!"e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855".contains(&fp));
        assert_eq!(Key::from_key_file(b"").fingerprint(), fp);
        assert_ne!(Key::from_key_file(b"x").fingerprint(), fp);
    }

    #[test]
    fn debug_prints_no_key_bytes() {
        let k = Key::from_key_file(b"");
        let s = format!("{k:?} {:?}", KeySet::single(k.clone()));
        assert!(
            !s.contains("e3") && !s.contains("227") && s.contains("<secret>"),
            "{s}"
        );
    }

    #[test]
    fn key_set_rejects_empty_and_keeps_order() {
        assert!(KeySet::new(Vec::new()).is_none());
        let a = Key::from_key_file(b"a");
        let b = Key::from_key_file(b"b");
        let set = KeySet::new(vec![a.clone(), b]).expect("non-empty");
        assert_eq!(set.len(), 2);
        assert!(!set.is_empty());
        assert_eq!(set.first().as_bytes(), a.as_bytes());
    }
}
