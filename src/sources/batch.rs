//! `batch`: many contacts in one request, for backfills and exports: a JSON array (or
//! `{"contacts": [...]}`), NDJSON, or CSV with a header row. Authenticated by the route token.
//! Every row is mapped by the route's configuration like a single submission.

use secrecy::SecretString;
use serde_json::{Map, Value};

use super::body::{MEDIA_JSON, parse_json};
use super::form::{TOKEN_PARAM, recognise_fields};
use super::signature::verify_token;
use super::{AuthError, AuthSettings, ParseError, Sender};
use crate::inbound::InboundRequest;
use crate::submission::{BatchRow, Parsed, Submission};

pub const MEDIA_CSV: &str = "text/csv";
pub const MEDIA_NDJSON: &[&str] = &[
    "application/x-ndjson",
    "application/ndjson",
    "application/jsonl",
    "application/x-jsonlines",
];
/// Lambda's request payload limit: a batch may use all of it.
pub const MAX_BATCH_BODY_BYTES: usize = 6 * 1024 * 1024;
pub const MAX_ROWS: usize = 100_000;

/// The `batch` sender.
pub struct Batch;

impl Sender for Batch {
    fn accepts_media_type(&self, media_type: Option<&str>) -> bool {
        matches!(media_type, Some(m) if m == MEDIA_JSON || m == MEDIA_CSV || MEDIA_NDJSON.contains(&m))
    }

    fn max_body_bytes(&self) -> Option<usize> {
        Some(MAX_BATCH_BODY_BYTES)
    }

    fn authenticate(
        &self,
        req: &InboundRequest,
        secrets: &[SecretString],
        _settings: &AuthSettings,
    ) -> Result<(), AuthError> {
        verify_token(secrets, req.query_param(TOKEN_PARAM))
    }

    fn parse(&self, req: &InboundRequest) -> Result<Parsed, ParseError> {
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
}

fn submission(row: Value) -> Submission {
    let (contact, consent) = recognise_fields(&row);
    Submission {
        topic: None,
        delivery_id: None,
        contact,
        products: Vec::new(),
        consent,
        payload: row,
        from_browser_form: false,
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

fn json_rows(body: &[u8]) -> Result<Vec<(usize, Value)>, ParseError> {
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
    let mut rows = Vec::new();
    for (i, record) in reader.records().enumerate() {
        // Row numbers count the header row, as a spreadsheet does.
        let record = record.map_err(|e| ParseError::Row {
            row: i + 2,
            message: e.to_string(),
        })?;
        let object: Map<String, Value> = headers
            .iter()
            .zip(record.iter())
            .filter(|(_, value)| !value.is_empty())
            .map(|(key, value)| (key.to_string(), Value::String(value.to_string())))
            .collect();
        rows.push((i + 2, Value::Object(object)));
        check_count(rows.len())?;
    }
    Ok(rows)
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
        match Batch.parse(&req)? {
            Parsed::Batch(rows) => Ok(rows.into_iter().map(|r| r.submission).collect()),
            other => panic!("not a batch: {other:?}"),
        }
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
            match Batch.parse(&req).unwrap() {
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
        assert!(!Batch.accepts_media_type(Some("text/plain")));
    }
}
