//! Output of the `audit` CLI: an aligned table for people, JSON Lines for `jq`, CSV for
//! spreadsheets. Rows are written as they come (a page at a time, or forever with `--follow`),
//! so the table has fixed column widths rather than widths measured over all rows.

use agent_webkit_server::store::audit::{EventRow, InputRow, SessionRow};
use clap::ValueEnum;
use std::io::Write;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    Table,
    /// One JSON object per line.
    Json,
    Csv,
}

/// A row as named cells.
pub trait Columns: serde::Serialize {
    /// Column names and table widths (`0`: the last, free-width column).
    const COLUMNS: &'static [(&'static str, usize)];
    fn cells(&self) -> Vec<String>;
}

fn time(t: std::time::SystemTime) -> String {
    humantime::format_rfc3339_micros(t).to_string()
}

fn opt<T: ToString>(v: &Option<T>) -> String {
    v.as_ref().map(T::to_string).unwrap_or_default()
}

impl Columns for EventRow {
    const COLUMNS: &'static [(&'static str, usize)] = &[
        ("created_at", 27),
        ("session_id", 36),
        ("id", 6),
        ("event", 21),
        ("data", 0),
    ];
    fn cells(&self) -> Vec<String> {
        vec![
            time(self.created_at),
            self.session_id.to_string(),
            self.id.to_string(),
            self.event.clone(),
            self.data.to_string(),
        ]
    }
}

impl Columns for InputRow {
    const COLUMNS: &'static [(&'static str, usize)] = &[
        ("received_at", 27),
        ("session_id", 36),
        ("id", 6),
        ("principal", 16),
        ("type", 19),
        ("status", 6),
        ("correlation_id", 16),
        ("body", 0),
    ];
    fn cells(&self) -> Vec<String> {
        vec![
            time(self.received_at),
            self.session_id.to_string(),
            self.id.to_string(),
            self.principal.clone(),
            self.kind.clone(),
            self.status.to_string(),
            opt(&self.correlation_id),
            self.body.to_string(),
        ]
    }
}

impl Columns for SessionRow {
    const COLUMNS: &'static [(&'static str, usize)] = &[
        ("id", 36),
        ("principal", 16),
        ("status", 7),
        ("owner_host", 10),
        ("created_at", 27),
        ("updated_at", 27),
        ("last_event_id", 13),
        ("turns", 5),
        ("total_cost_usd", 0),
    ];
    fn cells(&self) -> Vec<String> {
        vec![
            self.id.to_string(),
            self.principal.clone(),
            self.status.clone(),
            opt(&self.owner_host_name),
            time(self.created_at),
            time(self.updated_at),
            self.last_event_id.to_string(),
            self.turns.to_string(),
            self.total_cost_usd.to_string(),
        ]
    }
}

/// Longest free-width cell in a table, so one huge tool input does not flood the terminal.
const TABLE_TAIL: usize = 120;

pub fn header<R: Columns>(format: Format, out: &mut impl Write) -> std::io::Result<()> {
    let names: Vec<String> = R::COLUMNS.iter().map(|(n, _)| n.to_string()).collect();
    match format {
        Format::Table => table_line::<R>(&names, out),
        Format::Csv => csv_line(&names, out),
        Format::Json => Ok(()),
    }
}

pub fn row<R: Columns>(format: Format, row: &R, out: &mut impl Write) -> std::io::Result<()> {
    match format {
        Format::Table => table_line::<R>(&row.cells(), out),
        Format::Csv => csv_line(&row.cells(), out),
        Format::Json => {
            serde_json::to_writer(&mut *out, row)?;
            writeln!(out)
        }
    }
}

fn table_line<R: Columns>(cells: &[String], out: &mut impl Write) -> std::io::Result<()> {
    let mut line = String::new();
    for ((_, width), cell) in R::COLUMNS.iter().zip(cells) {
        let width = if *width == 0 { TABLE_TAIL } else { *width };
        let cell = truncate(cell, width);
        if width == TABLE_TAIL {
            line.push_str(&cell);
        } else {
            line.push_str(&format!("{cell:<width$}  "));
        }
    }
    writeln!(out, "{}", line.trim_end())
}

fn truncate(cell: &str, width: usize) -> String {
    // Control characters (newlines in a body) would break the table's lines.
    let clean: String = cell
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    if clean.chars().count() <= width {
        return clean;
    }
    let mut cut: String = clean.chars().take(width.saturating_sub(1)).collect();
    cut.push('…');
    cut
}

/// RFC 4180: quote a cell that holds a comma, a quote or a line break; double its quotes.
fn csv_line(cells: &[String], out: &mut impl Write) -> std::io::Result<()> {
    let line: Vec<String> = cells
        .iter()
        .map(|c| {
            if c.contains([',', '"', '\n', '\r']) {
                format!("\"{}\"", c.replace('"', "\"\""))
            } else {
                c.clone()
            }
        })
        .collect();
    write!(out, "{}\r\n", line.join(","))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use std::time::{Duration, SystemTime};
    use uuid::Uuid;

    fn event() -> EventRow {
        EventRow {
            session_id: Uuid::nil(),
            id: 3,
            event: "tool_use".into(),
            data: json!({"tool_name":"Bash","input":{"command":"echo \"a,b\"\nls"}}),
            created_at: SystemTime::UNIX_EPOCH + Duration::from_secs(86400),
        }
    }

    fn render(format: Format) -> String {
        let mut out = Vec::new();
        header::<EventRow>(format, &mut out).unwrap();
        row(format, &event(), &mut out).unwrap();
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn csv_quotes_commas_quotes_and_newlines() {
        let csv = render(Format::Csv);
        let mut lines = csv.split("\r\n");
        assert_eq!(lines.next(), Some("created_at,session_id,id,event,data"));
        assert_eq!(
            lines.next(),
            Some(
                r#"1970-01-02T00:00:00.000000Z,00000000-0000-0000-0000-000000000000,3,tool_use,"{""tool_name"":""Bash"",""input"":{""command"":""echo \""a,b\""\nls""}}""#
            )
        );
    }

    #[test]
    fn json_is_one_object_per_line_and_table_is_aligned() {
        let json = render(Format::Json);
        assert_eq!(json.lines().count(), 1);
        let v: serde_json::Value = serde_json::from_str(json.trim()).unwrap();
        assert_eq!(v["data"]["tool_name"], "Bash");
        assert_eq!(v["created_at"], "1970-01-02T00:00:00.000000Z");
        let table = render(Format::Table);
        let lines: Vec<&str> = table.lines().collect();
        assert_eq!(lines.len(), 2);
        assert_eq!(lines[0].find("event"), lines[1].find("tool_use"));
    }
}
