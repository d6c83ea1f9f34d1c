//! Records: the serial types of a row's columns, and SQLite varints.

use super::Value;

/// The columns of a record: a header (its own length as a varint, then one serial
/// type per column) and the values in order. Every length is checked against the
/// payload.
pub fn decode_record(payload: &[u8]) -> Result<Vec<Value<'_>>, String> {
    let (header_len, mut at) = varint(payload, 0).ok_or("truncated record header")?;
    let header_len = usize::try_from(header_len)
        .ok()
        .filter(|h| *h >= at && *h <= payload.len())
        .ok_or_else(|| {
            format!(
                "a record header of {header_len} bytes in a {}-byte record",
                payload.len()
            )
        })?;
    let mut body = header_len;
    let mut cols = Vec::new();
    while at < header_len {
        let (serial, next) = varint(&payload[..header_len], at).ok_or("truncated serial type")?;
        at = next;
        let len: usize = match serial {
            0 | 8 | 9 => 0,
            1..=4 => serial as usize,
            5 => 6,
            6 | 7 => 8,
            10 | 11 => return Err(format!("reserved serial type {serial}")),
            n => ((n - 12) / 2) as usize,
        };
        let bytes = payload
            .get(body..)
            .and_then(|rest| rest.get(..len))
            .ok_or_else(|| format!("column {} runs past the record", cols.len()))?;
        body += len;
        cols.push(match serial {
            0 => Value::Null,
            8 => Value::Int(0),
            9 => Value::Int(1),
            1..=6 => {
                // Big-endian two's complement of 1 to 8 bytes, sign-extended.
                let mut v: i64 = if bytes[0] & 0x80 != 0 { -1 } else { 0 };
                for b in bytes {
                    v = (v << 8) | i64::from(*b);
                }
                Value::Int(v)
            }
            7 => Value::Real(f64::from_be_bytes(bytes.try_into().unwrap_or([0; 8]))),
            n if n % 2 == 0 => Value::Blob(bytes),
            _ => Value::Text(bytes),
        });
    }
    Ok(cols)
}

/// A SQLite varint at `at`: 1 to 9 bytes, big-endian, seven bits a byte with the
/// high bit saying another follows, all eight bits of a ninth. The value and the
/// offset after it, or `None` when it runs past `buf`.
pub(super) fn varint(buf: &[u8], at: usize) -> Option<(u64, usize)> {
    let mut v: u64 = 0;
    for i in 0..9 {
        let b = *buf.get(at + i)?;
        if i == 8 {
            return Some(((v << 8) | u64::from(b), at + 9));
        }
        v = (v << 7) | u64::from(b & 0x7f);
        if b & 0x80 == 0 {
            return Some((v, at + i + 1));
        }
    }
    None
}
