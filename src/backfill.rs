//! A backfill of any size (`ac-webhook-sync import FILE`): a CSV (header row), NDJSON or JSON
//! array file read as a stream, each row mapped by a named route exactly as the batch route
//! maps a posted row, and delivered in windows of [`WINDOW_ROWS`] rows through the Bulk Contact
//! Importer at its pace (one window is one import, or a few when its contacts are large; what
//! the importer cannot carry goes through `contact_sync`, as for a posted batch).
//!
//! A state file beside it records, after every window, how far the run got. Before a window is
//! sent it is written down as in flight: a run that is stopped (killed, a lost connection)
//! while ActiveCampaign answers leaves that window's outcome unknown, and the next run does not
//! send it again (it lists its rows as unknown; `resend_unknown` sends them), so no window is
//! ever imported twice. A window ActiveCampaign refused to take (an outage after the client's
//! retries) is not in flight: the next run sends it.

use std::collections::HashMap;
use std::fs::File;
use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use thiserror::Error;
use tokio::time::Instant;

use crate::delivery::{ImportOptions, InlineDelivery};
use crate::mapping::{MappingOutcome, Route, map_submission};
use crate::secret::AppSecret;

/// Rows per window: one import of the importer's largest size.
pub const WINDOW_ROWS: usize = crate::activecampaign::importer::MAX_CONTACTS_PER_IMPORT;
/// How long one window may take (the client retries outages within it).
const WINDOW_BUDGET: Duration = Duration::from_secs(300);
const STATE_VERSION: u8 = 1;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FileFormat {
    Csv,
    Ndjson,
    Json,
}

impl FileFormat {
    /// By the file's extension (`.csv`, `.ndjson`/`.jsonl`, `.json`).
    pub fn of(path: &Path) -> Option<Self> {
        match path.extension()?.to_str()?.to_ascii_lowercase().as_str() {
            "csv" => Some(Self::Csv),
            "ndjson" | "jsonl" => Some(Self::Ndjson),
            "json" => Some(Self::Json),
            _ => None,
        }
    }
}

#[derive(Debug, Error)]
pub enum BackfillError {
    #[error("{path}: {error}")]
    File { path: String, error: std::io::Error },
    #[error("row {row}: {message}")]
    Row { row: usize, message: String },
    #[error(
        "the state file {state} is for {other}; give this run its own state file (--state) or delete it to start over"
    )]
    OtherRun { state: String, other: String },
    #[error("another run of this import is going on (process {pid}, {lock})")]
    Running { lock: String, pid: String },
    #[error("the state file {0} is not readable: delete it to start over")]
    BadState(String),
    #[error(
        "ActiveCampaign did not take all of rows {first}-{last}: {reason}. They may be partly imported: once ActiveCampaign answers, run the same command with --resend-unknown to send them and go on"
    )]
    Delivery {
        first: usize,
        last: usize,
        reason: String,
    },
}

/// A row the importer will never take as it is.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RejectedRow {
    pub row: usize,
    pub email: Option<String>,
    pub reason: String,
}

/// One window delivered.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Window {
    pub first_row: usize,
    pub last_row: usize,
    pub batch_ids: Vec<String>,
    pub imported: usize,
    pub synced: usize,
}

/// How far a backfill got, kept between runs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BackfillState {
    pub version: u8,
    /// The file (as given) and its size: a state is for one file.
    pub file: String,
    pub file_bytes: u64,
    /// SHA-256 of the file's first 64 KiB (hex): a re-export of the same size is another file.
    pub file_head: String,
    pub route: String,
    /// Every row before this one is done (delivered, skipped, rejected or unknown).
    pub next_row: usize,
    /// The window being delivered when the state was written, if any.
    #[serde(default)]
    pub in_flight: Option<(usize, usize)>,
    /// Windows a stopped run left without knowing their outcome.
    #[serde(default)]
    pub unknown: Vec<(usize, usize)>,
    pub windows: Vec<Window>,
    pub rows_read: usize,
    pub imported: usize,
    pub synced: usize,
    pub skipped: usize,
    pub rejected: Vec<RejectedRow>,
}

impl BackfillState {
    fn new(file: &str, file_bytes: u64, file_head: String, route: &str) -> Self {
        Self {
            version: STATE_VERSION,
            file: file.to_string(),
            file_bytes,
            file_head,
            route: route.to_string(),
            next_row: 0,
            in_flight: None,
            unknown: Vec::new(),
            windows: Vec::new(),
            rows_read: 0,
            imported: 0,
            synced: 0,
            skipped: 0,
            rejected: Vec::new(),
        }
    }

    /// Written whole to a temporary file, flushed, then renamed over the old one: a run killed
    /// while writing leaves the previous state.
    fn save(&self, path: &Path) -> Result<(), BackfillError> {
        let io = |error| BackfillError::File {
            path: path.display().to_string(),
            error,
        };
        let tmp = path.with_extension("tmp");
        let mut file = File::create(&tmp).map_err(io)?;
        let text = serde_json::to_vec_pretty(self).unwrap_or_default();
        file.write_all(&text).map_err(io)?;
        file.sync_all().map_err(io)?;
        std::fs::rename(&tmp, path).map_err(io)
    }
}

/// What to import and how.
pub struct Backfill<'a> {
    pub file: PathBuf,
    pub format: FileFormat,
    pub route: &'a Route,
    pub state_file: PathBuf,
    /// Send again the windows a stopped run left unknown (they may be imported twice).
    pub resend_unknown: bool,
}

/// Where a run is, for a progress display.
#[derive(Debug, Clone, Copy, Default)]
pub struct Progress {
    pub bytes_read: u64,
    pub file_bytes: u64,
    pub rows_read: usize,
    /// Rows this run read (a resumed run's rate is of these).
    pub rows_this_run: usize,
    pub imported: usize,
    pub synced: usize,
    pub rejected: usize,
    pub skipped: usize,
}

impl Backfill<'_> {
    /// The state to continue from: the file's, when it is for this file and route.
    pub fn load_state(&self) -> Result<BackfillState, BackfillError> {
        let fresh = self.fresh_state()?;
        let Ok(text) = std::fs::read(&self.state_file) else {
            return Ok(fresh);
        };
        let mut state: BackfillState = serde_json::from_slice(&text)
            .map_err(|_| BackfillError::BadState(self.state_file.display().to_string()))?;
        if state.file_bytes != fresh.file_bytes
            || state.file_head != fresh.file_head
            || state.route != fresh.route
        {
            return Err(BackfillError::OtherRun {
                state: self.state_file.display().to_string(),
                other: format!(
                    "{} ({} bytes) through route {}",
                    state.file, state.file_bytes, state.route
                ),
            });
        }
        // Stopped while ActiveCampaign answered: not sent again unless asked.
        if let Some((first, last)) = state.in_flight.take() {
            if !state.unknown.contains(&(first, last)) {
                state.unknown.push((first, last));
            }
            state.next_row = state.next_row.max(last + 1);
        }
        Ok(state)
    }

    /// A fresh state for this file (a dry run plans it all, whatever a state file says).
    pub fn fresh_state(&self) -> Result<BackfillState, BackfillError> {
        let file_bytes = std::fs::metadata(&self.file)
            .map_err(|error| BackfillError::File {
                path: self.file.display().to_string(),
                error,
            })?
            .len();
        Ok(BackfillState::new(
            &self.file.display().to_string(),
            file_bytes,
            file_head(&self.file)?,
            &self.route.name,
        ))
    }

    /// Imports the rest of the file, calling `progress` after each window. With `delivery`
    /// `None` (a dry run) nothing is sent: each window is planned and handed to `planned`.
    pub async fn run(
        &self,
        delivery: Option<(&InlineDelivery, Arc<AppSecret>)>,
        mut progress: impl FnMut(&Progress),
        mut planned: impl FnMut(&crate::delivery::import::BatchPlan),
    ) -> Result<BackfillState, BackfillError> {
        let _lock = match delivery {
            Some(_) => Some(RunLock::take(&self.state_file)?),
            None => None,
        };
        let mut state = match delivery {
            Some(_) => self.load_state()?,
            None => self.fresh_state()?,
        };
        let io = |error| BackfillError::File {
            path: self.file.display().to_string(),
            error,
        };
        let file = File::open(&self.file).map_err(io)?;
        let counted = CountingReader::new(file);
        let bytes = counted.count.clone();
        let mut rows = RowReader::new(counted, self.format)?;
        let resume_at = state.next_row;
        let rows_at_start = state.rows_read;
        // Rows before `resume_at` are done, except unknown ones the operator asked to resend
        // (each is removed from the list once delivered).
        let resend: Vec<(usize, usize)> = if self.resend_unknown {
            state.unknown.clone()
        } else {
            Vec::new()
        };
        let mut window: Vec<(usize, RowRead)> = Vec::with_capacity(WINDOW_ROWS);
        loop {
            let next = rows.next_row()?;
            let done = next.is_none();
            if let Some((row, value)) = next {
                if row < resume_at && !resend.iter().any(|(a, b)| (*a..=*b).contains(&row)) {
                    continue;
                }
                window.push((row, value));
                if window.len() < WINDOW_ROWS {
                    continue;
                }
            }
            if !window.is_empty() {
                let taken = std::mem::take(&mut window);
                self.deliver_window(&mut state, taken, delivery.as_ref(), &mut planned)
                    .await?;
                if delivery.is_some() {
                    state.save(&self.state_file)?;
                }
                progress(&Progress {
                    bytes_read: bytes.load(std::sync::atomic::Ordering::Relaxed),
                    file_bytes: state.file_bytes,
                    rows_read: state.rows_read,
                    rows_this_run: state.rows_read - rows_at_start,
                    imported: state.imported,
                    synced: state.synced,
                    rejected: state.rejected.len(),
                    skipped: state.skipped,
                });
            }
            if done {
                return Ok(state);
            }
        }
    }

    async fn deliver_window(
        &self,
        state: &mut BackfillState,
        rows: Vec<(usize, RowRead)>,
        delivery: Option<&(&InlineDelivery, Arc<AppSecret>)>,
        planned: &mut impl FnMut(&crate::delivery::import::BatchPlan),
    ) -> Result<(), BackfillError> {
        let first = rows.first().map_or(0, |(row, _)| *row);
        let last = rows.last().map_or(0, |(row, _)| *row);
        // Rows resent (unknown before) were read by an earlier run.
        let read = rows
            .iter()
            .filter(|(row, _)| *row >= state.next_row)
            .count();
        let mut contacts = Vec::with_capacity(rows.len());
        let mut row_of_email: HashMap<String, usize> = HashMap::new();
        let mut rejected = Vec::new();
        let mut skipped = 0;
        for (row, value) in rows {
            let value = match value {
                Ok(value) => value,
                Err(message) => {
                    rejected.push(RejectedRow {
                        row,
                        email: None,
                        reason: format!("unreadable: {message}"),
                    });
                    continue;
                }
            };
            let submission = crate::sources::batch::submission(value);
            match map_submission(&submission, self.route) {
                MappingOutcome::Contact(contact) => {
                    row_of_email.entry(contact.email.clone()).or_insert(row);
                    contacts.push(*contact);
                }
                MappingOutcome::Skipped { .. } => skipped += 1,
                MappingOutcome::Rejected { reason } => rejected.push(RejectedRow {
                    row,
                    email: submission.contact.email.clone(),
                    reason,
                }),
            }
        }
        let Some((delivery, secret)) = delivery else {
            planned(&crate::delivery::import::plan_batch(
                contacts,
                self.route.exclude_automations,
            ));
            state.rows_read += read;
            state.skipped += skipped;
            state.rejected.extend(rejected);
            state.next_row = state.next_row.max(last + 1);
            return Ok(());
        };
        // Time for the window at ActiveCampaign's pace, twice over (429s, one-by-one contacts).
        let budget = WINDOW_BUDGET.max(
            2 * delivery.batch_duration(&crate::delivery::import::plan_batch(
                contacts.clone(),
                self.route.exclude_automations,
            )),
        );
        state.in_flight = Some((first, last));
        state.save(&self.state_file)?;
        let options = ImportOptions {
            route: &self.route.name,
            callback: None,
            exclude_automations: self.route.exclude_automations,
            generation: 0,
            must_finish: false,
        };
        let delivered = delivery
            .deliver_batch(contacts, secret.clone(), options, Instant::now() + budget)
            .await;
        state.in_flight = None;
        let delivered = match delivered {
            Ok(delivered) => delivered,
            Err(error) => {
                // Part of the window may be in (an import before the one that failed, or an
                // answer that never came): it is not sent again unless asked.
                if !state.unknown.contains(&(first, last)) {
                    state.unknown.push((first, last));
                }
                state.next_row = state.next_row.max(last + 1);
                state.save(&self.state_file)?;
                return Err(BackfillError::Delivery {
                    first,
                    last,
                    reason: error.to_string(),
                });
            }
        };
        let imported: usize = delivered.imports.iter().map(|i| i.queued_contacts).sum();
        state.rows_read += read;
        state.imported += imported;
        state.synced += delivered.synced;
        state.skipped += skipped;
        state.rejected.extend(rejected);
        state
            .rejected
            .extend(delivered.rejected.into_iter().map(|r| RejectedRow {
                row: row_of_email.get(&r.email).copied().unwrap_or(0),
                email: Some(r.email),
                reason: r.reason,
            }));
        state.windows.push(Window {
            first_row: first,
            last_row: last,
            batch_ids: delivered.imports.into_iter().map(|i| i.batch_id).collect(),
            imported,
            synced: delivered.synced,
        });
        state.next_row = state.next_row.max(last + 1);
        state.unknown.retain(|(a, b)| !(*a >= first && *b <= last));
        Ok(())
    }
}

/// SHA-256 of a file's first 64 KiB, hex.
fn file_head(path: &Path) -> Result<String, BackfillError> {
    use sha2::Digest;
    let io = |error| BackfillError::File {
        path: path.display().to_string(),
        error,
    };
    let mut head = Vec::with_capacity(64 * 1024);
    File::open(path)
        .map_err(io)?
        .take(64 * 1024)
        .read_to_end(&mut head)
        .map_err(io)?;
    Ok(hex::encode(sha2::Sha256::digest(&head)))
}

/// One run at a time per state file: `{state}.lock` holds the running process's id. A lock
/// whose process is gone (a run that was killed) is taken over.
struct RunLock(PathBuf);

impl RunLock {
    fn take(state_file: &Path) -> Result<Self, BackfillError> {
        let path = state_file.with_extension("lock");
        let io = |error| BackfillError::File {
            path: path.display().to_string(),
            error,
        };
        for _ in 0..2 {
            match std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(&path)
            {
                Ok(mut file) => {
                    file.write_all(std::process::id().to_string().as_bytes())
                        .map_err(io)?;
                    return Ok(Self(path));
                }
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                    let holder = std::fs::read_to_string(&path).unwrap_or_default();
                    let alive = holder
                        .trim()
                        .parse::<u32>()
                        .is_ok_and(|pid| Path::new(&format!("/proc/{pid}")).exists());
                    if alive {
                        return Err(BackfillError::Running {
                            lock: path.display().to_string(),
                            pid: holder.trim().to_string(),
                        });
                    }
                    std::fs::remove_file(&path).map_err(io)?;
                }
                Err(e) => return Err(io(e)),
            }
        }
        Err(BackfillError::Running {
            lock: path.display().to_string(),
            pid: "?".into(),
        })
    }
}

impl Drop for RunLock {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// One row as read: its object, or why it could not be read.
type RowRead = Result<Value, String>;

/// Counts the bytes read through it, for progress.
struct CountingReader<R> {
    inner: R,
    count: Arc<std::sync::atomic::AtomicU64>,
}

impl<R> CountingReader<R> {
    fn new(inner: R) -> Self {
        Self {
            inner,
            count: Arc::default(),
        }
    }
}

impl<R: Read> Read for CountingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.count
            .fetch_add(n as u64, std::sync::atomic::Ordering::Relaxed);
        Ok(n)
    }
}

/// Rows of a file, one at a time, numbered as the batch route numbers them (CSV lines counting
/// the header as 1, NDJSON lines, JSON array items from 1).
enum RowReader<R: Read> {
    Csv {
        reader: csv::Reader<R>,
        headers: csv::StringRecord,
        record: csv::StringRecord,
        row: usize,
    },
    Ndjson {
        lines: std::io::Lines<BufReader<R>>,
        row: usize,
    },
    Json {
        items: std::sync::mpsc::Receiver<JsonItem>,
        row: usize,
    },
}

impl<R: Read + Send + 'static> RowReader<R> {
    fn new(source: R, format: FileFormat) -> Result<Self, BackfillError> {
        Ok(match format {
            FileFormat::Csv => {
                let mut reader = csv::ReaderBuilder::new()
                    .flexible(false)
                    .trim(csv::Trim::All)
                    .from_reader(source);
                let headers = reader
                    .headers()
                    .map_err(|e| BackfillError::Row {
                        row: 1,
                        message: format!("header row: {e}"),
                    })?
                    .clone();
                Self::Csv {
                    reader,
                    headers,
                    record: csv::StringRecord::new(),
                    row: 1,
                }
            }
            FileFormat::Ndjson => Self::Ndjson {
                lines: BufReader::new(source).lines(),
                row: 0,
            },
            FileFormat::Json => Self::Json {
                items: json_items(source),
                row: 0,
            },
        })
    }

    /// The next row: its number and its object, or why that row cannot be read (the run
    /// goes on; the row is rejected). `Err` only when the file cannot be read further.
    fn next_row(&mut self) -> Result<Option<(usize, RowRead)>, BackfillError> {
        match self {
            Self::Csv {
                reader,
                headers,
                record,
                row,
            } => {
                *row += 1;
                match reader.read_record(record) {
                    Ok(true) => Ok(Some((
                        *row,
                        Ok(crate::sources::batch::csv_row(headers, record)),
                    ))),
                    Ok(false) => Ok(None),
                    // A record of another length, or not UTF-8: that row only.
                    Err(e) if !e.is_io_error() => Ok(Some((*row, Err(e.to_string())))),
                    Err(e) => Err(BackfillError::Row {
                        row: *row,
                        message: e.to_string(),
                    }),
                }
            }
            Self::Ndjson { lines, row } => loop {
                *row += 1;
                let Some(line) = lines.next() else {
                    return Ok(None);
                };
                let line = match line {
                    Ok(line) => line,
                    Err(e) if e.kind() == std::io::ErrorKind::InvalidData => {
                        return Ok(Some((*row, Err("not UTF-8".into()))));
                    }
                    Err(e) => {
                        return Err(BackfillError::Row {
                            row: *row,
                            message: e.to_string(),
                        });
                    }
                };
                if line.trim().is_empty() {
                    continue;
                }
                let value = serde_json::from_str(&line)
                    .map_err(|e| e.to_string())
                    .and_then(|v| {
                        crate::sources::batch::object_row_at(*row, v).map_err(|e| e.to_string())
                    });
                return Ok(Some((*row, value)));
            },
            Self::Json { items, row } => match items.recv() {
                Ok(JsonItem::Item(value)) => {
                    *row += 1;
                    let value = crate::sources::batch::object_row_at(*row, value)
                        .map_err(|e| e.to_string());
                    Ok(Some((*row, value)))
                }
                Ok(JsonItem::End) => Ok(None),
                Ok(JsonItem::Failed(message)) => Err(BackfillError::Row {
                    row: *row + 1,
                    message,
                }),
                Err(_) => Err(BackfillError::Row {
                    row: *row + 1,
                    message: "the JSON reader stopped before the end of the file".into(),
                }),
            },
        }
    }
}

/// What the JSON reader's thread hands over: an item, the end, or why it stopped.
enum JsonItem {
    Item(Value),
    End,
    Failed(String),
}

/// The items of a JSON array (or of `{"contacts": [...]}`), parsed one at a time on their own
/// thread: the file is never held whole. Anything after the array (an NDJSON file named
/// `.json`) or an object without `contacts` is an error, as for a posted batch.
fn json_items<R: Read + Send + 'static>(source: R) -> std::sync::mpsc::Receiver<JsonItem> {
    use serde::de::{Deserializer, Error as _, MapAccess, SeqAccess, Visitor};
    let (send, receive) = std::sync::mpsc::sync_channel(WINDOW_ROWS);
    struct Items(std::sync::mpsc::SyncSender<JsonItem>);
    impl<'de> Visitor<'de> for Items {
        type Value = ();
        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("an array of contacts, or an object with a \"contacts\" array")
        }
        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
            while let Some(item) = seq.next_element::<Value>()? {
                if self.0.send(JsonItem::Item(item)).is_err() {
                    break;
                }
            }
            Ok(())
        }
        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
            let mut found = false;
            while let Some(key) = map.next_key::<String>()? {
                if key == "contacts" && !found {
                    found = true;
                    map.next_value_seed(ItemsSeed(self.0.clone()))?;
                } else {
                    map.next_value::<serde::de::IgnoredAny>()?;
                }
            }
            if found {
                Ok(())
            } else {
                Err(A::Error::custom(
                    "expected an array, or an object with a \"contacts\" array",
                ))
            }
        }
    }
    struct ItemsSeed(std::sync::mpsc::SyncSender<JsonItem>);
    impl<'de> serde::de::DeserializeSeed<'de> for ItemsSeed {
        type Value = ();
        fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
            d.deserialize_seq(Items(self.0))
        }
    }
    std::thread::spawn(move || {
        let mut de = serde_json::Deserializer::from_reader(BufReader::new(source));
        let read = (&mut de)
            .deserialize_any(Items(send.clone()))
            .and_then(|()| de.end());
        let _ = send.send(match read {
            Ok(()) => JsonItem::End,
            Err(e) => JsonItem::Failed(e.to_string()),
        });
    });
    receive
}
