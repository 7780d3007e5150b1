//! Versioned little-endian wire format.
pub const HEADER_LEN: usize = 4 + 2 + 1 + 1 + 32;
pub const CIPHERTEXT_META_LEN: usize = 2 + 8 + 1;
