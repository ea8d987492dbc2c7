//! Payload masking (RFC 6455 §5.3).
//!
//! Masking is an XOR with a 4-byte key that repeats over the payload. It is
//! its own inverse, so one function masks and unmasks.

/// XORs `buf` in place with `mask`, starting at key position 0.
#[inline]
pub fn apply_mask(buf: &mut [u8], mask: [u8; 4]) {
    apply_mask_offset(buf, mask, 0)
}

/// XORs `buf` in place with `mask`, as if `offset` bytes of the same payload
/// had already been masked (for payloads processed in pieces).
pub fn apply_mask_offset(buf: &mut [u8], mask: [u8; 4], offset: usize) {
    let mut key = mask;
    key.rotate_left(offset % 4);
    // Word at a time: a u64 of the repeated key covers 8 payload bytes. The
    // chunks need no alignment because from/to_ne_bytes copy.
    let key64 = u64::from_ne_bytes([
        key[0], key[1], key[2], key[3], key[0], key[1], key[2], key[3],
    ]);
    let mut chunks = buf.chunks_exact_mut(8);
    for chunk in &mut chunks {
        let word = u64::from_ne_bytes(chunk.try_into().unwrap()) ^ key64;
        chunk.copy_from_slice(&word.to_ne_bytes());
    }
    // The tail starts at a multiple of 8, so the key position is still 0.
    for (i, b) in chunks.into_remainder().iter_mut().enumerate() {
        *b ^= key[i & 3];
    }
}

/// Copies `src` into the end of `dst`, masked with `mask` (used when the
/// server masks its own frames, so the caller's bytes stay untouched).
pub fn extend_masked(dst: &mut Vec<u8>, src: &[u8], mask: [u8; 4]) {
    let start = dst.len();
    dst.extend_from_slice(src);
    apply_mask(&mut dst[start..], mask);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn naive(buf: &mut [u8], mask: [u8; 4], offset: usize) {
        for (i, b) in buf.iter_mut().enumerate() {
            *b ^= mask[(i + offset) & 3];
        }
    }

    #[test]
    fn matches_byte_at_a_time_for_every_length_and_offset() {
        let mask = [0x37, 0xfa, 0x21, 0x3d];
        for len in 0..70 {
            for offset in 0..8 {
                let orig: Vec<u8> = (0..len as u8).map(|i| i.wrapping_mul(31)).collect();
                let mut fast = orig.clone();
                let mut slow = orig.clone();
                apply_mask_offset(&mut fast, mask, offset);
                naive(&mut slow, mask, offset);
                assert_eq!(fast, slow, "len {len} offset {offset}");
                apply_mask_offset(&mut fast, mask, offset);
                assert_eq!(fast, orig, "masking twice restores the input");
            }
        }
    }

    #[test]
    fn rfc_example_hello() {
        // RFC 6455 §5.7: "Hello" masked with 37 fa 21 3d.
        let mut data = *b"Hello";
        apply_mask(&mut data, [0x37, 0xfa, 0x21, 0x3d]);
        assert_eq!(data, [0x7f, 0x9f, 0x4d, 0x51, 0x58]);
    }

    #[test]
    fn pieces_equal_whole() {
        let mask = [1, 2, 3, 4];
        let orig: Vec<u8> = (0..100u8).collect();
        let mut whole = orig.clone();
        apply_mask(&mut whole, mask);
        for split in 0..orig.len() {
            let mut parts = orig.clone();
            let (a, b) = parts.split_at_mut(split);
            apply_mask_offset(a, mask, 0);
            apply_mask_offset(b, mask, split);
            assert_eq!(parts, whole, "split at {split}");
        }
    }
}
