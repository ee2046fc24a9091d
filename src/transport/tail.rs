//! The tail of a stream, at most `OUTPUT_CAP` bytes: both transports stream a command's
//! output through it so a step that prints gigabytes costs a bounded amount of memory,
//! and the end of the output (where the errors are) is what is kept.

use super::OUTPUT_CAP;

/// Bytes seen last on one stream, bounded by a cap.
#[derive(Debug)]
pub(crate) struct Tail {
    buf: Vec<u8>,
    cap: usize,
    /// Whether bytes were forgotten, so the kept part may start inside a character.
    cut: bool,
}

impl Default for Tail {
    fn default() -> Self {
        Self::with_cap(OUTPUT_CAP)
    }
}

impl Tail {
    pub(crate) fn with_cap(cap: usize) -> Self {
        Self {
            buf: Vec::new(),
            cap,
            cut: false,
        }
    }

    /// Appends `bytes`, forgetting what falls out of the window. Trimming waits until twice
    /// the cap is held so that the cost stays linear in the bytes seen.
    pub(crate) fn push(&mut self, bytes: &[u8]) {
        if bytes.len() >= self.cap {
            self.cut |= bytes.len() > self.cap || !self.buf.is_empty();
            self.buf.clear();
            self.buf.extend_from_slice(&bytes[bytes.len() - self.cap..]);
            return;
        }
        self.buf.extend_from_slice(bytes);
        if self.buf.len() > 2 * self.cap {
            self.cut = true;
            self.buf.drain(..self.buf.len() - self.cap);
        }
    }

    /// The kept tail as text: invalid UTF-8 is replaced, and a character cut in half by the
    /// window is dropped rather than shown as garbage.
    pub(crate) fn into_string(self) -> String {
        let start = self.buf.len().saturating_sub(self.cap);
        let mut tail = &self.buf[start..];
        if self.cut || start > 0 {
            let cut = tail
                .iter()
                .take(3)
                .take_while(|b| (**b & 0b1100_0000) == 0b1000_0000)
                .count();
            tail = &tail[cut..];
        }
        String::from_utf8_lossy(tail).into_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_output_is_kept_whole() {
        let mut tail = Tail::with_cap(8);
        tail.push(b"abc");
        tail.push(b"de");
        assert_eq!(tail.into_string(), "abcde");
    }

    #[test]
    fn long_output_keeps_only_the_last_cap_bytes() {
        let mut tail = Tail::with_cap(4);
        for chunk in [&b"01234"[..], b"56", b"789", b"abcdefgh", b"ij"] {
            tail.push(chunk);
        }
        assert_eq!(tail.into_string(), "ghij");
    }

    #[test]
    fn memory_stays_bounded_by_twice_the_cap() {
        let mut tail = Tail::with_cap(10);
        for _ in 0..1000 {
            tail.push(b"xyz");
            assert!(tail.buf.len() <= 20);
        }
    }

    #[test]
    fn a_character_cut_by_the_window_is_dropped() {
        let mut tail = Tail::with_cap(4);
        tail.push("aé日".as_bytes()); // 1 + 2 + 3 bytes: the window starts inside `é`
        assert_eq!(tail.into_string(), "日");
    }

    #[test]
    fn invalid_utf8_is_replaced() {
        let mut tail = Tail::default();
        tail.push(b"ok\xff");
        assert_eq!(tail.into_string(), "ok\u{fffd}");
    }
}
