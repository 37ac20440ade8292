//! Documents out of corpus files, one [`Record`] at a time, in file order. A bad line or row
//! becomes a [`Record::Skip`] with its reason; only a file that cannot be opened at all is an
//! error.

use std::{
    fs::File,
    io::{BufRead, BufReader, Read},
    path::Path,
};

use anyhow::{Context, Result};
use arrow::{
    array::{Array, AsArray},
    datatypes::DataType,
};
use parquet::arrow::{
    arrow_reader::{ParquetRecordBatchReader, ParquetRecordBatchReaderBuilder},
    ProjectionMask,
};
use serde_json::Value;

use crate::{
    corpus::{CorpusFile, Format},
    skips::SkipReason,
};

/// One record of a corpus file.
#[derive(Debug, Clone, PartialEq)]
pub enum Record {
    /// A document: `doc_index` is its line (JSONL, 0-based), row (Parquet) or 0 (text).
    Doc { doc_index: u64, text: String },
    /// `records` records skipped at `at` (`file:line`, `file: row N`, `file`).
    Skip { reason: SkipReason, records: u64, at: String, detail: String },
}

/// The records of one corpus file; `text_field` names the JSONL key or Parquet column.
pub fn records(
    file: &CorpusFile,
    text_field: &str,
) -> Result<Box<dyn Iterator<Item = Record> + Send>> {
    let path = &file.path;
    let open =
        || File::open(path).with_context(|| format!("opening corpus file {}", path.display()));
    Ok(match file.format {
        Format::Text => Box::new(std::iter::once(text_file(path)?)),
        Format::Jsonl => {
            Box::new(JsonlRecords::new(path, BufReader::new(open()?), text_field, false))
        }
        Format::JsonlZst => {
            let reader: Box<dyn BufRead + Send> = match zstd::Decoder::new(open()?) {
                Ok(d) => Box::new(BufReader::new(d)),
                Err(e) => {
                    let at = path.display().to_string();
                    return Ok(Box::new(std::iter::once(skip(
                        SkipReason::ZstdError,
                        1,
                        at,
                        e.to_string(),
                    ))));
                }
            };
            Box::new(JsonlRecords::new(path, reader, text_field, true))
        }
        Format::Parquet => parquet_records(path, open()?, text_field),
    })
}

/// Records a file holds (documents and bad lines), for the progress bar. Cheap next to
/// tokenization: newlines are counted, Parquet row counts come from the footer.
pub fn count_records(file: &CorpusFile) -> u64 {
    let count_lines = |mut r: Box<dyn Read>| {
        let (mut n, mut last, mut buf) = (0u64, b'\n', vec![0u8; 1 << 16]);
        loop {
            match r.read(&mut buf) {
                Ok(0) => break,
                Ok(k) => {
                    n += buf[..k].iter().filter(|&&b| b == b'\n').count() as u64;
                    last = buf[k - 1];
                }
                Err(_) => return n + 1,
            }
        }
        n + u64::from(last != b'\n')
    };
    let Ok(f) = File::open(&file.path) else { return 1 };
    match file.format {
        Format::Text => 1,
        Format::Jsonl => count_lines(Box::new(f)),
        Format::JsonlZst => match zstd::Decoder::new(f) {
            Ok(d) => count_lines(Box::new(d)),
            Err(_) => 1,
        },
        Format::Parquet => ParquetRecordBatchReaderBuilder::try_new(f)
            .map(|b| b.metadata().file_metadata().num_rows().max(0) as u64)
            .unwrap_or(1),
    }
}

fn skip(reason: SkipReason, records: u64, at: String, detail: String) -> Record {
    Record::Skip { reason, records, at, detail }
}

/// A text file is one document.
fn text_file(path: &Path) -> Result<Record> {
    let bytes =
        std::fs::read(path).with_context(|| format!("reading corpus file {}", path.display()))?;
    let at = path.display().to_string();
    Ok(match String::from_utf8(bytes) {
        Err(e) => skip(
            SkipReason::InvalidUtf8,
            1,
            at,
            format!("invalid UTF-8 at byte {}", e.utf8_error().valid_up_to()),
        ),
        Ok(text) if text.trim().is_empty() => {
            skip(SkipReason::Empty, 1, at, "the file is empty".into())
        }
        Ok(text) => Record::Doc { doc_index: 0, text },
    })
}

struct JsonlRecords<R> {
    path: String,
    reader: R,
    field: String,
    compressed: bool,
    line: u64,
    done: bool,
    buf: Vec<u8>,
}

impl<R: BufRead> JsonlRecords<R> {
    fn new(path: &Path, reader: R, field: &str, compressed: bool) -> Self {
        let path = path.display().to_string();
        Self {
            path,
            reader,
            field: field.to_string(),
            compressed,
            line: 0,
            done: false,
            buf: Vec::new(),
        }
    }

    /// The record of line `index` (0-based), whose bytes are in `self.buf`.
    fn parse(&self, index: u64) -> Record {
        let at = format!("{}:{}", self.path, index + 1);
        let mut bytes = &self.buf[..];
        if let Some(b) = bytes.strip_suffix(b"\n") {
            bytes = b.strip_suffix(b"\r").unwrap_or(b);
        }
        let line = match std::str::from_utf8(bytes) {
            Ok(s) => s,
            Err(e) => {
                return skip(
                    SkipReason::InvalidUtf8,
                    1,
                    at,
                    format!("invalid UTF-8 at byte {}", e.valid_up_to()),
                )
            }
        };
        if line.trim().is_empty() {
            return skip(SkipReason::Empty, 1, at, "blank line".into());
        }
        let mut object = match serde_json::from_str::<Value>(line) {
            Ok(Value::Object(o)) => o,
            Ok(other) => {
                return skip(
                    SkipReason::NotJson,
                    1,
                    at,
                    format!("a JSON {}, not an object", json_kind(&other)),
                )
            }
            Err(e) => return skip(SkipReason::NotJson, 1, at, e.to_string()),
        };
        match object.remove(&self.field) {
            None | Some(Value::Null) => {
                let detail = format!("no field `{}` (set corpus.text_field)", self.field);
                skip(SkipReason::MissingField, 1, at, detail)
            }
            Some(Value::String(text)) if text.trim().is_empty() => {
                skip(SkipReason::Empty, 1, at, format!("field `{}` is empty", self.field))
            }
            Some(Value::String(text)) => Record::Doc { doc_index: index, text },
            Some(other) => {
                let detail =
                    format!("field `{}` is a JSON {}, not a string", self.field, json_kind(&other));
                skip(SkipReason::NotAString, 1, at, detail)
            }
        }
    }
}

impl<R: BufRead> Iterator for JsonlRecords<R> {
    type Item = Record;

    fn next(&mut self) -> Option<Record> {
        if self.done {
            return None;
        }
        self.buf.clear();
        let index = self.line;
        match self.reader.read_until(b'\n', &mut self.buf) {
            Ok(0) => {
                self.done = true;
                None
            }
            Ok(_) => {
                self.line += 1;
                Some(self.parse(index))
            }
            Err(e) => {
                // A corrupt stream cannot be resynchronised: the rest of the file is lost.
                self.done = true;
                let reason =
                    if self.compressed { SkipReason::ZstdError } else { SkipReason::ReadError };
                let at = format!("{}:{}", self.path, index + 1);
                Some(skip(reason, 1, at, format!("{e}; the rest of the file is not read")))
            }
        }
    }
}

fn json_kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

fn parquet_records(
    path: &Path,
    file: File,
    field: &str,
) -> Box<dyn Iterator<Item = Record> + Send> {
    let name = path.display().to_string();
    let one = |reason, records, detail: String| -> Box<dyn Iterator<Item = Record> + Send> {
        Box::new(std::iter::once(skip(reason, records, name.clone(), detail)))
    };
    let builder = match ParquetRecordBatchReaderBuilder::try_new(file) {
        Ok(b) => b,
        Err(e) => {
            return one(SkipReason::ParquetError, 1, format!("not a readable Parquet file: {e}"))
        }
    };
    let rows = builder.metadata().file_metadata().num_rows().max(0) as u64;
    let schema = builder.schema().clone();
    let Some((index, column)) = schema.fields().iter().enumerate().find(|(_, f)| f.name() == field)
    else {
        let names: Vec<&str> = schema.fields().iter().map(|f| f.name().as_str()).collect();
        let detail =
            format!("no column `{field}` (columns: {}; set corpus.text_field)", names.join(", "));
        return one(SkipReason::MissingField, rows, detail);
    };
    let string_like =
        |t: &DataType| matches!(t, DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View);
    let readable = match column.data_type() {
        DataType::Dictionary(_, values) => string_like(values),
        t => string_like(t),
    };
    if !readable {
        let detail = format!("column `{field}` has type {}, not a string", column.data_type());
        return one(SkipReason::NotAString, rows, detail);
    }
    let mask = ProjectionMask::roots(builder.parquet_schema(), [index]);
    match builder.with_projection(mask).build() {
        Ok(reader) => Box::new(ParquetRecords {
            name,
            reader,
            texts: Vec::new(),
            next: 0,
            row: 0,
            done: false,
        }),
        Err(e) => one(SkipReason::ParquetError, 1, format!("cannot read column `{field}`: {e}")),
    }
}

struct ParquetRecords {
    name: String,
    reader: ParquetRecordBatchReader,
    /// The current batch's values, as UTF-8 (None = null).
    texts: Vec<Option<String>>,
    next: usize,
    /// Row index of the file of `texts[next]`.
    row: u64,
    done: bool,
}

impl Iterator for ParquetRecords {
    type Item = Record;

    fn next(&mut self) -> Option<Record> {
        while self.next >= self.texts.len() {
            if self.done {
                return None;
            }
            match self.reader.next() {
                None => {
                    self.done = true;
                    return None;
                }
                Some(Ok(batch)) => {
                    let column = batch.column(0);
                    let utf8 = match arrow::compute::cast(column, &DataType::Utf8) {
                        Ok(c) => c,
                        Err(e) => {
                            self.done = true;
                            let at = format!("{}: row {}", self.name, self.row);
                            return Some(skip(SkipReason::ParquetError, 1, at, e.to_string()));
                        }
                    };
                    let strings = utf8.as_string::<i32>();
                    self.texts = (0..strings.len())
                        .map(|i| (!strings.is_null(i)).then(|| strings.value(i).to_string()))
                        .collect();
                    self.next = 0;
                }
                Some(Err(e)) => {
                    self.done = true;
                    let at = format!("{}: row {}", self.name, self.row);
                    let detail = format!("{e}; the rest of the file is not read");
                    return Some(skip(SkipReason::ParquetError, 1, at, detail));
                }
            }
        }
        let text = self.texts[self.next].take();
        let row = self.row;
        self.next += 1;
        self.row += 1;
        let at = || format!("{}: row {row}", self.name);
        Some(match text {
            None => skip(SkipReason::MissingField, 1, at(), "null".into()),
            Some(t) if t.trim().is_empty() => skip(SkipReason::Empty, 1, at(), "empty text".into()),
            Some(t) => Record::Doc { doc_index: row, text: t },
        })
    }
}

#[cfg(test)]
mod tests {
    use std::{io::Write, path::PathBuf, sync::Arc};

    use arrow::{
        array::{ArrayRef, Int64Array, StringArray},
        record_batch::RecordBatch,
    };

    use super::*;

    fn file(dir: &Path, name: &str, bytes: &[u8]) -> CorpusFile {
        let path = dir.join(name);
        std::fs::write(&path, bytes).unwrap();
        CorpusFile { format: Format::of(&path).unwrap(), source: name.into(), path }
    }

    fn all(f: &CorpusFile, field: &str) -> Vec<Record> {
        records(f, field).unwrap().collect()
    }

    fn reasons(rs: &[Record]) -> Vec<&'static str> {
        rs.iter()
            .map(|r| match r {
                Record::Doc { .. } => "doc",
                Record::Skip { reason, .. } => reason.name(),
            })
            .collect()
    }

    const BAD_JSONL: &[u8] = b"{\"text\": \"first\"}\n\n{\"text\": 3}\nnot json\n[1]\n{\"other\": \"x\"}\n{\"text\": null}\n\xff\xfe\n{\"text\": \"  \"}\r\n{\"text\": \"last\"}";

    #[test]
    fn jsonl_lines_are_documents_or_counted_skips() {
        let dir = tempfile::tempdir().unwrap();
        let f = file(dir.path(), "a.jsonl", BAD_JSONL);
        let rs = all(&f, "text");
        assert_eq!(
            reasons(&rs),
            [
                "doc",
                "empty",
                "not_a_string",
                "not_json",
                "not_json",
                "missing_field",
                "missing_field",
                "invalid_utf8",
                "empty",
                "doc"
            ]
        );
        assert_eq!(rs[0], Record::Doc { doc_index: 0, text: "first".into() });
        // Line numbers survive skipped lines, so doc_index is the line whatever else is in the file.
        assert_eq!(rs[9], Record::Doc { doc_index: 9, text: "last".into() });
        let Record::Skip { at, .. } = &rs[3] else { panic!() };
        assert!(at.ends_with("a.jsonl:4"), "{at}");
        assert_eq!(count_records(&f), 10);
    }

    #[test]
    fn jsonl_zst_reads_like_jsonl_and_a_corrupt_tail_is_one_skip() {
        let dir = tempfile::tempdir().unwrap();
        let good = zstd::encode_all(BAD_JSONL, 3).unwrap();
        let f = file(dir.path(), "a.jsonl.zst", &good);
        let plain = file(dir.path(), "a.jsonl", BAD_JSONL);
        assert_eq!(reasons(&all(&f, "text")), reasons(&all(&plain, "text")));
        assert_eq!(count_records(&f), 10);

        // Two frames; the second is cut short: the first frame's lines are read, then one skip.
        let mut bytes =
            zstd::encode_all(&b"{\"text\": \"a\"}\n{\"text\": \"b\"}\n"[..], 3).unwrap();
        let second = zstd::encode_all(&b"{\"text\": \"c\"}\n".repeat(1000)[..], 3).unwrap();
        bytes.extend_from_slice(&second[..second.len() / 2]);
        let f = file(dir.path(), "cut.jsonl.zst", &bytes);
        let rs = all(&f, "text");
        assert_eq!(reasons(&rs[..2]), ["doc", "doc"]);
        assert!(
            rs.iter().any(|r| matches!(r, Record::Skip { reason: SkipReason::ZstdError, .. })),
            "{rs:?}"
        );

        let f = file(dir.path(), "junk.jsonl.zst", b"this is not zstd at all");
        assert_eq!(reasons(&all(&f, "text")), ["zstd_error"]);
    }

    #[test]
    fn text_files_are_one_document() {
        let dir = tempfile::tempdir().unwrap();
        let f = file(dir.path(), "a.md", "# Title\n\nBody.\n".as_bytes());
        assert_eq!(
            all(&f, "ignored"),
            [Record::Doc { doc_index: 0, text: "# Title\n\nBody.\n".into() }]
        );
        assert_eq!(reasons(&all(&file(dir.path(), "b.txt", b"ok \xff"), "text")), ["invalid_utf8"]);
        assert_eq!(reasons(&all(&file(dir.path(), "c.rst", b" \n\n"), "text")), ["empty"]);
    }

    fn write_parquet(path: &PathBuf, columns: Vec<(&str, ArrayRef)>) {
        let batch = RecordBatch::try_from_iter(columns).unwrap();
        let mut w =
            parquet::arrow::ArrowWriter::try_new(File::create(path).unwrap(), batch.schema(), None)
                .unwrap();
        w.write(&batch).unwrap();
        w.close().unwrap();
    }

    #[test]
    fn parquet_rows_are_documents() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.parquet");
        let text: ArrayRef =
            Arc::new(StringArray::from(vec![Some("one"), None, Some(" "), Some("four")]));
        let id: ArrayRef = Arc::new(Int64Array::from(vec![1, 2, 3, 4]));
        write_parquet(&path, vec![("id", id.clone()), ("text", text)]);
        let f =
            CorpusFile { path: path.clone(), source: "a.parquet".into(), format: Format::Parquet };
        let rs = all(&f, "text");
        assert_eq!(reasons(&rs), ["doc", "missing_field", "empty", "doc"]);
        assert_eq!(rs[3], Record::Doc { doc_index: 3, text: "four".into() });
        assert_eq!(count_records(&f), 4);

        // A missing column skips every row, a non-string one too; the detail names the columns.
        let rs = all(&f, "body");
        assert_eq!(reasons(&rs), ["missing_field"]);
        let Record::Skip { records, detail, .. } = &rs[0] else { panic!() };
        assert_eq!(*records, 4);
        assert!(detail.contains("id, text"), "{detail}");
        let rs = all(&f, "id");
        assert!(
            matches!(&rs[0], Record::Skip { reason: SkipReason::NotAString, records: 4, .. }),
            "{rs:?}"
        );
    }

    #[test]
    fn a_corrupt_parquet_file_is_a_skip_not_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bad.parquet");
        let mut f = File::create(&path).unwrap();
        f.write_all(b"PAR1 definitely not parquet").unwrap();
        let cf = CorpusFile { path, source: "bad.parquet".into(), format: Format::Parquet };
        assert_eq!(reasons(&all(&cf, "text")), ["parquet_error"]);
    }
}
