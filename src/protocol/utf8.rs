//! Incremental UTF-8 validation for fragmented text messages
//! (RFC 6455 §5.6, §8.1: invalid UTF-8 fails the connection with 1007).
//!
//! A fragment may end inside a multi-byte character; the validator carries
//! those bytes (at most 3) into the next fragment, so a message is rejected
//! at the first frame that makes it invalid rather than at its end.

/// The UTF-8 state of a text message being received in fragments.
#[derive(Debug, Default, Clone)]
pub struct Utf8Validator {
    carry: [u8; 4],
    carry_len: u8,
}

/// The data is not valid UTF-8 (close code 1007).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InvalidUtf8;

/// Validates a complete byte string (fast path: SIMD, no error details).
#[inline]
pub fn validate(data: &[u8]) -> Result<(), InvalidUtf8> {
    simdutf8::basic::from_utf8(data)
        .map(|_| ())
        .map_err(|_| InvalidUtf8)
}

/// Width of the character a lead byte starts, or 0 for a byte that cannot
/// start one.
fn char_width(lead: u8) -> usize {
    match lead {
        0x00..=0x7f => 1,
        0xc2..=0xdf => 2,
        0xe0..=0xef => 3,
        0xf0..=0xf4 => 4,
        _ => 0,
    }
}

impl Utf8Validator {
    pub fn new() -> Self {
        Self::default()
    }

    /// Feeds the next piece of the message.
    pub fn feed(&mut self, mut data: &[u8]) -> Result<(), InvalidUtf8> {
        if self.carry_len > 0 {
            let have = self.carry_len as usize;
            let width = char_width(self.carry[0]);
            let take = (width - have).min(data.len());
            self.carry[have..have + take].copy_from_slice(&data[..take]);
            self.carry_len += take as u8;
            data = &data[take..];
            let partial = &self.carry[..self.carry_len as usize];
            if (self.carry_len as usize) < width {
                // Still incomplete: it must at least be a valid prefix.
                return match simdutf8::compat::from_utf8(partial) {
                    Err(e) if e.error_len().is_none() => Ok(()),
                    _ => Err(InvalidUtf8),
                };
            }
            validate(partial)?;
            self.carry_len = 0;
        }
        if validate(data).is_ok() {
            return Ok(());
        }
        // Slow path only on failure: find out whether the input is wrong or
        // merely cut inside a character.
        match simdutf8::compat::from_utf8(data) {
            Ok(_) => Ok(()),
            Err(e) if e.error_len().is_none() => {
                let tail = &data[e.valid_up_to()..];
                self.carry[..tail.len()].copy_from_slice(tail);
                self.carry_len = tail.len() as u8;
                Ok(())
            }
            Err(_) => Err(InvalidUtf8),
        }
    }

    /// The message has ended: a character cut at the end is invalid.
    pub fn finish(&mut self) -> Result<(), InvalidUtf8> {
        let complete = self.carry_len == 0;
        self.carry_len = 0;
        if complete {
            Ok(())
        } else {
            Err(InvalidUtf8)
        }
    }

    /// Forgets any state (a new message starts).
    pub fn reset(&mut self) {
        self.carry_len = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check_split(data: &[u8]) -> bool {
        let expected = std::str::from_utf8(data).is_ok();
        for split in 0..=data.len() {
            let mut v = Utf8Validator::new();
            let ok = v.feed(&data[..split]).is_ok()
                && v.feed(&data[split..]).is_ok()
                && v.finish().is_ok();
            assert_eq!(ok, expected, "{data:02x?} split at {split}");
        }
        // One byte at a time, too.
        let mut v = Utf8Validator::new();
        let ok = data.iter().all(|b| v.feed(&[*b]).is_ok()) && v.finish().is_ok();
        assert_eq!(ok, expected, "{data:02x?} byte by byte");
        expected
    }

    #[test]
    fn valid_text_at_every_split() {
        assert!(check_split("κόσμε".as_bytes()));
        assert!(check_split("Hello-µ@ßöäüàá-UTF-8!!".as_bytes()));
        assert!(check_split("\u{10ffff}\u{ffff}\u{7ff}a".as_bytes()));
        assert!(check_split(b""));
    }

    #[test]
    fn invalid_byte_at_every_position() {
        let good = "aκόσμεb€𝄞c".as_bytes().to_vec();
        for bad in [0x80u8, 0xbf, 0xc0, 0xc1, 0xf5, 0xff] {
            for pos in 0..=good.len() {
                let mut data = good.clone();
                data.insert(pos, bad);
                if std::str::from_utf8(&data).is_err() {
                    assert!(!check_split(&data));
                }
            }
        }
    }

    #[test]
    fn surrogates_overlongs_and_too_large_rejected() {
        for bad in [
            &[0xed, 0xa0, 0x80][..],       // U+D800 surrogate
            &[0xc0, 0xaf][..],             // overlong '/'
            &[0xe0, 0x80, 0xaf][..],       // overlong
            &[0xf4, 0x90, 0x80, 0x80][..], // > U+10FFFF
            &[0xce, 0xba, 0xe1][..],       // truncated at end
        ] {
            assert!(!check_split(bad), "{bad:02x?}");
        }
    }

    #[test]
    fn fails_fast_on_an_invalid_prefix() {
        let mut v = Utf8Validator::new();
        // E0 80 can never become valid: reject before the message ends.
        assert!(v.feed(&[b'a', 0xe0]).is_ok());
        assert!(v.feed(&[0x80]).is_err());
    }
}
