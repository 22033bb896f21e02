//! The errors serde stops at, turned into problems and set aside, so that
//! the rest of the file is read and every problem is named at once: an
//! unknown key is blanked out; a value of the wrong type is replaced by a
//! stand-in of the right one (or, for a table, blanked out), and what the
//! checks then say of that line is dropped, being about the stand-in.
//! What cannot be set aside alone (a key missing from a table, a value
//! over several lines, a table where a value goes) sets aside the table
//! written with a header that holds it: its body is blanked, or all of
//! it, and what the checks then say under its key is dropped.
//! No edit adds or removes a line, so every line number stays true; keys
//! are read from the text as it is at each step.

use std::ops::Range;

use super::check::names::nearest;
use super::key_paths::{KeyPaths, Unit};
use super::Problem;

/// A problem serde stopped at, now set aside in the text.
pub(super) struct SetAside {
    pub(super) problem: Problem,
    pub(super) kind: Kind,
}

/// How a problem was set aside, and so which of the checks' problems
/// follow from it.
pub(super) enum Kind {
    /// Blanked out: nothing follows.
    Blanked,
    /// The value was replaced by a stand-in: the checks' problems on its
    /// line, or under its key, follow from this one.
    StandIn,
    /// The table under this key was emptied or blanked out whole: the
    /// checks' problems under its key follow from this one.
    Table(String),
}

/// The problem `e` names, set aside in `text` so that the next parse goes
/// past it; `None` (`text` unchanged) when it cannot be. `emptied` holds
/// the tables already emptied: one emptied again is blanked out whole.
pub(super) fn set_aside(
    text: &mut String,
    e: &toml::de::Error,
    emptied: &mut Vec<String>,
    renumbered: &mut Renumbered,
) -> Option<SetAside> {
    let (set, edited) = {
        let keys = KeyPaths::parse(text)?;
        let alone = match unknown_key(text, &keys, e) {
            Some(found) => Some((Kind::Blanked, found)),
            None => wrong_type(text, &keys, e)
                .or_else(|| missing_in_inline_table(text, &keys, e))
                .map(|found| (Kind::StandIn, found)),
        };
        match alone {
            Some((kind, (mut problem, edited))) => {
                problem.key = renumbered.original(&problem.key);
                (SetAside { problem, kind }, edited)
            }
            None => whole_table(text, &keys, e, emptied, renumbered)?,
        }
    };
    *text = edited;
    Some(set)
}

/// `e`, which cannot be set aside, as a problem beside those found before it.
pub(super) fn stopped_at(text: &str, e: &toml::de::Error) -> Problem {
    let keys = KeyPaths::parse(text);
    let message = without_strings(e.message());
    match e.span() {
        Some(span) => Problem {
            line: Some(line_of(text, span.start)),
            key: keys
                .and_then(|keys| keys.at(span.start))
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
/// what the key takes, and `text` with a stand-in of that type for it.
/// `None` if `e` is another error, or the value cannot be replaced alone.
fn wrong_type(text: &str, keys: &KeyPaths, e: &toml::de::Error) -> Option<(Problem, String)> {
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
    let mut candidate = text.to_string();
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
    Some((problem, candidate))
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
            return format!(
                "{kind}{}, expected {}",
                found_type(found),
                readable(expected)
            );
        }
    }
    message.to_string()
}

/// A key missing from an inline table written on one line
/// (`concurrency = { }`), as a problem, the whole entry blanked out.
fn missing_in_inline_table(
    text: &str,
    keys: &KeyPaths,
    e: &toml::de::Error,
) -> Option<(Problem, String)> {
    e.message().strip_prefix("missing field `")?;
    let span = e.span()?;
    if !text[span.clone()].starts_with('{') || text[span.clone()].contains('\n') {
        return None;
    }
    let entry = whole_entry(text, span.clone())?;
    let mut candidate = text.to_string();
    candidate.replace_range(entry.clone(), &" ".repeat(entry.len()));
    toml::from_str::<toml::Table>(&candidate).ok()?;
    let problem = Problem {
        line: Some(line_of(text, span.start)),
        key: keys.at(span.start)?,
        message: e.message().to_string(),
    };
    Some((problem, candidate))
}

/// A problem nothing smaller can be set aside for, set aside with the
/// table written with a header that holds it: a named table is emptied
/// (its header kept, so what names it still finds it); one of an array
/// of tables, or a table emptied before, is blanked out whole.
fn whole_table(
    text: &str,
    keys: &KeyPaths,
    e: &toml::de::Error,
    emptied: &mut Vec<String>,
    renumbered: &mut Renumbered,
) -> Option<(SetAside, String)> {
    let Unit {
        key,
        element,
        spans,
        header,
    } = keys.unit_at(e.span()?.start)?;
    let key = renumbered.original(&key);
    let empty = element.is_none() && !emptied.contains(&key);
    let mut candidate = text.to_string();
    for span in spans {
        let from = match empty && span.start == header {
            true => text[header..span.end]
                .find('\n')
                .map_or(span.end, |i| header + i),
            false => span.start,
        };
        blank(&mut candidate, from..span.end);
    }
    toml::from_str::<toml::Table>(&candidate).ok()?;
    let mut problem = stopped_at(text, e);
    problem.key = renumbered.original(&problem.key);
    problem.message = format!(
        "{}; the rest of {key} is not checked until this is fixed",
        problem.message
    );
    if empty {
        emptied.push(key.clone());
    }
    if let Some((array, index)) = element {
        renumbered.remove(&array, index);
    }
    let set = SetAside {
        problem,
        kind: Kind::Table(key),
    };
    Some((set, candidate))
}

/// `range` of `text` as spaces, its line ends kept (each character as
/// many spaces as it has bytes, so every span stays where it was).
fn blank(text: &mut String, range: Range<usize>) {
    let blanked: String = text[range.clone()]
        .chars()
        .map(|c| match c {
            '\n' => "\n".to_string(),
            c => " ".repeat(c.len_utf8()),
        })
        .collect();
    text.replace_range(range, &blanked);
}

/// The tables of arrays of tables blanked out whole: each table after one
/// is read with an index one less, and is named by the index it has in
/// the file.
#[derive(Default)]
pub(super) struct Renumbered {
    /// The array's path and the index in the file of each blanked table.
    removed: Vec<(String, usize)>,
}

impl Renumbered {
    /// `key`, read in the text as it now is, as the file names it.
    pub(super) fn original(&self, key: &str) -> String {
        for (array, _) in &self.removed {
            let Some(rest) = key
                .strip_prefix(array.as_str())
                .and_then(|r| r.strip_prefix('['))
            else {
                continue;
            };
            let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
            let (Ok(index), tail) = (rest[..digits].parse::<usize>(), &rest[digits..]) else {
                continue;
            };
            if tail.starts_with(']') {
                let index = self.index_in_file(array, index);
                return format!("{array}[{index}{tail}");
            }
        }
        key.to_string()
    }

    fn index_in_file(&self, array: &str, now: usize) -> usize {
        let mut removed: Vec<usize> = self
            .removed
            .iter()
            .filter(|(a, _)| a == array)
            .map(|(_, i)| *i)
            .collect();
        removed.sort_unstable();
        removed
            .into_iter()
            .fold(now, |index, gone| index + usize::from(gone <= index))
    }

    fn remove(&mut self, array: &str, now: usize) {
        let index = self.index_in_file(array, now);
        self.removed.push((array.to_string(), index));
    }
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
fn unknown_key(text: &str, keys: &KeyPaths, e: &toml::de::Error) -> Option<(Problem, String)> {
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
    let mut candidate = text.to_string();
    candidate.replace_range(blank.clone(), &" ".repeat(blank.len()));
    toml::from_str::<toml::Table>(&candidate).ok()?;
    let problem = Problem {
        line: Some(line_of(text, at)),
        key: keys.at(at)?,
        message: with_suggestion(message),
    };
    Some((problem, candidate))
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
    fn tables_after_one_set_aside_keep_their_indices() {
        let mut renumbered = Renumbered::default();
        renumbered.remove("routes", 1);
        // routes[1] of the file is gone: the text's routes[1] is the file's routes[2].
        assert_eq!(renumbered.original("routes[0].path"), "routes[0].path");
        assert_eq!(renumbered.original("routes[1].path"), "routes[2].path");
        renumbered.remove("routes", 1);
        assert_eq!(renumbered.original("routes[1]"), "routes[3]");
        assert_eq!(renumbered.original("routes[0]"), "routes[0]");
        // Another array, and a name that only starts like it, keep theirs.
        assert_eq!(renumbered.original("listen[1].addr"), "listen[1].addr");
        assert_eq!(renumbered.original("routes_x[1]"), "routes_x[1]");
    }

    #[test]
    fn a_table_set_aside_keeps_every_line_and_its_header() {
        let text = "[upstreams.api]\nbuiltin = \"echo\"\n\n[[routes]]\npath = \"/\"\nupstream = [\n  \"api\",\n]\n\n[[routes]]\npath = \"/é\"\nupstream = \"api\"\n";
        let e = super::super::file::read(text).err().unwrap();
        let (mut emptied, mut renumbered) = (Vec::new(), Renumbered::default());
        let mut edited = text.to_string();
        let set = set_aside(&mut edited, &e, &mut emptied, &mut renumbered).unwrap();
        assert!(matches!(&set.kind, Kind::Table(key) if key == "routes[0]"));
        assert_eq!(set.problem.key, "routes[0].upstream");
        assert_eq!(edited.len(), text.len());
        assert_eq!(edited.lines().count(), text.lines().count());
        assert_eq!(renumbered.original("routes[0].path"), "routes[1].path");
        let file = super::super::file::read(&edited).unwrap();
        assert_eq!(file.routes.len(), 1);
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
