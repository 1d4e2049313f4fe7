//! Length-prefixed messages, as both gRPC and Connect streams frame them:
//! one flags byte, a big-endian u32 length, the payload.
//!
//! gRPC frames every message so (flag 1: compressed); Connect frames the
//! messages of streaming calls so (flag 1: compressed, flag 2: the
//! end-of-stream message, always JSON). The bridge writes one gRPC frame
//! per request and reads gRPC frames back, and reads and writes Connect
//! envelopes for WatchAlerts.

use bytes::{Buf, Bytes, BytesMut};

/// Bytes before the payload: flags, then the length.
pub const PREFIX_BYTES: usize = 5;
/// The payload is compressed (we never compress, and refuse it).
pub const FLAG_COMPRESSED: u8 = 0b01;
/// Connect only: the last message of a response stream (status, metadata).
pub const FLAG_END_STREAM: u8 = 0b10;

/// `payload` behind a prefix with `flags`.
pub fn encode(flags: u8, payload: &[u8]) -> Bytes {
    let mut framed = BytesMut::with_capacity(PREFIX_BYTES + payload.len());
    framed.extend_from_slice(&[flags]);
    // Payloads are bounded far below 4 GiB (request bodies by
    // `MAX_MESSAGE_BYTES`, replies by what the engine produces).
    framed.extend_from_slice(&(payload.len() as u32).to_be_bytes());
    framed.extend_from_slice(payload);
    framed.freeze()
}

/// One framed message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    /// Its flags byte.
    pub flags: u8,
    /// Its payload.
    pub payload: Bytes,
}

/// Cuts a byte stream that arrives in arbitrary chunks into frames.
#[derive(Debug)]
pub struct Frames {
    buffer: BytesMut,
    max_payload: usize,
}

impl Frames {
    /// A decoder refusing payloads longer than `max_payload` bytes.
    pub fn new(max_payload: usize) -> Self {
        Self {
            buffer: BytesMut::new(),
            max_payload,
        }
    }

    /// Appends bytes as they arrive.
    pub fn push(&mut self, chunk: &[u8]) {
        self.buffer.extend_from_slice(chunk);
    }

    /// The next whole frame, if buffered; an error when a prefix announces
    /// more than the limit (nothing is buffered for it).
    pub fn next_frame(&mut self) -> Result<Option<Frame>, String> {
        if self.buffer.len() < PREFIX_BYTES {
            return Ok(None);
        }
        let flags = self.buffer[0];
        let length = u32::from_be_bytes([
            self.buffer[1],
            self.buffer[2],
            self.buffer[3],
            self.buffer[4],
        ]) as usize;
        if length > self.max_payload {
            return Err(format!(
                "a message of {length} bytes is over the limit of {} bytes",
                self.max_payload
            ));
        }
        if self.buffer.len() < PREFIX_BYTES + length {
            return Ok(None);
        }
        self.buffer.advance(PREFIX_BYTES);
        let payload = self.buffer.split_to(length).freeze();
        Ok(Some(Frame { flags, payload }))
    }

    /// Bytes left over that make no whole frame (a truncated stream when
    /// the input has ended).
    pub fn leftover(&self) -> usize {
        self.buffer.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_cut_across_chunks_come_out_whole_and_in_order() {
        let mut stream = encode(0, b"first").to_vec();
        stream.extend_from_slice(&encode(FLAG_END_STREAM, b"{}"));
        let mut frames = Frames::new(100);
        let mut out = Vec::new();
        for byte in stream {
            frames.push(&[byte]);
            while let Some(frame) = frames.next_frame().unwrap() {
                out.push(frame);
            }
        }
        assert_eq!(
            out,
            vec![
                Frame {
                    flags: 0,
                    payload: Bytes::from_static(b"first")
                },
                Frame {
                    flags: FLAG_END_STREAM,
                    payload: Bytes::from_static(b"{}")
                },
            ]
        );
        assert_eq!(frames.leftover(), 0);
    }

    #[test]
    fn an_oversized_length_is_refused_before_its_payload_arrives() {
        let mut frames = Frames::new(4);
        frames.push(&[0, 0, 0, 0, 5]);
        assert!(frames.next_frame().unwrap_err().contains("5 bytes"));
    }

    #[test]
    fn a_truncated_frame_is_left_over() {
        let mut frames = Frames::new(100);
        frames.push(&encode(0, b"abc")[..6]);
        assert_eq!(frames.next_frame().unwrap(), None);
        assert_eq!(frames.leftover(), 6);
    }
}
