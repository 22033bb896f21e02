//! Which key a byte of a config file belongs to, read from the file's own
//! syntax tree (toml_edit), so that quoted names, dotted keys, arrays of
//! tables, inline tables and multi-line strings are named as the parser
//! read them: `routes[2].rate_limit.requests`, `upstreams."billing.v2"`.

use std::ops::Range;

use toml_edit::{ImDocument, InlineTable, Item, Table, Value};

/// A file's syntax tree, to name the key at a byte.
pub(super) struct KeyPaths<'a> {
    doc: ImDocument<&'a str>,
}

/// One step of a key path.
enum Step {
    Key(String),
    Index(usize),
}

/// A table written with a header (`[server]`, `[upstreams.api]`, one of
/// `[[routes]]`), with the tables below it: what is set aside whole when
/// a problem in it cannot be set aside alone.
pub(super) struct Unit {
    /// Its path: `routes[2]`, `upstreams.api`.
    pub(super) key: String,
    /// For one table of an array of tables, the array's path and its index.
    pub(super) element: Option<(String, usize)>,
    /// Where its header and body and those of the tables below it are.
    pub(super) spans: Vec<Range<usize>>,
    /// Where its header starts.
    pub(super) header: usize,
}

impl<'a> KeyPaths<'a> {
    /// `None` if `text` is not TOML.
    pub(super) fn parse(text: &'a str) -> Option<Self> {
        ImDocument::parse(text).ok().map(|doc| KeyPaths { doc })
    }

    /// The path of the entry (key and value) or table header holding byte
    /// `at`; `None` if no key holds it (a comment, blank space).
    pub(super) fn at(&self, at: usize) -> Option<String> {
        let mut path = Vec::new();
        in_table(self.doc.as_table(), at, &mut path).then(|| render(&path))
    }

    /// The innermost table written with a header that holds byte `at`.
    pub(super) fn unit_at(&self, at: usize) -> Option<Unit> {
        unit_in(self.doc.as_table(), at, &mut Vec::new())
    }
}

/// The innermost table with a header below `table` whose text holds `at`.
fn unit_in(table: &Table, at: usize, path: &mut Vec<Step>) -> Option<Unit> {
    for (name, item) in table.iter() {
        path.push(Step::Key(name.to_string()));
        let tables: Vec<(Option<usize>, &Table)> = match item {
            Item::Table(t) => vec![(None, t)],
            Item::ArrayOfTables(a) => a.iter().enumerate().map(|(i, t)| (Some(i), t)).collect(),
            _ => Vec::new(),
        };
        for (index, t) in tables {
            let spans = extent(t);
            if !spans.iter().any(|s| s.contains(&at)) {
                continue;
            }
            if let Some(i) = index {
                path.push(Step::Index(i));
            }
            if let Some(inner) = unit_in(t, at, path) {
                return Some(inner);
            }
            if let Some(header) = t.span().map(|span| span.start) {
                let element = index.map(|i| (render(&path[..path.len() - 1]), i));
                return Some(Unit {
                    key: render(path),
                    element,
                    spans,
                    header,
                });
            }
            if index.is_some() {
                path.pop();
            }
        }
        path.pop();
    }
    None
}

/// The spans of `t` and of every table below it.
fn extent(t: &Table) -> Vec<Range<usize>> {
    let mut spans: Vec<Range<usize>> = t.span().into_iter().collect();
    for (_, item) in t.iter() {
        match item {
            Item::Table(inner) => spans.extend(extent(inner)),
            Item::ArrayOfTables(a) => a.iter().for_each(|inner| spans.extend(extent(inner))),
            _ => {}
        }
    }
    spans
}

fn holds(span: Option<Range<usize>>, at: usize) -> bool {
    span.is_some_and(|span| span.contains(&at))
}

/// Whether `at` is in `table` (its entries and the tables below it), with
/// the path to it added to `path`.
fn in_table(table: &Table, at: usize, path: &mut Vec<Step>) -> bool {
    for (name, item) in table.iter() {
        let key = table.key(name).and_then(|k| k.span());
        path.push(Step::Key(name.to_string()));
        let found = match item {
            Item::Value(value) => in_entry(key, value, at, path),
            // An entry below it, else the table itself (its span is its
            // header and body; a dotted or implicit table has none).
            Item::Table(t) => in_table(t, at, path) || holds(t.span(), at),
            Item::ArrayOfTables(tables) => tables.iter().enumerate().any(|(i, t)| {
                path.push(Step::Index(i));
                let found = in_table(t, at, path) || holds(t.span(), at);
                if !found {
                    path.pop();
                }
                found
            }),
            Item::None => false,
        };
        if found {
            return true;
        }
        path.pop();
    }
    false
}

/// Whether `at` is in the entry `key = value`: the innermost key of an
/// inline table holding it is added to `path`; an array's element is named
/// by the array's key, or by its index when it is a table.
fn in_entry(key: Option<Range<usize>>, value: &Value, at: usize, path: &mut Vec<Step>) -> bool {
    let Some(span) = value.span() else {
        // A dotted key's implicit inline table: only its entries have spans.
        return matches!(value, Value::InlineTable(t) if in_inline(t, at, path));
    };
    let whole = key.map_or(span.start, |k| k.start.min(span.start))..span.end;
    if !whole.contains(&at) {
        return false;
    }
    match value {
        Value::InlineTable(t) => {
            in_inline(t, at, path);
        }
        Value::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                if let Value::InlineTable(t) = item {
                    if holds(item.span(), at) {
                        path.push(Step::Index(i));
                        in_inline(t, at, path);
                        break;
                    }
                }
            }
        }
        _ => {}
    }
    true
}

fn in_inline(table: &InlineTable, at: usize, path: &mut Vec<Step>) -> bool {
    for (name, value) in table.iter() {
        let key = table.key(name).and_then(|k| k.span());
        path.push(Step::Key(name.to_string()));
        if in_entry(key, value, at, path) {
            return true;
        }
        path.pop();
    }
    false
}

/// `routes[2].headers."x-user"`: a name other than letters, digits, `_`
/// and `-` is quoted, with its control characters escaped.
fn render(path: &[Step]) -> String {
    let mut out = String::new();
    for step in path {
        match step {
            Step::Index(i) => out.push_str(&format!("[{i}]")),
            Step::Key(name) => {
                if !out.is_empty() {
                    out.push('.');
                }
                let bare = !name.is_empty()
                    && name
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
                if bare {
                    out.push_str(name);
                } else {
                    out.push_str(&format!("{name:?}"));
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The path at the first byte of `needle` in `text`.
    fn at(text: &str, needle: &str) -> Option<String> {
        KeyPaths::parse(text)
            .unwrap()
            .at(text.find(needle).unwrap())
    }

    #[test]
    fn keys_are_named_as_the_parser_read_them() {
        let text = "[server]\nthreads = 2 # a, b\n\
                    [upstreams.\"billing.v2\"]\ncolour = 1\n\
                    [[routes]]\nname = \"a\"\n\
                    [[ routes ]]\nrate_limit = { by = \"claim:a\\\"b\", requests = \"x\" }\n\
                    methods = [\n  \"GET\",\n  5,\n]\n\
                    [routes.headers]\nx-user = \"sub\"\n\
                    [issuers.s]\nquery = '''\n[admin]\ncolour = 1\n'''\n\
                    principals = [ { username = \"u\", pasword = \"p\" } ]\n\
                    a.b = 1\n";
        assert_eq!(at(text, "2 #").as_deref(), Some("server.threads"));
        assert_eq!(at(text, "# a").as_deref(), None);
        assert_eq!(
            at(text, "colour").as_deref(),
            Some("upstreams.\"billing.v2\".colour")
        );
        assert_eq!(at(text, "[[routes]]").as_deref(), Some("routes[0]"));
        assert_eq!(
            at(text, "\"x\"").as_deref(),
            Some("routes[1].rate_limit.requests")
        );
        assert_eq!(at(text, "5,").as_deref(), Some("routes[1].methods"));
        assert_eq!(
            at(text, "x-user").as_deref(),
            Some("routes[1].headers.x-user")
        );
        assert_eq!(at(text, "[admin]").as_deref(), Some("issuers.s.query"));
        assert_eq!(
            at(text, "pasword").as_deref(),
            Some("issuers.s.principals[0].pasword")
        );
        assert_eq!(at(text, "b = 1").as_deref(), Some("issuers.s.a.b"));
    }

    #[test]
    fn a_name_with_control_characters_is_escaped() {
        let text = "[server]\n\"x\\n  f.toml:1: fake\\u001b[31m\" = 1\n";
        assert_eq!(
            at(text, "\"x").as_deref(),
            Some("server.\"x\\n  f.toml:1: fake\\u{1b}[31m\"")
        );
    }
}
