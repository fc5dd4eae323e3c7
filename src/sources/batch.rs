//! `batch`: many contacts in one request, for backfills and exports: a JSON array (or
//! `{"contacts": [...]}`), NDJSON, or CSV with a header row. Authenticated by the route token.
//! Every row is mapped by the route's configuration like a single submission.

use serde_json::{Map, Value};

use super::util::body::{MEDIA_JSON, parse_json};
use super::util::fields::recognise_fields;
use super::{Auth, Media, Parse, ParseError, SenderSpec};
use crate::inbound::InboundRequest;
use crate::submission::{BatchRow, Parsed, Submission};

pub(crate) const MEDIA_CSV: &str = "text/csv";
/// What a batch may be posted as: a JSON array, CSV, or NDJSON under any of its names.
const MEDIA_TYPES: &[&str] = &[
    MEDIA_JSON,
    MEDIA_CSV,
    "application/x-ndjson",
    "application/ndjson",
    "application/jsonl",
    "application/x-jsonlines",
];
pub(crate) const MEDIA_NDJSON: &[&str] = MEDIA_TYPES.split_at(2).1;
/// Lambda's request payload limit: a batch may use all of it.
pub(crate) const MAX_BATCH_BODY_BYTES: usize = 6 * 1024 * 1024;
pub(crate) const MAX_ROWS: usize = 25_000;
/// The most non-empty CSV cells one batch may hold (20,000 rows of 10 columns): each becomes
/// a key and a value in memory, and a batch at this limit peaks near 70 MB (benches/memory.rs),
/// where a 6 MiB CSV of one-character cells would be three million cells.
pub(crate) const MAX_CSV_CELLS: usize = 200_000;
/// The most CSV columns.
pub(crate) const MAX_CSV_COLUMNS: usize = 500;

/// The `batch` sender.
pub(crate) const SPEC: SenderSpec = SenderSpec::new("batch", Auth::RouteToken, Parse::Whole(parse))
    .media(Media::only(MEDIA_TYPES))
    .max_body_bytes(MAX_BATCH_BODY_BYTES);

/// A CSV, NDJSON or JSON array of rows, each a submission (rows are numbered from 1).
pub(crate) fn parse(req: &InboundRequest) -> Result<Parsed, ParseError> {
    let rows = match req.media_type().as_deref() {
        Some(MEDIA_CSV) => csv_rows(&req.body)?,
        Some(m) if MEDIA_NDJSON.contains(&m) => ndjson_rows(&req.body)?,
        _ => json_rows(&req.body)?,
    };
    Ok(Parsed::Batch(
        rows.into_iter()
            .map(|(row, value)| BatchRow {
                row,
                submission: submission(value),
            })
            .collect(),
    ))
}

/// One row as a submission, its fields recognised as a form's are.
pub(crate) fn submission(row: Value) -> Submission {
    let (contact, consent) = recognise_fields(&row);
    Submission {
        topic: None,
        delivery_id: None,
        contact,
        products: Vec::new(),
        consent,
        payload: row,
        from_browser_form: false,
        lookup: None,
    }
}

fn check_count(count: usize) -> Result<(), ParseError> {
    if count > MAX_ROWS {
        return Err(ParseError::TooManyRows(MAX_ROWS));
    }
    Ok(())
}

fn object_row(row: usize, value: Value) -> Result<Value, ParseError> {
    if value.is_object() {
        Ok(value)
    } else {
        Err(ParseError::Row {
            row,
            message: "must be a JSON object".into(),
        })
    }
}

/// An upper bound of a JSON batch's rows, counted before anything is built: the items of
/// the top-level array (or of the arrays one level down, for `{"contacts": [...]}`). A 6 MiB
/// body of `[{},{},…]` is two million rows, refused here instead of built first.
fn count_rows(body: &[u8]) -> usize {
    let rows_at = match body.iter().find(|b| !b.is_ascii_whitespace()) {
        Some(b'[') => 1,
        _ => 2,
    };
    let (mut depth, mut in_string, mut escaped) = (0usize, false, false);
    let mut items = 0usize;
    let mut empty = true;
    for &byte in body {
        if in_string {
            match byte {
                _ if escaped => escaped = false,
                b'\\' => escaped = true,
                b'"' => in_string = false,
                _ => {}
            }
            continue;
        }
        match byte {
            b'"' => {
                in_string = true;
                if depth == rows_at {
                    empty = false;
                }
            }
            b'[' | b'{' => {
                if depth == rows_at {
                    empty = false;
                }
                depth += 1;
            }
            b']' | b'}' => {
                if depth == rows_at && !empty {
                    items += 1;
                    empty = true;
                }
                depth = depth.saturating_sub(1);
            }
            b',' if depth == rows_at => items += 1,
            b if depth == rows_at && !b.is_ascii_whitespace() => empty = false,
            _ => {}
        }
    }
    items
}

fn json_rows(body: &[u8]) -> Result<Vec<(usize, Value)>, ParseError> {
    check_count(count_rows(body))?;
    let items = match parse_json(body)? {
        Value::Array(items) => items,
        Value::Object(mut map) => match map.remove("contacts") {
            Some(Value::Array(items)) => items,
            _ => {
                return Err(ParseError::Row {
                    row: 0,
                    message: "expected an array, or an object with a \"contacts\" array".into(),
                });
            }
        },
        _ => return Err(ParseError::NotAnObject),
    };
    check_count(items.len())?;
    items
        .into_iter()
        .enumerate()
        .map(|(i, v)| Ok((i + 1, object_row(i + 1, v)?)))
        .collect()
}

fn ndjson_rows(body: &[u8]) -> Result<Vec<(usize, Value)>, ParseError> {
    let text = std::str::from_utf8(body).map_err(|_| ParseError::NotUtf8)?;
    let mut rows = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let value = parse_json(line.as_bytes()).map_err(|e| ParseError::Row {
            row: i + 1,
            message: e.to_string(),
        })?;
        rows.push((i + 1, object_row(i + 1, value)?));
        check_count(rows.len())?;
    }
    Ok(rows)
}

fn csv_rows(body: &[u8]) -> Result<Vec<(usize, Value)>, ParseError> {
    let mut reader = csv::ReaderBuilder::new()
        .flexible(false)
        .trim(csv::Trim::All)
        .from_reader(body);
    let headers = reader
        .headers()
        .map_err(|e| ParseError::Row {
            row: 1,
            message: format!("header row: {e}"),
        })?
        .clone();
    if headers.is_empty() {
        return Err(ParseError::Row {
            row: 1,
            message: "no header row".into(),
        });
    }
    if headers.len() > MAX_CSV_COLUMNS {
        return Err(ParseError::Row {
            row: 1,
            message: format!(
                "{} columns, over the limit of {MAX_CSV_COLUMNS}: leave out the columns the mapping does not use",
                headers.len()
            ),
        });
    }
    let mut cells = 0usize;
    let mut rows = Vec::new();
    for (i, record) in reader.records().enumerate() {
        // Row numbers count the header row, as a spreadsheet does.
        let record = record.map_err(|e| ParseError::Row {
            row: i + 2,
            message: e.to_string(),
        })?;
        cells += record.iter().filter(|value| !value.is_empty()).count();
        if cells > MAX_CSV_CELLS {
            return Err(ParseError::Row {
                row: i + 2,
                message: format!(
                    "over {MAX_CSV_CELLS} non-empty cells in one batch: split the file, or leave out the columns the mapping does not use"
                ),
            });
        }
        rows.push((i + 2, csv_row(&headers, &record)));
        check_count(rows.len())?;
    }
    Ok(rows)
}

/// A CSV record as a JSON object of its non-empty cells, keyed by the header.
pub(crate) fn csv_row(headers: &csv::StringRecord, record: &csv::StringRecord) -> Value {
    let object: Map<String, Value> = headers
        .iter()
        .zip(record.iter())
        .filter(|(_, value)| !value.is_empty())
        .map(|(key, value)| (key.to_string(), Value::String(value.to_string())))
        .collect();
    Value::Object(object)
}

/// An NDJSON line or a JSON array's item as a row: it must be an object.
pub(crate) fn object_row_at(row: usize, value: Value) -> Result<Value, ParseError> {
    object_row(row, value)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sources::test_support::request;

    fn rows(content_type: &str, body: &str) -> Result<Vec<Submission>, ParseError> {
        let req = request(
            "/webhooks/batch?token=t",
            &[("content-type", content_type)],
            body,
        );
        match SPEC.parse(&req)? {
            Parsed::Batch(rows) => Ok(rows.into_iter().map(|r| r.submission).collect()),
            other => panic!("not a batch: {other:?}"),
        }
    }

    #[test]
    fn rows_are_counted_before_anything_is_built() {
        assert_eq!(count_rows(br#"[{"a":1},{"b":[1,2,{"c":"},{"}]}]"#), 2);
        assert_eq!(
            count_rows(br#" {"contacts": [{"a":"x"}, {}, {}], "n": 1}"#),
            3
        );
        assert_eq!(count_rows(b"[]"), 0);
        assert_eq!(count_rows(br#"["\"],", 1, 2]"#), 3);
        let flood = format!("[{}{{}}]", "{},".repeat(MAX_ROWS + 1));
        assert!(matches!(
            rows("application/json", &flood),
            Err(ParseError::TooManyRows(_))
        ));
    }

    #[test]
    fn csv_cells_and_columns_are_bounded() {
        let wide = format!(
            "{}\n",
            (0..MAX_CSV_COLUMNS + 1)
                .map(|i| format!("c{i}"))
                .collect::<Vec<_>>()
                .join(",")
        );
        let error = rows("text/csv", &wide).unwrap_err().to_string();
        assert!(error.contains("columns"), "{error}");
        let header = (0..400)
            .map(|i| format!("c{i}"))
            .collect::<Vec<_>>()
            .join(",");
        let row = vec!["a"; 400].join(",");
        let body = format!(
            "{header}\n{}",
            format!("{row}\n").repeat(MAX_CSV_CELLS / 400 + 1)
        );
        let error = rows("text/csv", &body).unwrap_err().to_string();
        assert!(error.contains("non-empty cells"), "{error}");
    }

    #[test]
    fn csv_json_and_ndjson_give_the_same_contacts() {
        let csv = rows("text/csv; charset=utf-8", "Email,First Name,Company\nada@example.com,Ada,Engines\n\"grace@example.com\",\"Grace, RN\",\n").unwrap();
        let json = rows("application/json", r#"[{"Email":"ada@example.com","First Name":"Ada","Company":"Engines"},{"Email":"grace@example.com","First Name":"Grace, RN"}]"#).unwrap();
        let wrapped = rows("application/json", r#"{"contacts":[{"Email":"ada@example.com","First Name":"Ada","Company":"Engines"},{"Email":"grace@example.com","First Name":"Grace, RN"}]}"#).unwrap();
        let ndjson = rows("application/x-ndjson", "{\"Email\":\"ada@example.com\",\"First Name\":\"Ada\",\"Company\":\"Engines\"}\n\n{\"Email\":\"grace@example.com\",\"First Name\":\"Grace, RN\"}\n").unwrap();
        assert_eq!(csv, json);
        assert_eq!(json, wrapped);
        assert_eq!(json, ndjson);
        assert_eq!(csv[1].contact.first_name.as_deref(), Some("Grace, RN"));
        assert_eq!(csv[1].contact.organization, None);
    }

    #[test]
    fn rows_are_numbered_as_a_person_finds_them() {
        let numbers = |content_type: &str, body: &str| -> Vec<usize> {
            let req = request("/", &[("content-type", content_type)], body);
            match SPEC.parse(&req).unwrap() {
                Parsed::Batch(rows) => rows.iter().map(|r| r.row).collect(),
                _ => unreachable!(),
            }
        };
        assert_eq!(numbers("text/csv", "email\na@b.co\nc@d.co\n"), vec![2, 3]);
        assert_eq!(numbers("application/x-ndjson", "{}\n\n{}\n"), vec![1, 3]);
        assert_eq!(numbers("application/json", "[{}, {}]"), vec![1, 2]);
    }

    #[test]
    fn bad_rows_are_named() {
        assert_eq!(
            rows("application/x-ndjson", "{\"a\":1}\n[2]\n").unwrap_err(),
            ParseError::Row {
                row: 2,
                message: "must be a JSON object".into()
            }
        );
        assert!(matches!(
            rows("application/x-ndjson", "{\"a\":1}\n{oops\n"),
            Err(ParseError::Row { row: 2, .. })
        ));
        assert!(matches!(
            rows("text/csv", "email,name\na@b.co,A,extra\n"),
            Err(ParseError::Row { row: 2, .. })
        ));
        assert!(matches!(
            rows("application/json", "[1]"),
            Err(ParseError::Row { row: 1, .. })
        ));
        assert!(!SPEC.accepts_media_type(Some("text/plain")));
    }
}
