//! A file's text and positions in it: what every diagnostic points at.

use std::path::{Path, PathBuf};

/// A file as read from disk, kept whole so that errors can quote its lines.
#[derive(Debug, Clone)]
pub struct Source {
    pub path: PathBuf,
    pub text: String,
}

/// A position in a source: 1-based line and column (in characters), and how many
/// characters a caret should underline.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, serde::Serialize)]
pub struct Span {
    pub line: u32,
    pub col: u32,
    pub len: u32,
}

impl Span {
    #[must_use]
    pub const fn new(line: u32, col: u32, len: u32) -> Self {
        Self { line, col, len }
    }

    /// The span moved `chars` characters to the right on the same line, `len` wide:
    /// for pointing inside a scalar (a template reference in a command).
    #[must_use]
    pub fn shifted(self, chars: u32, len: u32) -> Self {
        Self::new(self.line, self.col + chars, len)
    }
}

impl Source {
    #[must_use]
    pub fn new(path: impl Into<PathBuf>, text: impl Into<String>) -> Self {
        Self {
            path: path.into(),
            text: text.into(),
        }
    }

    #[must_use]
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The text of a 1-based line, without its line break.
    #[must_use]
    pub fn line(&self, line: u32) -> Option<&str> {
        let index = usize::try_from(line.checked_sub(1)?).ok()?;
        self.text.lines().nth(index)
    }
}
