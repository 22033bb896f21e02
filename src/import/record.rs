//! One row of an import file: the line it starts on, and the record read
//! from it or why there is none. Why never shows a value of the row: a
//! secret typed into the wrong field (a password in `active`, a hash as a
//! number) would be printed with the refusal.

use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::Value;

use crate::principals::ImportedPrincipal;

/// One row of a file: the line it starts on, and what it holds or why it
/// is unusable.
pub struct Row {
    pub line: usize,
    pub record: Result<ImportedPrincipal, String>,
}

/// `T` read from the JSON `text` (one line, one object of an export), or
/// why not: the field and what it should be, never what it is.
pub fn from_text<'a, T: Deserialize<'a>>(text: &'a str) -> Result<T, String> {
    let mut de = serde_json::Deserializer::from_str(text);
    let read = serde_path_to_error::deserialize(&mut de).map_err(refusal)?;
    de.end().map_err(|e| without_value(&e))?;
    Ok(read)
}

/// `T` read from `value`, or why not, as [`from_text`] says it.
pub fn from_value<T: DeserializeOwned>(value: Value) -> Result<T, String> {
    serde_path_to_error::deserialize(value).map_err(refusal)
}

/// The field that failed (none for the row itself, nor for a key that
/// is no field, which the message names) and why, its control characters
/// escaped: a key holding a newline cannot forge a line of the report.
fn refusal(e: serde_path_to_error::Error<serde_json::Error>) -> String {
    let path = e.path().to_string();
    let why = without_value(e.inner());
    let said = match path.as_str() {
        "." => why,
        _ if why.starts_with("unknown field") => why,
        field => format!("{field}: {why}"),
    };
    said.chars()
        .flat_map(|c| match c.is_control() {
            true => c.escape_default().collect::<Vec<_>>(),
            false => vec![c],
        })
        .collect()
}

/// serde_json's message without the value it found, nor its " at line L
/// column C" (within one line, only the column says anything, and only
/// for text that is not JSON).
fn without_value(e: &serde_json::Error) -> String {
    let message = e.to_string();
    let message = message.split(" at line ").next().unwrap_or_default();
    if let Some(found) = message.strip_prefix("invalid type: ") {
        let (found, expected) = found
            .split_once(", expected ")
            .unwrap_or((found, "another"));
        return format!("expected {expected}, not {}", kind(found));
    }
    let invalid = ["invalid value: ", "invalid length "];
    if invalid.iter().any(|p| message.starts_with(p)) {
        let expected = message
            .split_once(", expected ")
            .map_or("another", |(_, e)| e);
        return format!("expected {expected}");
    }
    match e.classify() {
        serde_json::error::Category::Syntax | serde_json::error::Category::Eof => {
            format!("{message} (column {})", e.column())
        }
        _ => message.to_string(),
    }
}

/// The kind of a value serde found (`string "..."`, `integer `5``), by
/// its first word alone.
fn kind(found: &str) -> &'static str {
    match found.split([' ', '`']).next().unwrap_or_default() {
        "string" => "a string",
        "integer" | "floating" => "a number",
        "boolean" => "a boolean",
        "map" => "an object",
        "sequence" => "a list",
        "null" | "unit" => "null",
        _ => "another type",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(serde::Deserialize, Debug)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Sample {
        name: String,
        on: Option<bool>,
        count: Option<u32>,
        list: Option<Vec<String>>,
    }

    #[test]
    fn a_refusal_names_the_field_never_the_value() {
        let why = |text: &str| from_text::<Sample>(text).unwrap_err();
        assert_eq!(
            why(r#"{"name": 4242}"#),
            "name: expected a string, not a number"
        );
        assert_eq!(
            why(r#"{"name": "a", "on": "s3cret"}"#),
            "on: expected a boolean, not a string"
        );
        assert_eq!(why(r#"{"name": "a", "count": -7}"#), "count: expected u32");
        assert_eq!(
            why(r#"{"name": "a", "list": ["x", 99]}"#),
            "list[1]: expected a string, not a number"
        );
        assert_eq!(
            why(r#"{"name": "a", "on": null, "count": 1.5}"#),
            "count: expected u32, not a number"
        );
        assert!(why(r#"{"on": true}"#).starts_with("missing field `name`"));
        assert!(why(r#"{"name": "a", "nom": 1}"#).starts_with("unknown field `nom`"));
        assert!(why("{\"name\": \"a\", \"n\\nom\": 1}").starts_with("unknown field `n\\nom`"));
        assert_eq!(
            why(r#"{"name": "a"#),
            "name: EOF while parsing a string (column 11)"
        );
        let value = serde_json::json!({ "name": "a", "on": "s3cret" });
        assert_eq!(
            from_value::<Sample>(value).unwrap_err(),
            "on: expected a boolean, not a string"
        );
    }
}
