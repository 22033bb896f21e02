//! One row of an import file: the line it starts on, and the record read
//! from it or why there is none.

use crate::principals::ImportedPrincipal;

/// One row of a file: the line it starts on, and what it holds or why it
/// is unusable.
pub struct Row {
    pub line: usize,
    pub record: Result<ImportedPrincipal, String>,
}

/// serde_json's message without its " at line L column C": within one
/// line, only the column says anything.
pub fn without_position(e: &serde_json::Error) -> String {
    let message = e.to_string();
    let message = message.split(" at line ").next().unwrap_or_default();
    format!("{message} (column {})", e.column())
}
