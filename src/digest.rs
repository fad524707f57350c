//! Short stable names made from content: a Message-ID for a mail that has none, ours for a
//! reply, a ref for a series' commits, a signature's hex.

/// Lower-case hex of `bytes`.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The first `n` bytes of SHA-256(`data`) in hex: a short stable name made from content
/// (a Message-ID for a mail that has none, ours for a reply).
pub fn short_digest(data: &[u8], n: usize) -> String {
    let digest = ring::digest::digest(&ring::digest::SHA256, data);
    hex(&digest.as_ref()[..n.min(32)])
}
