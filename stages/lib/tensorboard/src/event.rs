//! The `Event` protobuf (tensorflow/core/util/event.proto) as far as scalars need it:
//! `wall_time` (1, double), `step` (2, int64), `file_version` (3, string) and `summary`
//! (5, `Summary`), whose `value`s (1) hold a `tag` (1, string) and a `simple_value` (2, float).

use anyhow::{bail, Context, Result};

/// One scalar of a summary.
#[derive(Debug, Clone, PartialEq)]
pub struct Scalar {
    pub tag: String,
    pub value: f32,
}

/// One event: the file version, or the scalars of one step.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Event {
    pub wall_time: f64,
    pub step: i64,
    pub file_version: Option<String>,
    pub scalars: Vec<Scalar>,
}

// Wire types.
const VARINT: u64 = 0;
const FIXED64: u64 = 1;
const BYTES: u64 = 2;
const FIXED32: u64 = 5;

fn varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn key(out: &mut Vec<u8>, field: u64, wire: u64) {
    varint(out, (field << 3) | wire);
}

fn bytes_field(out: &mut Vec<u8>, field: u64, data: &[u8]) {
    key(out, field, BYTES);
    varint(out, data.len() as u64);
    out.extend_from_slice(data);
}

impl Event {
    /// Scalars `(tag, value)` at `step`.
    pub fn scalars(wall_time: f64, step: i64, scalars: Vec<Scalar>) -> Event {
        Event { wall_time, step, file_version: None, scalars }
    }

    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        key(&mut out, 1, FIXED64);
        out.extend_from_slice(&self.wall_time.to_le_bytes());
        if self.step != 0 {
            key(&mut out, 2, VARINT);
            varint(&mut out, self.step as u64);
        }
        if let Some(v) = &self.file_version {
            bytes_field(&mut out, 3, v.as_bytes());
        }
        if !self.scalars.is_empty() {
            let mut summary = Vec::new();
            for s in &self.scalars {
                let mut value = Vec::new();
                bytes_field(&mut value, 1, s.tag.as_bytes());
                key(&mut value, 2, FIXED32);
                value.extend_from_slice(&s.value.to_le_bytes());
                bytes_field(&mut summary, 1, &value);
            }
            bytes_field(&mut out, 5, &summary);
        }
        out
    }

    /// Read back what [`Event::encode`] writes (fields it does not know are skipped).
    pub fn decode(data: &[u8]) -> Result<Event> {
        let mut e = Event::default();
        for (field, v) in fields(data)? {
            match (field, v) {
                (1, Field::Fixed64(b)) => e.wall_time = f64::from_le_bytes(b),
                (2, Field::Varint(s)) => e.step = s as i64,
                (3, Field::Bytes(b)) => e.file_version = Some(utf8(b)?),
                (5, Field::Bytes(summary)) => {
                    for (f, v) in fields(summary)? {
                        if let (1, Field::Bytes(value)) = (f, v) {
                            let mut s = Scalar { tag: String::new(), value: f32::NAN };
                            for (f, v) in fields(value)? {
                                match (f, v) {
                                    (1, Field::Bytes(t)) => s.tag = utf8(t)?,
                                    (2, Field::Fixed32(b)) => s.value = f32::from_le_bytes(b),
                                    _ => {}
                                }
                            }
                            e.scalars.push(s);
                        }
                    }
                }
                _ => {}
            }
        }
        Ok(e)
    }
}

fn utf8(b: &[u8]) -> Result<String> {
    String::from_utf8(b.to_vec()).context("a string field is not UTF-8")
}

enum Field<'a> {
    Varint(u64),
    Fixed64([u8; 8]),
    Bytes(&'a [u8]),
    Fixed32([u8; 4]),
}

/// The (field number, value) pairs of one message.
fn fields(mut data: &[u8]) -> Result<Vec<(u64, Field<'_>)>> {
    fn read_varint(data: &mut &[u8]) -> Result<u64> {
        let mut v = 0u64;
        for shift in (0..64).step_by(7) {
            let (&b, rest) = data.split_first().context("truncated varint")?;
            *data = rest;
            v |= u64::from(b & 0x7f) << shift;
            if b < 0x80 {
                return Ok(v);
            }
        }
        bail!("varint longer than 10 bytes")
    }
    fn take<'a>(data: &mut &'a [u8], n: usize) -> Result<&'a [u8]> {
        if data.len() < n {
            bail!("truncated field");
        }
        let (head, rest) = data.split_at(n);
        *data = rest;
        Ok(head)
    }
    let mut out = Vec::new();
    while !data.is_empty() {
        let k = read_varint(&mut data)?;
        let value = match k & 7 {
            VARINT => Field::Varint(read_varint(&mut data)?),
            FIXED64 => Field::Fixed64(take(&mut data, 8)?.try_into().unwrap()),
            BYTES => {
                let n = read_varint(&mut data)? as usize;
                Field::Bytes(take(&mut data, n)?)
            }
            FIXED32 => Field::Fixed32(take(&mut data, 4)?.try_into().unwrap()),
            w => bail!("unsupported wire type {w}"),
        };
        out.push((k >> 3, value));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_round_trip() {
        let e = Event::scalars(
            1.7e9,
            640,
            vec![
                Scalar { tag: "update/loss".into(), value: -0.25 },
                Scalar { tag: "iteration/valid_task_rate".into(), value: 0.5 },
            ],
        );
        assert_eq!(Event::decode(&e.encode()).unwrap(), e);
        let v = Event {
            wall_time: 1.0,
            file_version: Some("brain.Event:2".into()),
            ..Default::default()
        };
        assert_eq!(Event::decode(&v.encode()).unwrap(), v);
    }

    #[test]
    fn known_bytes() {
        // {wall_time: 1, step: 3}: key 1/fixed64 (0x09) and the double, key 2/varint (0x10) and 3.
        let e = Event { wall_time: 1.0, step: 3, ..Default::default() };
        assert_eq!(e.encode(), [0x09, 0, 0, 0, 0, 0, 0, 0xf0, 0x3f, 0x10, 0x03]);
    }
}
