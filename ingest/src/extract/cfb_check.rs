//! A bounds check of an OLE compound file (the container of XLS) before calamine reads
//! it. calamine sizes its buffers from the sector ids in the file without checking them
//! against the file's length, and follows sector chains without looking for cycles: a
//! crafted file makes it ask for terabytes, which aborts the whole process rather than
//! panicking (found by the fuzzer). Every id it will follow is checked here first, and
//! every chain in the allocation table must end.

use super::spreadsheet::corrupt;
use crate::Result;

const SIGNATURE: [u8; 8] = [0xD0, 0xCF, 0x11, 0xE0, 0xA1, 0xB1, 0x1A, 0xE1];
/// Sector ids at or above this are markers (end of chain, free, FAT, DIFAT), not sectors.
const MAX_REGULAR_SECTOR: u32 = 0xFFFF_FFFA;
/// The DIFAT entries held in the header itself.
const HEADER_DIFAT_ENTRIES: usize = 109;

/// `Ok` when every sector id the header, the DIFAT and the FAT name lies inside the file,
/// and no FAT chain loops.
pub(super) fn check(bytes: &[u8], kind: &str) -> Result<()> {
    let bad = |why: &str| Err(corrupt(kind, &format!("compound file: {why}")));
    if bytes.len() < 512 || bytes[..8] != SIGNATURE {
        return bad("no compound file header");
    }
    let u32_at = |offset: usize| -> Option<u32> {
        bytes
            .get(offset..offset + 4)
            .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    };
    let sector_size = match u16::from_le_bytes([bytes[0x1E], bytes[0x1F]]) {
        9 => 512,
        12 => 4096,
        _ => return bad("sector size is neither 512 nor 4096 bytes"),
    };
    // Sectors the file holds after its header (a partial last one counts).
    let sectors = bytes.len().div_ceil(sector_size);
    let in_file = |id: u32| (id as usize) < sectors;
    let sector = |id: u32| -> Option<&[u8]> {
        let start = (id as usize + 1).checked_mul(sector_size)?;
        bytes.get(start..(start + sector_size).min(bytes.len()))
    };
    let header = |offset: usize| u32_at(offset).unwrap_or(u32::MAX);
    let (fat_len, dir_sectors, mini_fat_len) = (header(0x2C), header(0x28), header(0x40));
    if [fat_len, dir_sectors, mini_fat_len]
        .iter()
        .any(|&n| n as usize > sectors)
    {
        return bad("a table is longer than the file");
    }
    for start in [header(0x30), header(0x3C)] {
        if start < MAX_REGULAR_SECTOR && !in_file(start) {
            return bad("a chain starts outside the file");
        }
    }
    // The FAT's sectors: 109 ids in the header, the rest in a chain of DIFAT sectors.
    let mut fat_sectors: Vec<u32> = (0..HEADER_DIFAT_ENTRIES)
        .map(|i| header(0x4C + 4 * i))
        .collect();
    let mut difat = header(0x44);
    let mut steps = 0;
    while difat < MAX_REGULAR_SECTOR {
        steps += 1;
        let Some(data) = sector(difat).filter(|_| in_file(difat) && steps <= sectors) else {
            return bad("the DIFAT chain leaves the file or loops");
        };
        let ids: Vec<u32> = data
            .chunks_exact(4)
            .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect();
        let Some((next, entries)) = ids.split_last() else {
            return bad("a DIFAT sector is empty");
        };
        fat_sectors.extend_from_slice(entries);
        difat = *next;
    }
    let mut fat: Vec<u32> = Vec::new();
    for id in fat_sectors.into_iter().filter(|id| *id < 0xFFFF_FFFC) {
        match sector(id).filter(|_| in_file(id)) {
            Some(data) => fat.extend(
                data.chunks_exact(4)
                    .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]])),
            ),
            None => return bad("a FAT sector lies outside the file"),
        }
    }
    if fat
        .iter()
        .any(|&next| next < MAX_REGULAR_SECTOR && (!in_file(next) || next as usize >= fat.len()))
    {
        return bad("the FAT points outside the file");
    }
    if !chains_end(&fat) {
        return bad("a FAT chain loops");
    }
    if !chain_ok(header(0x30), &fat, sectors)
        || (mini_fat_len > 0 && !chain_ok(header(0x3C), &fat, sectors))
    {
        return bad("the directory or mini FAT chain is broken");
    }
    // The mini FAT, for the chains of small streams.
    let mut mini_fat: Vec<u32> = Vec::new();
    let mut at = header(0x3C);
    while mini_fat_len > 0 && at < MAX_REGULAR_SECTOR {
        if let Some(data) = sector(at) {
            mini_fat.extend(
                data.chunks_exact(4)
                    .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]])),
            );
        }
        at = fat.get(at as usize).copied().unwrap_or(u32::MAX);
    }
    let mini_sectors = bytes.len() / 64;
    // The directory: each stream's first sector and size, which calamine also trusts.
    let mini_cutoff = u64::from(header(0x38));
    let mut dir = header(0x30);
    let mut first_dir_sector = true;
    while dir < MAX_REGULAR_SECTOR {
        let Some(data) = sector(dir).filter(|_| in_file(dir)) else {
            return bad("the directory lies outside the file");
        };
        for (index, entry) in data.chunks_exact(128).enumerate() {
            // calamine takes the first entry as the root whatever its type says.
            let root = first_dir_sector && index == 0;
            if entry[0x42] == 0 && !root {
                continue;
            }
            let start = u32::from_le_bytes([entry[0x74], entry[0x75], entry[0x76], entry[0x77]]);
            let mut size_bytes = [0u8; 8];
            size_bytes.copy_from_slice(&entry[0x78..0x80]);
            let mut size = u64::from_le_bytes(size_bytes);
            if sector_size == 512 {
                // Version 3 files keep only the low 32 bits.
                size &= u64::from(u32::MAX);
            }
            // The root entry's stream (the mini stream) and big streams live in regular
            // sectors; small ones in 64-byte mini sectors of the mini stream.
            let regular = root || entry[0x42] == 5 || size >= mini_cutoff;
            // An empty stream has no chain; the root's is read only with a mini FAT.
            let followed = size > 0 || (root && mini_fat_len > 0);
            let start_ok = !followed
                || if regular {
                    chain_ok(start, &fat, sectors)
                } else {
                    chain_ok(start, &mini_fat, mini_sectors)
                };
            if size > bytes.len() as u64 || !start_ok {
                return bad("a stream lies outside the file");
            }
        }
        dir = fat.get(dir as usize).copied().unwrap_or(u32::MAX);
        first_dir_sector = false;
    }
    Ok(())
}

/// Whether the chain from `start` ends in ENDOFCHAIN, every id on it an index of `next`
/// below `limit`: calamine follows any other marker as if it were a sector.
fn chain_ok(start: u32, next: &[u32], limit: usize) -> bool {
    const END_OF_CHAIN: u32 = 0xFFFF_FFFE;
    let mut at = start;
    for _ in 0..=next.len() {
        if at == END_OF_CHAIN {
            return true;
        }
        let i = at as usize;
        if i >= limit || i >= next.len() {
            return false;
        }
        at = next[i];
    }
    false
}

/// Whether following `next` from every sector reaches a marker (no cycle).
fn chains_end(next: &[u32]) -> bool {
    // 0: not seen, 1: on the path being followed, 2: known to end.
    let mut state = vec![0u8; next.len()];
    for start in 0..next.len() {
        let mut path = Vec::new();
        let mut at = start;
        loop {
            match state[at] {
                2 => break,
                1 => return false,
                _ => {}
            }
            state[at] = 1;
            path.push(at);
            match next[at] {
                n if n >= MAX_REGULAR_SECTOR => break,
                n => at = n as usize,
            }
        }
        for p in path {
            state[p] = 2;
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chains_that_loop_are_found() {
        assert!(chains_end(&[1, 2, 0xFFFF_FFFE]));
        assert!(!chains_end(&[1, 2, 0]));
        assert!(!chains_end(&[0]));
    }

    #[test]
    fn a_sector_id_past_the_end_is_refused_before_calamine_sees_it() {
        // The fuzzer's input (after its selector byte) that made calamine ask for
        // terabytes and abort.
        let crafted =
            include_bytes!("../../../fuzz/regressions/extract_any/xls-cfb-huge-sector-id");
        assert!(check(&crafted[1..], "xls").is_err());
        let crafted =
            include_bytes!("../../../fuzz/regressions/extract_any/xls-cfb-stream-past-end");
        assert!(check(&crafted[1..], "xls").is_err());
    }

    #[test]
    fn what_is_not_a_compound_file_is_refused() {
        assert!(check(b"not an ole file", "xls").is_err());
        let mut header = vec![0u8; 512];
        header[..8].copy_from_slice(&SIGNATURE);
        header[0x1E] = 7;
        assert!(check(&header, "xls").is_err());
    }
}
