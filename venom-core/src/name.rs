//! Segment names.
//!
//! A venom name is what users pass (`"prices"`); the POSIX shared-memory
//! object is `/venom.<name>` (visible as `/dev/shm/venom.<name>`). Names are
//! restricted so that they are portable file names and cannot escape
//! `/dev/shm`.

use crate::error::{Error, Result};

/// Longest accepted user name, in bytes. `NAME_MAX` is 255; we keep well
/// below it so derived names (suffixes) still fit.
pub const MAX_NAME_LEN: usize = 200;

/// Prefix of every POSIX shared-memory object venom creates.
pub const OS_PREFIX: &str = "venom.";

/// A validated segment name.
///
/// ```
/// use venom_core::SegmentName;
/// assert!(SegmentName::new("prices-eu_1.v2").is_ok());
/// assert!(SegmentName::new("../etc/passwd").is_err());
/// assert!(SegmentName::new("").is_err());
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct SegmentName(String);

impl SegmentName {
    /// Validates `name`: 1 to [`MAX_NAME_LEN`] bytes of ASCII letters,
    /// digits, `_`, `-` and `.`, not starting with `.`.
    pub fn new(name: &str) -> Result<Self> {
        let bad = |reason| Err(Error::InvalidName { name: name.to_owned(), reason });
        if name.is_empty() {
            return bad("empty");
        }
        if name.len() > MAX_NAME_LEN {
            return bad("longer than 200 bytes");
        }
        if name.starts_with('.') {
            return bad("starts with '.'");
        }
        if !name.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.')) {
            return bad("only ASCII letters, digits, '_', '-' and '.' are allowed");
        }
        Ok(SegmentName(name.to_owned()))
    }

    /// The user-facing name.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The POSIX shared-memory object name, without the leading slash.
    pub fn os_id(&self) -> String {
        format!("{OS_PREFIX}{}", self.0)
    }
}

impl std::fmt::Display for SegmentName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_and_rejects() {
        for ok in ["a", "prices", "A-b_c.9", &"x".repeat(MAX_NAME_LEN)] {
            assert!(SegmentName::new(ok).is_ok(), "{ok}");
        }
        for bad in ["", ".hidden", "a/b", "a b", "é", "a\0b", &"x".repeat(MAX_NAME_LEN + 1)] {
            assert!(matches!(SegmentName::new(bad), Err(Error::InvalidName { .. })), "{bad:?}");
        }
    }
}
