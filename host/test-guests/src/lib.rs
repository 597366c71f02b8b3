//! Paths of test guests and scripts, built from source by this crate's build script.
//! A test reads the bytes with [`read`].

include!(concat!(env!("OUT_DIR"), "/guests.rs"));

/// Reads a built module.
pub fn read(path: &str) -> Vec<u8> {
    std::fs::read(path).unwrap_or_else(|e| panic!("reading built guest {path}: {e}"))
}
