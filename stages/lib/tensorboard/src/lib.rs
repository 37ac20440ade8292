//! TensorBoard event files holding scalars, so a run can be watched with the tool researchers
//! already use (TRL's `report_to = "tensorboard"` idea).
//!
//! An event file is a sequence of TFRecords (`record.rs`), each an `Event` protobuf
//! (`event.rs`): the first carries the file version, the others a `Summary` of scalars at a
//! step. TensorBoard reads every file whose name contains `tfevents` in a folder, in name
//! order. Only the fields scalars need are written; the encoding is protobuf's wire format.

mod event;
mod record;

pub use event::{Event, Scalar};
pub use record::{masked_crc32c, read_records, write_record};

use std::io::Write;
use std::path::Path;

use anyhow::{Context, Result};

/// The file version TensorBoard expects in the first event.
pub const FILE_VERSION: &str = "brain.Event:2";

/// Bytes of an event file: the version event at `wall_time`, then `events`.
pub fn event_file_bytes(wall_time: f64, events: &[Event]) -> Vec<u8> {
    let mut out = Vec::new();
    let header =
        Event { wall_time, step: 0, file_version: Some(FILE_VERSION.into()), scalars: vec![] };
    write_record(&mut out, &header.encode());
    for e in events {
        write_record(&mut out, &e.encode());
    }
    out
}

/// Write `events` as the event file `path`, atomically (a temporary file renamed into place),
/// so a reader never sees half a file and rewriting it is idempotent.
pub fn write_event_file(path: &Path, wall_time: f64, events: &[Event]) -> Result<()> {
    let dir = path.parent().context("an event file needs a folder")?;
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let tmp = path.with_extension("tmp");
    let write = || -> std::io::Result<()> {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(&event_file_bytes(wall_time, events))?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    };
    write().map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        anyhow::Error::new(e).context(format!("writing {}", path.display()))
    })
}

/// Every event of an event file (the version event included), checking each record's CRCs.
pub fn read_event_file(path: &Path) -> Result<Vec<Event>> {
    let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    read_records(&bytes)
        .with_context(|| format!("{} is not a TFRecord file", path.display()))?
        .iter()
        .enumerate()
        .map(|(i, r)| {
            Event::decode(r)
                .with_context(|| format!("{}: record {i} is not an Event", path.display()))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_event_file_reads_back_with_its_version_first() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tb/events.out.tfevents.iter-0000.spice");
        let events = vec![
            Event::scalars(5.0, 1, vec![Scalar { tag: "update/loss".into(), value: 0.5 }]),
            Event::scalars(5.0, 2, vec![Scalar { tag: "update/loss".into(), value: 0.25 }]),
        ];
        write_event_file(&path, 5.0, &events).unwrap();
        let back = read_event_file(&path).unwrap();
        assert_eq!(back[0].file_version.as_deref(), Some(FILE_VERSION));
        assert_eq!(&back[1..], &events[..]);
        // Rewriting gives the same bytes, and leaves no temporary file.
        let first = std::fs::read(&path).unwrap();
        write_event_file(&path, 5.0, &events).unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), first);
        assert_eq!(std::fs::read_dir(path.parent().unwrap()).unwrap().count(), 1);
    }
}
