//! COMPRESS=DEFLATE (RFC 4978): after the tagged OK to `COMPRESS DEFLATE`,
//! both directions are one raw DEFLATE stream each (RFC 1951, no zlib
//! header), and every response batch ends with a sync flush so the client
//! can read it at once. Mobile clients on slow links save most of the
//! bytes of FETCH and LIST.
//!
//! Inflating is bounded per call ([`MAX_INFLATE`]): a few kilobytes from
//! the network could otherwise expand to megabytes in one go; what is not
//! inflated yet waits here, and the session takes more only when its
//! command reader needs it.

use flate2::{Compress, Compression, Decompress, FlushCompress, FlushDecompress, Status};
use std::io;

/// Most plain bytes produced by one [`Deflate::inflate`] call.
pub const MAX_INFLATE: usize = 64 * 1024;

pub struct Deflate {
    inflater: Decompress,
    deflater: Compress,
    /// Compressed input not yet inflated.
    pending: Vec<u8>,
    /// The last inflate stopped at its bound: more output may be inside
    /// the inflater even with no input pending.
    full: bool,
}

impl Default for Deflate {
    fn default() -> Self {
        Deflate {
            inflater: Decompress::new(false),
            deflater: Compress::new(Compression::new(6), false),
            pending: Vec::new(),
            full: false,
        }
    }
}

fn broken(e: impl std::fmt::Display) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, format!("bad DEFLATE data: {e}"))
}

impl Deflate {
    /// Adds compressed bytes from the client.
    pub fn feed(&mut self, compressed: &[u8]) {
        self.pending.extend_from_slice(compressed);
    }

    /// True when fed bytes are still waiting to be inflated.
    pub fn has_pending(&self) -> bool {
        !self.pending.is_empty() || self.full
    }

    /// Up to [`MAX_INFLATE`] plain bytes from what was fed.
    pub fn inflate(&mut self) -> io::Result<Vec<u8>> {
        let mut out = vec![0u8; MAX_INFLATE];
        let mut filled = 0;
        while filled < MAX_INFLATE {
            let (before_in, before_out) = (self.inflater.total_in(), self.inflater.total_out());
            let room = out.get_mut(filled..).unwrap_or_default();
            let status = self
                .inflater
                .decompress(&self.pending, room, FlushDecompress::Sync)
                .map_err(broken)?;
            let used = usize::try_from(self.inflater.total_in() - before_in).unwrap_or(0);
            let made = usize::try_from(self.inflater.total_out() - before_out).unwrap_or(0);
            self.pending.drain(..used.min(self.pending.len()));
            filled += made;
            if status == Status::StreamEnd {
                return Err(broken("the client ended the stream"));
            }
            if used == 0 && made == 0 {
                break; // needs more input
            }
        }
        self.full = filled >= MAX_INFLATE;
        out.truncate(filled);
        Ok(out)
    }

    /// Compresses a batch of responses, ending with a sync flush.
    pub fn deflate(&mut self, plain: &[u8]) -> io::Result<Vec<u8>> {
        let mut out = Vec::with_capacity(plain.len() / 2 + 64);
        let mut rest = plain;
        loop {
            out.reserve(rest.len() / 2 + 1024);
            let before_in = self.deflater.total_in();
            let before_out = out.len();
            self.deflater
                .compress_vec(rest, &mut out, FlushCompress::Sync)
                .map_err(broken)?;
            let used = usize::try_from(self.deflater.total_in() - before_in).unwrap_or(0);
            rest = rest.get(used..).unwrap_or_default();
            // Done when all input is in and the flush left room to spare.
            if rest.is_empty() && out.len() < out.capacity() {
                return Ok(out);
            }
            if used == 0 && out.len() == before_out && out.len() < out.capacity() {
                return Ok(out);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_directions_round_trip_and_inflation_is_bounded() {
        let mut server = Deflate::default();
        let mut client = Deflate::default();
        let wire = client.deflate(b"a1 NOOP\r\n").unwrap();
        server.feed(&wire);
        assert_eq!(server.inflate().unwrap(), b"a1 NOOP\r\n");
        assert!(!server.has_pending());
        // A bomb: 10 MB of zeros in a few kilobytes, out 64 KiB at a time.
        let bomb = client.deflate(&vec![0u8; 10 << 20]).unwrap();
        assert!(bomb.len() < 64 * 1024);
        server.feed(&bomb);
        let first = server.inflate().unwrap();
        assert!(first.len() <= MAX_INFLATE && !first.is_empty());
        assert!(server.has_pending());
        let mut total = first.len();
        while server.has_pending() {
            total += server.inflate().unwrap().len();
        }
        assert_eq!(total, 10 << 20);
        server.feed(b"\xff\xff\xff\xff garbage");
        assert!(server.inflate().is_err());
    }
}
