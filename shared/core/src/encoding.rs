//! Small text encodings used for identifiers and tokens: base62 and Crockford base32.

const BASE62: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
const CROCKFORD: &[u8; 32] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";

/// Base62 of a big-endian number given as bytes, left-padded with `0` to `width` characters.
/// Leading zero bytes are significant only through `width`, so callers pick a fixed width.
pub fn base62_encode(bytes: &[u8], width: usize) -> String {
    let mut digits: Vec<u8> = Vec::with_capacity(width);
    let mut number: Vec<u8> = bytes.to_vec();
    while number.iter().any(|&b| b != 0) {
        let mut rem: u32 = 0;
        for byte in number.iter_mut() {
            let acc = (rem << 8) | u32::from(*byte);
            *byte = (acc / 62) as u8;
            rem = acc % 62;
        }
        digits.push(BASE62[rem as usize]);
    }
    while digits.len() < width {
        digits.push(b'0');
    }
    digits.reverse();
    digits.into_iter().map(char::from).collect()
}

/// Whether every character is a base62 digit.
pub fn is_base62(text: &str) -> bool {
    text.bytes().all(|b| b.is_ascii_alphanumeric())
}

/// Crockford base32 of a 128-bit number, 26 characters (the ULID text form).
pub fn crockford_u128(mut value: u128) -> String {
    let mut out = [b'0'; 26];
    for slot in out.iter_mut().rev() {
        *slot = CROCKFORD[(value & 31) as usize];
        value >>= 5;
    }
    out.iter().map(|&b| char::from(b)).collect()
}

/// Lower-case hex of bytes.
pub fn hex(bytes: &[u8]) -> String {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        out.push(char::from(HEX[usize::from(b >> 4)]));
        out.push(char::from(HEX[usize::from(b & 15)]));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base62_matches_known_values() {
        let cases: &[(&[u8], usize, &str)] = &[
            (&[0], 1, "0"),
            (&[61], 1, "z"),
            (&[62], 2, "10"),
            (&[1, 0], 3, "048"),
            (&[0xff, 0xff, 0xff, 0xff], 6, "4gfFC3"),
            (&[], 4, "0000"),
        ];
        for (bytes, width, expected) in cases {
            assert_eq!(base62_encode(bytes, *width), *expected, "{bytes:?}");
        }
    }

    #[test]
    fn base62_of_256_bits_fits_in_43_characters() {
        assert_eq!(base62_encode(&[0xff; 32], 43).len(), 43);
        assert!(is_base62(&base62_encode(&[0xab; 32], 43)));
    }

    #[test]
    fn crockford_is_the_ulid_alphabet() {
        assert_eq!(crockford_u128(0), "00000000000000000000000000");
        assert_eq!(crockford_u128(u128::MAX), "7ZZZZZZZZZZZZZZZZZZZZZZZZZ");
        assert_eq!(crockford_u128(32), "00000000000000000000000010");
    }

    #[test]
    fn hex_is_lower_case() {
        assert_eq!(hex(&[0, 0xab, 0x10]), "00ab10");
    }
}
