//! The GPT-2 byte-level alphabet: every byte maps to one printable character, so that byte-level
//! BPE vocabularies can be stored as strings.
//!
//! Bytes that are printable in Latin-1 (`!`..=`~`, `¡`..=`¬`, `®`..=`ÿ`) map to themselves; the
//! other 68 bytes map, in byte order, to U+0100 and up (space becomes `Ġ`, newline `Ċ`).

use std::sync::OnceLock;

/// Whether byte `b` is printable and therefore maps to the character with the same code point.
const fn is_direct(b: u8) -> bool {
    matches!(b, b'!'..=b'~' | 0xA1..=0xAC | 0xAE..=0xFF)
}

/// The alphabet character standing for byte `b`.
pub(crate) fn byte_to_char(b: u8) -> char {
    let cp = if is_direct(b) {
        u32::from(b)
    } else {
        // The n-th byte that is not printable maps to U+0100 + n.
        256 + (0..b).filter(|&x| !is_direct(x)).count() as u32
    };
    // At most U+0143: always a valid scalar value.
    char::from_u32(cp).unwrap_or('\u{FFFD}')
}

/// Character code point (< 512) -> byte; `u16::MAX` for characters outside the alphabet.
fn to_byte_table() -> &'static [u16; 512] {
    static TABLE: OnceLock<[u16; 512]> = OnceLock::new();
    TABLE.get_or_init(|| {
        let mut t = [u16::MAX; 512];
        for b in 0..=255u8 {
            t[byte_to_char(b) as usize] = u16::from(b);
        }
        t
    })
}

/// The byte a character of the alphabet stands for; `None` for characters outside it.
pub(crate) fn char_to_byte(c: char) -> Option<u8> {
    match to_byte_table().get(c as usize) {
        Some(&b) if b != u16::MAX => Some(b as u8),
        _ => None,
    }
}

/// Decodes a byte-level token string into the bytes it stands for. Characters outside the
/// alphabet (which a well-formed vocabulary never holds) are kept as their own UTF-8 bytes.
pub(crate) fn decode_into(text: &str, out: &mut Vec<u8>) {
    for c in text.chars() {
        match char_to_byte(c) {
            Some(b) => out.push(b),
            None => {
                let mut buf = [0u8; 4];
                out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
            }
        }
    }
}

/// Encodes raw bytes as a byte-level string (used by tests to build vocabularies).
#[cfg(test)]
pub(crate) fn encode(bytes: &[u8]) -> String {
    bytes.iter().map(|&b| byte_to_char(b)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn alphabet_round_trips_every_byte() {
        for b in 0..=255u8 {
            assert_eq!(char_to_byte(byte_to_char(b)), Some(b), "byte {b}");
        }
        assert_eq!(byte_to_char(b' '), 'Ġ');
        assert_eq!(byte_to_char(b'\n'), 'Ċ');
        assert_eq!(byte_to_char(b'a'), 'a');
        assert_eq!(char_to_byte('€'), None);
    }
}
