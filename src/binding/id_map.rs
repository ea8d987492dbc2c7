//! Maps keyed by engine ids (connections, servers, exchanges, keep-alive executor slots),
//! with a hash made for sequential ids.

use std::collections::HashMap;

/// Connection ids are sequential u64s: a multiplicative hash spreads them
/// well and costs a fraction of SipHash on the `send` hot path (no
/// attacker chooses these keys).
#[derive(Default)]
pub struct IdHasher(u64);

impl std::hash::Hasher for IdHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0.rotate_left(8) ^ b as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15);
        }
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = n.wrapping_mul(0x9e37_79b9_7f4a_7c15);
    }
}

pub type IdMap<V> = HashMap<u64, V, std::hash::BuildHasherDefault<IdHasher>>;
