//! WebSocket framing as far as a tunnel needs it (RFC 6455 §5.2), without
//! I/O: where each frame ends in a byte stream relayed untouched, so that a
//! close frame of portero's own can be put between two frames and never
//! inside one; and that close frame. Payloads are never read or changed.

/// Follows the frames of one direction of a WebSocket connection.
#[derive(Debug, Default, Clone)]
pub struct Frames {
    /// The bytes of a frame header read so far (at most 14).
    head: [u8; 14],
    head_len: usize,
    /// Payload bytes of the current frame still to come.
    payload_left: u64,
    /// A close frame has passed: the sender says no more.
    closed: bool,
}

const OPCODE_CLOSE: u8 = 0x8;

impl Frames {
    /// Between two frames: a frame of portero's own may go here.
    pub fn at_boundary(&self) -> bool {
        self.head_len == 0 && self.payload_left == 0
    }

    /// A close frame has been relayed in this direction.
    pub fn closed(&self) -> bool {
        self.closed
    }

    /// How many more bytes belong to the current frame, at most; reading no
    /// more than this never crosses into the next frame. 0 at a boundary.
    pub fn to_boundary(&self) -> u64 {
        if self.payload_left > 0 {
            return self.payload_left;
        }
        if self.head_len == 0 {
            return 0;
        }
        // Part of a header: at least what completes it (a header with its
        // length or mask still unread asks for a byte at a time).
        match header_len(&self.head[..self.head_len]) {
            Some(len) => (len - self.head_len) as u64,
            None => 1,
        }
    }

    /// Takes in `bytes`, relayed in order.
    pub fn advance(&mut self, mut bytes: &[u8]) {
        while !bytes.is_empty() {
            if self.payload_left > 0 {
                let n = self.payload_left.min(bytes.len() as u64);
                self.payload_left -= n;
                bytes = &bytes[n as usize..];
                continue;
            }
            self.head[self.head_len] = bytes[0];
            self.head_len += 1;
            bytes = &bytes[1..];
            let head = &self.head[..self.head_len];
            if header_len(head) == Some(self.head_len) {
                if head[0] & 0x0f == OPCODE_CLOSE {
                    self.closed = true;
                }
                self.payload_left = payload_len(head);
                self.head_len = 0;
            }
        }
    }
}

/// The whole header's length, once its first two bytes are known.
fn header_len(head: &[u8]) -> Option<usize> {
    let second = *head.get(1)?;
    let extended = match second & 0x7f {
        126 => 2,
        127 => 8,
        _ => 0,
    };
    let mask = if second & 0x80 != 0 { 4 } else { 0 };
    Some(2 + extended + mask)
}

/// The payload length of a complete header.
fn payload_len(head: &[u8]) -> u64 {
    match head[1] & 0x7f {
        126 => u16::from_be_bytes([head[2], head[3]]) as u64,
        127 => u64::from_be_bytes(head[2..10].try_into().expect("eight bytes")),
        n => n as u64,
    }
}

/// A close frame (RFC 6455 §5.5.1) with a status code and a short reason:
/// unmasked from a server, masked with `mask` from a client (§5.3).
pub fn close_frame(code: u16, reason: &str, mask: Option<[u8; 4]>) -> Vec<u8> {
    // A control frame's payload is at most 125 bytes.
    let reason = &reason.as_bytes()[..reason.len().min(123)];
    let mut payload = Vec::with_capacity(2 + reason.len());
    payload.extend_from_slice(&code.to_be_bytes());
    payload.extend_from_slice(reason);
    let mut frame = vec![0x80 | OPCODE_CLOSE, payload.len() as u8];
    if let Some(key) = mask {
        frame[1] |= 0x80;
        frame.extend_from_slice(&key);
        for (i, b) in payload.iter_mut().enumerate() {
            *b ^= key[i % 4];
        }
    }
    frame.extend_from_slice(&payload);
    frame
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// A frame as a peer would send it.
    fn frame(opcode: u8, payload: &[u8], mask: Option<[u8; 4]>) -> Vec<u8> {
        let mut f = vec![0x80 | opcode];
        let m = if mask.is_some() { 0x80 } else { 0 };
        match payload.len() {
            n if n < 126 => f.push(m | n as u8),
            n if n <= 0xffff => {
                f.push(m | 126);
                f.extend_from_slice(&(n as u16).to_be_bytes());
            }
            n => {
                f.push(m | 127);
                f.extend_from_slice(&(n as u64).to_be_bytes());
            }
        }
        if let Some(key) = mask {
            f.extend_from_slice(&key);
            f.extend(payload.iter().enumerate().map(|(i, b)| b ^ key[i % 4]));
        } else {
            f.extend_from_slice(payload);
        }
        f
    }

    #[test]
    fn close_frames_follow_rfc_6455() {
        assert_eq!(
            close_frame(1008, "token expired", None),
            [&[0x88, 15, 0x03, 0xf0][..], b"token expired"].concat()
        );
        let masked = close_frame(1001, "", Some([1, 2, 3, 4]));
        assert_eq!(masked, [0x88, 0x82, 1, 2, 3, 4, 0x03 ^ 1, 0xe9 ^ 2]);
        let mut f = Frames::default();
        f.advance(&masked);
        assert!(f.at_boundary() && f.closed());
    }

    proptest! {
        /// However a stream of frames is cut into reads, the tracker is at
        /// a boundary exactly where a frame ends, and `to_boundary` never
        /// reaches past the frame under way.
        #[test]
        fn boundaries_are_found_in_any_cut(
            frames in prop::collection::vec(
                (prop::sample::select(vec![0x0u8, 0x1, 0x2, 0x9, 0xa]),
                 prop::sample::select(vec![0usize, 1, 125, 126, 127, 300, 65535, 65536, 70000]),
                 any::<bool>()),
                1..6),
            cuts in prop::collection::vec(any::<prop::sample::Index>(), 0..8),
        ) {
            let mut stream = Vec::new();
            let mut ends = Vec::new();
            for (opcode, len, masked) in &frames {
                let payload = vec![0xa5; *len];
                stream.extend(frame(*opcode, &payload, masked.then_some([9, 8, 7, 6])));
                ends.push(stream.len());
            }
            let mut cuts: Vec<usize> = cuts.iter().map(|i| i.index(stream.len())).collect();
            cuts.push(stream.len());
            cuts.sort_unstable();
            let mut f = Frames::default();
            let mut at = 0;
            for cut in cuts {
                while at < cut {
                    let limit = if f.at_boundary() { cut - at } else { f.to_boundary() as usize };
                    let n = limit.min(cut - at);
                    f.advance(&stream[at..at + n]);
                    at += n;
                    prop_assert_eq!(f.at_boundary(), ends.contains(&at), "at {}", at);
                }
            }
            prop_assert!(f.at_boundary());
            prop_assert!(!f.closed());
        }
    }
}
