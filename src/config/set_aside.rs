//! The errors serde stops at, turned into problems and set aside, so that
//! the rest of the file is read and every problem is named at once: an
//! unknown key is blanked out; a value of the wrong type is replaced by a
//! stand-in of the right one (or, for a table, blanked out), and what the
//! checks then say of that line is dropped, being about the stand-in.
//! No edit adds or removes a line, so every line number stays true.

use std::ops::Range;

use super::check::names::nearest;
use super::key_paths::KeyPaths;
use super::Problem;

/// A problem serde stopped at, now set aside in the text.
pub(super) struct SetAside {
    pub(super) problem: Problem,
    /// The value was replaced by a stand-in: the checks' problems on its
    /// line, or under its key, follow from this one.
    pub(super) stand_in: bool,
}

/// The problem `e` names, set aside in `text` so that the next parse goes
/// past it; `None` (`text` unchanged) when it cannot be.
pub(super) fn set_aside(
    text: &mut String,
    keys: &KeyPaths,
    e: &toml::de::Error,
) -> Option<SetAside> {
    if let Some(problem) = unknown_key(text, keys, e) {
        return Some(SetAside {
            problem,
            stand_in: false,
        });
    }
    let problem = wrong_type(text, keys, e).or_else(|| missing_in_inline_table(text, keys, e))?;
    Some(SetAside {
        problem,
        stand_in: true,
    })
}

/// `e`, which cannot be set aside, as a problem beside those found before it.
pub(super) fn stopped_at(text: &str, keys: &KeyPaths, e: &toml::de::Error) -> Problem {
    let message = without_strings(e.message());
    match e.span() {
        Some(span) => Problem {
            line: Some(line_of(text, span.start)),
            key: keys
                .at(span.start)
                .unwrap_or_else(|| "(top level)".to_string()),
            message,
        },
        None => Problem {
            line: None,
            key: "(top level)".to_string(),
            message,
        },
    }
}

/// A value of the wrong type (`grace_period = 5`), as a problem saying
/// what the key takes, replaced in `text` by a stand-in of that type.
/// `None` if `e` is another error, or the value cannot be replaced alone.
fn wrong_type(text: &mut String, keys: &KeyPaths, e: &toml::de::Error) -> Option<Problem> {
    let message = e.message();
    let (kind, rest) = ["invalid type: ", "invalid value: "]
        .into_iter()
        .find_map(|kind| Some((kind, message.strip_prefix(kind)?)))?;
    let (found, expected) = rest.rsplit_once(", expected ")?;
    let span = e.span()?;
    if text[span.clone()].contains('\n') {
        return None;
    }
    let key = keys.at(span.start)?;
    let mut candidate = text.clone();
    match stand_in(expected)? {
        StandIn::Value(value) => candidate.replace_range(span.clone(), value),
        StandIn::Absent => {
            let entry = whole_entry(text, span.clone())?;
            candidate.replace_range(entry.clone(), &" ".repeat(entry.len()));
        }
    }
    toml::from_str::<toml::Table>(&candidate).ok()?;
    let problem = Problem {
        line: Some(line_of(text, span.start)),
        key,
        message: format!(
            "{kind}{}, expected {}",
            found_type(found),
            readable(expected)
        ),
    };
    *text = candidate;
    Some(problem)
}

/// serde's `found` as its type alone: `string "postgres://u:pw@db"` may be
/// a secret written in the wrong place, so a string is never echoed.
fn found_type(found: &str) -> &str {
    if found.starts_with("string ") {
        "a string"
    } else {
        found
    }
}

/// A message of serde's with the string it quotes taken out
/// (`invalid type: string "...", expected ...`), for the same reason.
fn without_strings(message: &str) -> String {
    for kind in ["invalid type: ", "invalid value: "] {
        if let Some((found, expected)) = message
            .strip_prefix(kind)
            .and_then(|rest| rest.rsplit_once(", expected "))
        {
            return format!("{kind}{}, expected {expected}", found_type(found));
        }
    }
    message.to_string()
}

/// A key missing from an inline table written on one line
/// (`concurrency = { }`), as a problem, the whole entry blanked out.
fn missing_in_inline_table(
    text: &mut String,
    keys: &KeyPaths,
    e: &toml::de::Error,
) -> Option<Problem> {
    e.message().strip_prefix("missing field `")?;
    let span = e.span()?;
    if !text[span.clone()].starts_with('{') || text[span.clone()].contains('\n') {
        return None;
    }
    let entry = whole_entry(text, span.clone())?;
    let mut candidate = text.clone();
    candidate.replace_range(entry.clone(), &" ".repeat(entry.len()));
    toml::from_str::<toml::Table>(&candidate).ok()?;
    let problem = Problem {
        line: Some(line_of(text, span.start)),
        key: keys.at(span.start)?,
        message: e.message().to_string(),
    };
    *text = candidate;
    Some(problem)
}

/// What replaces a value of the wrong type.
enum StandIn {
    /// A value of the type the key takes.
    Value(&'static str),
    /// Nothing: the key is left out (a table, whose own keys a stand-in
    /// would have to name).
    Absent,
}

/// The stand-in for a value of serde's `expected` type; `None` for a type
/// this does not know.
fn stand_in(expected: &str) -> Option<StandIn> {
    Some(match expected {
        "a string" => StandIn::Value("\"\""),
        e if e.starts_with("a duration") || e.starts_with("a size") => StandIn::Value("\"\""),
        // 1: a count that must be at least 1 is not refused a second time.
        "u8" | "u16" | "u32" | "u64" | "usize" | "i32" | "i64" => StandIn::Value("1"),
        "f32" | "f64" => StandIn::Value("1.0"),
        "a boolean" => StandIn::Value("false"),
        "a sequence" => StandIn::Value("[]"),
        e if e.starts_with("struct ") || e == "a map" => StandIn::Absent,
        _ => return None,
    })
}

/// serde's name for a type, as a config's reader would say it.
fn readable(expected: &str) -> String {
    match expected {
        "u8" => "a whole number from 0 to 255",
        "u16" => "a whole number from 0 to 65535",
        "u32" | "u64" | "usize" => "a whole number, 0 or more",
        "i32" | "i64" => "a whole number",
        "f32" | "f64" => "a number",
        "a boolean" => "true or false",
        "a sequence" => "an array",
        e if e.starts_with("struct ") || e == "a map" => "a table",
        e => e,
    }
    .to_string()
}

/// `key = value` when it is its line's whole entry (a comment may follow):
/// from the line's start to the value's end.
fn whole_entry(text: &str, value: Range<usize>) -> Option<Range<usize>> {
    let start = line_start(text, value.start);
    let end = text[value.end..]
        .find('\n')
        .map_or(text.len(), |i| value.end + i);
    let after = text[value.end..end].trim_start();
    let alone = after.is_empty() || after.starts_with('#');
    let one_key = !text[start..value.start].contains(['{', '[', ',']);
    (alone && one_key).then_some(start..value.end)
}

/// The unknown key `e` complains of, as a problem, blanked out of `text`
/// (spaces for its bytes, so every span stays where it was): a line of
/// its own, or its place in an inline table. `None` if `e` is another
/// error or the key cannot be set aside alone.
fn unknown_key(text: &mut String, keys: &KeyPaths, e: &toml::de::Error) -> Option<Problem> {
    let message = e.message();
    message.strip_prefix("unknown field `")?;
    let at = e.span()?.start;
    let start = line_start(text, at);
    let end = text[at..].find('\n').map_or(text.len(), |i| at + i);
    let blank = if text[start..at].trim().is_empty() {
        start..end
    } else {
        in_inline_table(text, at)?
    };
    let mut candidate = text.clone();
    candidate.replace_range(blank.clone(), &" ".repeat(blank.len()));
    toml::from_str::<toml::Table>(&candidate).ok()?;
    let problem = Problem {
        line: Some(line_of(text, at)),
        key: keys.at(at)?,
        message: with_suggestion(message),
    };
    *text = candidate;
    Some(problem)
}

/// serde's "unknown field `shutdown_timeot`, expected one of `threads`, ...",
/// as "unknown field `shutdown_timeot`; did you mean `shutdown_timeout`?"
/// when one of the keys the table takes is a likely fix; unchanged if not.
fn with_suggestion(message: &str) -> String {
    let Some((unknown, expected)) = message.split_once(", expected one of ") else {
        return message.to_string();
    };
    let written = unknown
        .trim_start_matches("unknown field `")
        .trim_end_matches('`');
    let known = expected.split(", ").map(|k| k.trim_matches('`'));
    match nearest(written, known) {
        Some(near) => format!("{unknown}; did you mean `{near}`?"),
        None => message.to_string(),
    }
}

/// The bytes of `key = value` at `at` in an inline table, with the comma
/// that parts it from its neighbours; all on one line, inside the table's
/// braces (`None` otherwise).
fn in_inline_table(text: &str, at: usize) -> Option<std::ops::Range<usize>> {
    let opened = text[line_start(text, at)..at].rfind('{')? + line_start(text, at);
    let (mut depth, mut quote) = (0, None);
    for (i, c) in text[at..].char_indices() {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (Some(_), _) => {}
            (None, '"' | '\'') => quote = Some(c),
            (None, '[' | '{') => depth += 1,
            (None, ']' | '}') if depth > 0 => depth -= 1,
            (None, ',') if depth == 0 => return Some(at..at + i + 1),
            // The table's last entry: the comma before it goes (none
            // when it is the only one).
            (None, '}') => {
                let comma = text[opened..at].rfind(',').map_or(at, |c| opened + c);
                return Some(comma..at + i);
            }
            (None, '\n') => return None,
            _ => {}
        }
    }
    None
}

/// The line (from 1) that byte `at` of `text` is on.
fn line_of(text: &str, at: usize) -> usize {
    text[..at].matches('\n').count() + 1
}

/// Where the line holding byte `at` starts.
fn line_start(text: &str, at: usize) -> usize {
    text[..at].rfind('\n').map_or(0, |i| i + 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unknown_key_near_a_known_one_is_named_with_it() {
        let serde =
            "unknown field `shutdown_timeot`, expected one of `threads`, `shutdown_timeout`";
        assert_eq!(
            with_suggestion(serde),
            "unknown field `shutdown_timeot`; did you mean `shutdown_timeout`?"
        );
        // Nothing near: serde's list of what the table takes stays.
        let far = "unknown field `colour`, expected one of `threads`, `shutdown_timeout`";
        assert_eq!(with_suggestion(far), far);
    }

    #[test]
    fn serdes_type_names_read_as_a_configs_reader_says_them() {
        assert_eq!(readable("u8"), "a whole number from 0 to 255");
        assert_eq!(readable("struct FileRateLimit"), "a table");
        assert_eq!(
            readable("a duration such as \"5s\""),
            "a duration such as \"5s\""
        );
    }
}
