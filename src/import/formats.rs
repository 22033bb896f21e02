//! The files `portero import` reads: CSV with a header row, JSON lines,
//! and a Keycloak realm export. Each row becomes a record or the reason it
//! cannot be one, with the line it started on.

use std::path::Path;

use serde_json::{Map, Value};

use super::keycloak;
use super::record::{from_text, from_value, Row};
use crate::principals::{ImportedPrincipal, KEYS};

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// A header row naming principal keys, then a principal per row.
    Csv,
    /// A JSON object per line, keyed as a config principal.
    Jsonl,
    /// A Keycloak realm export's `users`.
    Keycloak,
}

impl Format {
    /// The format a file's name implies: `.csv`, `.jsonl` or `.ndjson`,
    /// and `.json` for a realm export.
    pub fn of(path: &Path) -> Option<Format> {
        match path.extension()?.to_str()? {
            "csv" => Some(Format::Csv),
            "jsonl" | "ndjson" => Some(Format::Jsonl),
            "json" => Some(Format::Keycloak),
            _ => None,
        }
    }

    /// Every row of `text`, or why the whole file is unusable.
    pub fn read(self, text: &str) -> Result<Vec<Row>, String> {
        match self {
            Format::Csv => csv_rows(text),
            Format::Jsonl => Ok(json_lines(text)),
            Format::Keycloak => keycloak::rows(text),
        }
    }
}

fn csv_rows(text: &str) -> Result<Vec<Row>, String> {
    let mut reader = csv::ReaderBuilder::new()
        .trim(csv::Trim::All)
        .from_reader(text.as_bytes());
    let header = reader
        .headers()
        .map_err(|e| format!("line 1: {e}"))?
        .clone();
    for (n, column) in header.iter().enumerate() {
        if !KEYS.contains(&column) {
            return Err(format!(
                "line 1: column {column:?} is not a principal key ({})",
                KEYS.join(", ")
            ));
        }
        if header.iter().take(n).any(|c| c == column) {
            return Err(format!("line 1: column {column:?} appears twice"));
        }
    }
    let mut rows = Vec::new();
    for result in reader.records() {
        let row = match result {
            Ok(cells) => Row {
                line: cells.position().map_or(0, |p| p.line() as usize),
                record: from_cells(&header, &cells),
            },
            Err(e) => Row {
                line: e.position().map_or(0, |p| p.line() as usize),
                record: Err(csv_error(&e)),
            },
        };
        rows.push(row);
    }
    Ok(rows)
}

/// A CSV error without the position the row's line number already gives.
fn csv_error(e: &csv::Error) -> String {
    match e.kind() {
        csv::ErrorKind::UnequalLengths {
            expected_len, len, ..
        } => format!("{len} cells where the header has {expected_len}"),
        csv::ErrorKind::Utf8 { .. } => "not UTF-8".to_string(),
        _ => e.to_string(),
    }
}

/// A row's cells as a record: an empty cell is an absent key; `id` is a
/// number when it reads as one; `permissions` are separated by spaces or
/// commas.
fn from_cells(
    header: &csv::StringRecord,
    cells: &csv::StringRecord,
) -> Result<ImportedPrincipal, String> {
    let mut object = Map::new();
    for (column, cell) in header.iter().zip(cells.iter()) {
        if cell.is_empty() {
            continue;
        }
        let value = match column {
            "id" => cell
                .parse::<i64>()
                .map(Value::from)
                .unwrap_or_else(|_| cell.into()),
            "permissions" => cell
                .split([' ', ','])
                .filter(|p| !p.is_empty())
                .map(Value::from)
                .collect(),
            "active" | "blocked" => match cell.to_ascii_lowercase().as_str() {
                "true" | "1" | "yes" => Value::Bool(true),
                "false" | "0" | "no" => Value::Bool(false),
                // Never the cell: it may hold a secret typed one column off.
                _ => return Err(format!("{column}: not true or false")),
            },
            "rate_limit" => cell
                .parse::<u32>()
                .map(Value::from)
                .map_err(|_| "rate_limit: not a whole number".to_string())?,
            _ => cell.into(),
        };
        object.insert(column.to_string(), value);
    }
    from_value(Value::Object(object))
}

/// One JSON object per line; blank lines are skipped.
fn json_lines(text: &str) -> Vec<Row> {
    text.lines()
        .enumerate()
        .filter(|(_, line)| !line.trim().is_empty())
        .map(|(n, line)| Row {
            line: n + 1,
            record: from_text(line),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const HASH: &str = "$2b$04$abcdefghijklmnopqrstuu5Jm1uF0wGbTe4CHqzGr3xJQQbYhKOy6";

    #[test]
    fn csv_cells_become_typed_keys() {
        let text = format!(
            "username,secret_hash,id,permissions,blocked,rate_limit\n\
             ana,{HASH},7,\"read, write\",yes,\n\
             bo,{HASH},u-9,,,x\n\
             cy,{HASH}\n"
        );
        let rows = Format::Csv.read(&text).unwrap();
        let ana = rows[0].record.as_ref().unwrap();
        assert_eq!((rows[0].line, ana.id.clone()), (2, Value::from(7)));
        assert_eq!(ana.permissions, ["read", "write"]);
        assert!(ana.blocked && ana.active);
        assert_eq!(rows[1].line, 3);
        assert_eq!(
            rows[1].record.as_ref().unwrap_err(),
            "rate_limit: not a whole number"
        );
        assert_eq!(
            rows[2].record.as_ref().unwrap_err(),
            "2 cells where the header has 6"
        );
    }

    #[test]
    fn csv_unknown_columns_refuse_the_file() {
        let why = Format::Csv.read("username,pasword\nana,x\n").err().unwrap();
        assert!(why.starts_with("line 1: column \"pasword\" is not a principal key"));
    }

    #[test]
    fn json_lines_name_the_line_and_the_problem() {
        let text = format!(
            "{{\"username\":\"ana\",\"secret_hash\":\"{HASH}\"}}\n\n{{\"username\":\"bo\"}}\n{{\"user\":1}}\n"
        );
        let rows = Format::Jsonl.read(&text).unwrap();
        assert!(rows[0].record.is_ok());
        assert_eq!(rows[1].line, 3);
        assert!(rows[1]
            .record
            .as_ref()
            .unwrap_err()
            .starts_with("missing field `secret_hash`"));
        assert!(rows[2]
            .record
            .as_ref()
            .unwrap_err()
            .starts_with("unknown field `user`"));
    }
}
