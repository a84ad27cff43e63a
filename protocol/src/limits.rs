//! Size limits the caller passes to the parser, so no input can make it allocate beyond them.

/// Bounds on one inbound frame. Exceeding any of them is a [`crate::ParseError`] raised as soon
/// as the excess is visible, before the rest of the frame arrives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Whole frame: command line, headers, body and the NUL.
    pub max_frame_bytes: usize,
    /// Number of header entries, repeats included.
    pub max_headers: usize,
    /// One header line (or the command line), without its EOL.
    pub max_header_line_bytes: usize,
    /// The body alone.
    pub max_body_bytes: usize,
}

impl Limits {
    /// Herald's defaults for a connected session: 4 MiB frames, 64 headers of 8 KiB.
    pub const DEFAULT: Limits = Limits {
        max_frame_bytes: 4 * 1024 * 1024,
        max_headers: 64,
        max_header_line_bytes: 8 * 1024,
        max_body_bytes: 4 * 1024 * 1024,
    };
}

impl Default for Limits {
    fn default() -> Limits {
        Limits::DEFAULT
    }
}
