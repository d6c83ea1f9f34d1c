//! Table b-trees: the schema table's root pages, interior and leaf pages walked
//! once each, and leaf cells with their overflow chains.

use std::collections::HashSet;

use super::record::{decode_record, varint};
use super::{be16, be32, Database, Value, MAX_PAYLOAD};
use crate::facts::FactError;

impl Database<'_> {
    /// The root page of the table named `name` (ASCII case ignored, as SQLite
    /// names are), from the schema table; `None` when there is no such table.
    pub fn table_root(&self, name: &str) -> Result<Option<u32>, FactError> {
        let mut found = None;
        self.scan_table(1, |rowid, payload| {
            let cols = decode_record(payload)
                .map_err(|r| self.bad(format!("schema row {rowid}: {r}")))?;
            let is = |i: usize, want: &str| {
                matches!(cols.get(i), Some(Value::Text(t)) if t.eq_ignore_ascii_case(want.as_bytes()))
            };
            if found.is_none() && is(0, "table") && is(1, name) {
                found = Some(match cols.get(3) {
                    Some(Value::Int(n)) if *n >= 1 && *n <= i64::from(self.pages) => *n as u32,
                    Some(Value::Int(n)) => {
                        return Err(self.bad(format!(
                            "table {name}'s root page {n} is out of range: the database has {} pages",
                            self.pages
                        )))
                    }
                    _ => {
                        return Err(self.bad(format!(
                            "the schema gives table {name} no root page number"
                        )))
                    }
                });
            }
            Ok(())
        })?;
        Ok(found)
    }

    /// Calls `row` with the rowid and the record of every row of the table b-tree
    /// rooted at page `root`, in no particular order. Each page is visited once: a
    /// page reached twice (a loop, or pages shared by two parents) is an error.
    pub fn scan_table(
        &self,
        root: u32,
        mut row: impl FnMut(i64, &[u8]) -> Result<(), FactError>,
    ) -> Result<(), FactError> {
        let mut seen = HashSet::new();
        let mut stack = vec![root];
        while let Some(n) = stack.pop() {
            if !seen.insert(n) {
                return Err(self.bad(format!("b-tree page {n} is reached twice (a loop)")));
            }
            let page = self.page(n)?;
            let start = if n == 1 { 100 } else { 0 };
            let kind = page[start];
            let interior = match kind {
                0x05 => true,
                0x0d => false,
                _ => {
                    return Err(self.bad(format!(
                        "page {n} is not a table b-tree page (type {kind:#04x})"
                    )))
                }
            };
            let cells = usize::from(be16(&page, start + 3));
            let array = start + if interior { 12 } else { 8 };
            let usable = self.usable as usize;
            if array + 2 * cells > usable {
                return Err(self.bad(format!(
                    "page {n} claims {cells} cells, more than it can hold"
                )));
            }
            if interior {
                stack.push(be32(&page, start + 8));
            }
            for i in 0..cells {
                let at = usize::from(be16(&page, array + 2 * i));
                if at < array + 2 * cells || at >= usable {
                    return Err(self.bad(format!(
                        "page {n} cell {i} is at offset {at}, outside the cell area"
                    )));
                }
                if interior {
                    if at + 4 > usable {
                        return Err(self.bad(format!("page {n} cell {i} runs past the page")));
                    }
                    stack.push(be32(&page, at));
                } else {
                    let (rowid, payload) = self.leaf_cell(&page, n, at, &mut seen)?;
                    row(rowid, &payload)?;
                }
            }
        }
        Ok(())
    }

    /// The rowid and whole payload of the table leaf cell at `at` on page `n`,
    /// following its overflow chain.
    fn leaf_cell(
        &self,
        page: &[u8],
        n: u32,
        at: usize,
        seen: &mut HashSet<u32>,
    ) -> Result<(i64, Vec<u8>), FactError> {
        let usable = self.usable as usize;
        let area = &page[..usable];
        let cell_err = |what: &str| self.bad(format!("page {n} cell at {at}: {what}"));
        let (size, a) = varint(area, at).ok_or_else(|| cell_err("truncated payload size"))?;
        let (rowid, b) = varint(area, a).ok_or_else(|| cell_err("truncated rowid"))?;
        if size > MAX_PAYLOAD {
            return Err(cell_err(&format!(
                "a record of {size} bytes, more than the {MAX_PAYLOAD}-byte limit"
            )));
        }
        let size = size as usize;
        let local = local_payload(size, usable);
        let end = b + local;
        let needs = end + if local < size { 4 } else { 0 };
        if needs > usable {
            return Err(cell_err("its payload runs past the page"));
        }
        let mut payload = Vec::with_capacity(local);
        payload.extend_from_slice(&area[b..end]);
        let mut next = if local < size { be32(area, end) } else { 0 };
        let chunk = usable - 4;
        while payload.len() < size {
            if next == 0 {
                return Err(cell_err(&format!(
                    "its overflow chain ends after {} of {size} bytes",
                    payload.len()
                )));
            }
            if !seen.insert(next) {
                return Err(cell_err(&format!(
                    "overflow page {next} is reached twice (a loop)"
                )));
            }
            let over = self.page(next)?;
            let take = chunk.min(size - payload.len());
            payload.extend_from_slice(&over[4..4 + take]);
            next = be32(&over, 0);
        }
        Ok((rowid as i64, payload))
    }
}

/// How much of a table leaf cell's payload of `size` bytes is stored on the page,
/// with `usable` bytes per page (the rest is in overflow pages).
fn local_payload(size: usize, usable: usize) -> usize {
    let max_local = usable - 35;
    if size <= max_local {
        return size;
    }
    let min_local = (usable - 12) * 32 / 255 - 23;
    let k = min_local + (size - min_local) % (usable - 4);
    if k <= max_local {
        k
    } else {
        min_local
    }
}
