//! TFRecord framing: `u64` length, masked CRC-32C of the length, the data, masked CRC-32C of
//! the data, all little-endian.

use anyhow::{bail, Result};
use crc::{Crc, CRC_32_ISCSI};

const CRC32C: Crc<u32> = Crc::<u32>::new(&CRC_32_ISCSI);

/// TFRecord's masked CRC-32C (Castagnoli): rotated right by 15 bits plus a constant, so a
/// CRC stored inside checksummed data does not checksum to a fixed value.
pub fn masked_crc32c(data: &[u8]) -> u32 {
    let crc = CRC32C.checksum(data);
    crc.rotate_right(15).wrapping_add(0xa282_ead8)
}

/// Append one record holding `data` to `out`.
pub fn write_record(out: &mut Vec<u8>, data: &[u8]) {
    let len = (data.len() as u64).to_le_bytes();
    out.extend_from_slice(&len);
    out.extend_from_slice(&masked_crc32c(&len).to_le_bytes());
    out.extend_from_slice(data);
    out.extend_from_slice(&masked_crc32c(data).to_le_bytes());
}

/// The records of a TFRecord file, each checked against its CRCs.
pub fn read_records(bytes: &[u8]) -> Result<Vec<&[u8]>> {
    let mut out = Vec::new();
    let mut at = 0usize;
    let u32_at = |i: usize| u32::from_le_bytes(bytes[i..i + 4].try_into().unwrap());
    while at < bytes.len() {
        if bytes.len() - at < 12 {
            bail!("record {} at byte {at}: truncated header", out.len());
        }
        let len_bytes = &bytes[at..at + 8];
        if u32_at(at + 8) != masked_crc32c(len_bytes) {
            bail!("record {} at byte {at}: the length's CRC does not match", out.len());
        }
        let len = u64::from_le_bytes(len_bytes.try_into().unwrap()) as usize;
        let start = at + 12;
        if bytes.len() < start + len + 4 {
            bail!("record {} at byte {at}: truncated data", out.len());
        }
        let data = &bytes[start..start + len];
        if u32_at(start + len) != masked_crc32c(data) {
            bail!("record {} at byte {at}: the data's CRC does not match", out.len());
        }
        out.push(data);
        at = start + len + 4;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc32c_is_castagnolis() {
        // The standard check value of CRC-32C.
        assert_eq!(CRC32C.checksum(b"123456789"), 0xe306_9283);
    }

    #[test]
    fn records_round_trip_and_damage_is_found() {
        let mut buf = Vec::new();
        write_record(&mut buf, b"first");
        write_record(&mut buf, b"");
        write_record(&mut buf, &[7u8; 300]);
        let recs = read_records(&buf).unwrap();
        assert_eq!(recs, vec![&b"first"[..], &b""[..], &[7u8; 300][..]]);
        let mut bad = buf.clone();
        bad[14] ^= 1; // inside the first record's data
        assert!(read_records(&bad).unwrap_err().to_string().contains("data's CRC"));
        assert!(read_records(&buf[..buf.len() - 1]).is_err());
    }
}
