//! The errors serde stops at, turned into problems and set aside, so that
//! the rest of the file is read and every problem is named at once: an
//! unknown key is blanked out; a value of the wrong type is replaced by a
//! stand-in of the right one (or, for a table, blanked out), and what the
//! checks then say of that line is dropped, being about the stand-in.
//! No edit adds or removes a line, so every line number stays true.

use std::ops::Range;

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
pub(super) fn set_aside(text: &mut String, e: &toml::de::Error) -> Option<SetAside> {
    if let Some(problem) = unknown_key(text, e) {
        return Some(SetAside {
            problem,
            stand_in: false,
        });
    }
    let problem = wrong_type(text, e)?;
    Some(SetAside {
        problem,
        stand_in: true,
    })
}

/// `e`, which cannot be set aside, as a problem beside those found before it.
pub(super) fn stopped_at(text: &str, e: &toml::de::Error) -> Problem {
    let message = e.message().to_string();
    match e.span() {
        Some(span) => Problem {
            line: Some(line_of(text, span.start)),
            key: key_at(text, span.start).unwrap_or_else(|| "(top level)".to_string()),
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
fn wrong_type(text: &mut String, e: &toml::de::Error) -> Option<Problem> {
    let message = e.message();
    let (kind, rest) = ["invalid type: ", "invalid value: "]
        .into_iter()
        .find_map(|kind| Some((kind, message.strip_prefix(kind)?)))?;
    let (found, expected) = rest.rsplit_once(", expected ")?;
    let span = e.span()?;
    if text[span.clone()].contains('\n') {
        return None;
    }
    let key = key_at(text, span.start)?;
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
        message: format!("{kind}{found}, expected {}", readable(expected)),
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
fn unknown_key(text: &mut String, e: &toml::de::Error) -> Option<Problem> {
    let message = e.message();
    let name = message.strip_prefix("unknown field `")?.split('`').next()?;
    let at = e.span()?.start;
    let start = text[..at].rfind('\n').map_or(0, |i| i + 1);
    let end = text[at..].find('\n').map_or(text.len(), |i| at + i);
    let mut name = name.to_string();
    let blank = if text[start..at].trim().is_empty() {
        start..end
    } else {
        // `rate_limit = { ..., wat = 1 }`: the key is `rate_limit.wat`.
        if let Some((before, _)) = text[start..at].rsplit_once('{') {
            let table = before.trim_end().trim_end_matches('=').trim();
            name = format!("{}.{name}", table.rsplit([',', '{']).next()?.trim());
        }
        in_inline_table(text, at)?
    };
    let mut candidate = text.clone();
    candidate.replace_range(blank.clone(), &" ".repeat(blank.len()));
    toml::from_str::<toml::Table>(&candidate).ok()?;
    let problem = Problem {
        line: Some(text[..start].matches('\n').count() + 1),
        key: table_of(&text[..start]).map_or(name.clone(), |t| format!("{t}.{name}")),
        message: message.to_string(),
    };
    *text = candidate;
    Some(problem)
}

/// The bytes of `key = value` at `at` in an inline table, with the comma
/// that parts it from its neighbours.
fn in_inline_table(text: &str, at: usize) -> Option<std::ops::Range<usize>> {
    let (mut depth, mut quote) = (0, None);
    for (i, c) in text[at..].char_indices() {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (Some(_), _) => {}
            (None, '"' | '\'') => quote = Some(c),
            (None, '[' | '{') => depth += 1,
            (None, ']' | '}') if depth > 0 => depth -= 1,
            (None, ',') if depth == 0 => return Some(at..at + i + 1),
            // The table's last entry: the comma before it goes.
            (None, '}') => return Some(text[..at].rfind(',')?..at + i),
            (None, '\n') => return None,
            _ => {}
        }
    }
    None
}

/// The table the text before a line leaves open, as keys name it
/// (`routes[2]` for the third `[[routes]]`); `None` at the top level.
fn table_of(before: &str) -> Option<String> {
    let headers: Vec<&str> = before
        .lines()
        .map(|l| l.split('#').next().unwrap_or_default().trim())
        .filter(|l| l.starts_with('[') && l.ends_with(']') && !l.contains(['=', '"', '\'']))
        .collect();
    let last = *headers.last()?;
    let array = last.starts_with("[[");
    let name = last.trim_matches(|c| c == '[' || c == ']').trim();
    if !array {
        return Some(name.to_string());
    }
    let index = headers.iter().filter(|h| **h == last).count() - 1;
    Some(format!("{name}[{index}]"))
}

/// The line (from 1) that byte `at` of `text` is on.
fn line_of(text: &str, at: usize) -> usize {
    text[..at].matches('\n').count() + 1
}

/// Where the line holding byte `at` starts.
fn line_start(text: &str, at: usize) -> usize {
    text[..at].rfind('\n').map_or(0, |i| i + 1)
}

/// The key a value at byte `at` belongs to, in full (`server.grace_period`,
/// `routes[0].rate_limit.requests`); for a table header, the table's.
fn key_at(text: &str, at: usize) -> Option<String> {
    let start = line_start(text, at);
    if text[start..at].trim().is_empty() && text[at..].starts_with('[') {
        let end = text[at..].find('\n').map_or(text.len(), |i| at + i);
        return table_of(&text[..end]);
    }
    let inner = key_before(&text[start..at])?;
    Some(match table_of(&text[..start]) {
        Some(table) => format!("{table}.{inner}"),
        None => inner,
    })
}

/// The key path of a value that starts right after `before`, the text of
/// its line up to it: `grace_period` after `grace_period = `,
/// `rate_limit.requests` after `rate_limit = { requests = `, `methods`
/// after `methods = ["GET", `. `None` if no key is on the line.
fn key_before(before: &str) -> Option<String> {
    // Each open `{` or `[` with the key it is the value of (none for an
    // array's element).
    let mut open: Vec<(char, Option<String>)> = Vec::new();
    let (mut pending, mut from, mut quote) = (None, 0, None);
    for (i, c) in before.char_indices() {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (Some(_), _) => {}
            (None, '"' | '\'') => quote = Some(c),
            (None, '=') => {
                let key = before[from..i].trim().trim_matches(['"', '\'']);
                pending = Some(key.to_string());
            }
            (None, '{' | '[') => {
                open.push((c, pending.take()));
                from = i + 1;
            }
            (None, '}' | ']') => {
                open.pop();
            }
            (None, ',') => {
                pending = None;
                from = i + 1;
            }
            _ => {}
        }
    }
    let mut path: Vec<String> = open.iter().filter_map(|(_, key)| key.clone()).collect();
    // An array's element is named by the array's key.
    if open.last().is_none_or(|(bracket, _)| *bracket == '{') {
        path.extend(pending);
    }
    (!path.is_empty()).then(|| path.join("."))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_values_key_is_read_from_its_line() {
        assert_eq!(
            key_before("grace_period = ").as_deref(),
            Some("grace_period")
        );
        assert_eq!(
            key_before("rate_limit = { per = \"1s\", requests = ").as_deref(),
            Some("rate_limit.requests")
        );
        assert_eq!(
            key_before("methods = [\"GET\", ").as_deref(),
            Some("methods")
        );
        assert_eq!(
            key_before("a = { b = [1, 2], \"c,d\" = ").as_deref(),
            Some("a.c,d")
        );
        // The next line of a list written over several: no key on it.
        assert_eq!(key_before("  "), None);
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
