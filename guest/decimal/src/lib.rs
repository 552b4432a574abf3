//! The value convention of the example executor functions (`transfer`,
//! `counter`): an unsigned 64-bit number stored as decimal ASCII, with a key
//! that was never written reading as 0.
//!
//! This is a convention of the examples, not of the executor: the SDK and the
//! host treat values as opaque bytes. It is a crate of its own, rather than a
//! module of one example, because a guest crate cannot depend on another guest
//! crate: both would call `export_executor!` and export the same wasm
//! symbols. It depends on nothing, so a host or a test can read and write
//! the examples' balances natively with the same code.
//!
//! ```
//! assert_eq!(example_decimal::decode(None), Ok(0));
//! assert_eq!(example_decimal::decode(Some(b"42")), Ok(42));
//! assert_eq!(example_decimal::encode(42), b"42");
//! assert!(example_decimal::decode(Some(b"-1")).is_err());
//! ```

/// Decodes a stored value; `None` (never written) is 0. Anything but one or
/// more ASCII digits naming a u64 (leading zeros allowed) is an error whose
/// message quotes the value.
pub fn decode(datum: Option<&[u8]>) -> Result<u64, String> {
    let Some(bytes) = datum else { return Ok(0) };
    core::str::from_utf8(bytes)
        .ok()
        .filter(|s| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()))
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| format!("value {:?} is not a decimal u64", String::from_utf8_lossy(bytes)))
}

/// Encodes a value: its shortest decimal form.
pub fn encode(value: u64) -> Vec<u8> {
    value.to_string().into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn absent_is_zero_and_values_round_trip() {
        assert_eq!(decode(None), Ok(0));
        for value in [0, 1, 9, 10, 1_000_000, u64::MAX] {
            assert_eq!(decode(Some(&encode(value))), Ok(value));
        }
        assert_eq!(encode(u64::MAX), b"18446744073709551615");
    }

    #[test]
    fn leading_zeros_are_accepted() {
        assert_eq!(decode(Some(b"007")), Ok(7));
    }

    #[test]
    fn anything_but_digits_of_a_u64_is_rejected() {
        // `str::parse` alone would accept the `+`.
        for bad in [&b""[..], b"+1", b"-1", b" 1", b"1 ", b"1.0", b"0x10", b"18446744073709551616", b"\xff"] {
            let err = decode(Some(bad)).unwrap_err();
            assert!(err.contains("is not a decimal u64"), "{bad:?}: {err}");
        }
    }
}
