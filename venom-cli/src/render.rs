//! Turning inspection results into table cells and JSON records.

use std::time::Duration;

use serde::Serialize;
use venom_core::Liveness;
use venom_core::inspect::{SegmentInfo, Status, kind_name};

/// One line of `venom ls` (and the header part of `venom stat`) as JSON.
#[derive(Debug, Serialize)]
pub struct SegmentRecord {
    /// Venom name.
    pub name: String,
    /// Path in /dev/shm.
    pub path: String,
    /// Kind name, `"unknown(N)"`, or null for non-venom files.
    pub kind: Option<String>,
    /// File size in bytes.
    pub size: u64,
    /// `ready`, `initialising`, `uninitialised`, `corrupt`, `stray`, `unreadable`.
    pub status: &'static str,
    /// Why it is stray or corrupt.
    pub reason: Option<String>,
    /// The STATE column: `live`, `dead`, `init`, `uninit`, `stray`, `corrupt`, `denied`.
    pub state: &'static str,
    /// Whether a live process holds it.
    pub live: bool,
    /// Whether `venom rm --stale` would remove it.
    pub stale: bool,
    /// Creator pid from the header.
    pub creator_pid: Option<u32>,
    /// Whether the creator is alive.
    pub creator_alive: Option<bool>,
    /// Owner recorded after a take-over.
    pub owner_pid: Option<u32>,
    /// Whether that owner is alive.
    pub owner_alive: Option<bool>,
    /// Reclaim generation.
    pub generation: Option<u64>,
    /// Permission bits, octal string (`"0600"`).
    pub mode: String,
    /// Owning uid.
    pub uid: u32,
    /// Seconds since creation.
    pub age_secs: Option<f64>,
}

impl SegmentRecord {
    /// The record of `info`.
    pub fn of(info: &SegmentInfo) -> SegmentRecord {
        SegmentRecord {
            name: info.name.clone(),
            path: info.path.display().to_string(),
            kind: info.kind().map(|k| kind_name(k).map_or_else(|| format!("unknown({})", k.0), str::to_owned)),
            size: info.file_len,
            status: info.status.as_str(),
            reason: info.status.reason().map(str::to_owned),
            state: state_word(info),
            live: info.is_live(),
            stale: info.is_stale(),
            creator_pid: info.creator().map(|c| c.pid),
            creator_alive: info.creator_liveness.map(|l| l == Liveness::Alive),
            owner_pid: info.owner.map(|o| o.pid),
            owner_alive: info.owner_liveness.map(|l| l == Liveness::Alive),
            generation: info.generation(),
            mode: format!("{:04o}", info.mode),
            uid: info.uid,
            age_secs: info.age().map(|a| a.as_secs_f64()),
        }
    }
}

/// The STATE column: what an operator acts on.
pub fn state_word(info: &SegmentInfo) -> &'static str {
    match info.status {
        Status::Stray(_) => "stray",
        Status::Unreadable(_) => "denied",
        Status::Corrupt(_) => "corrupt",
        Status::Uninitialised => "uninit",
        Status::Initialising if info.is_live() => "init",
        Status::Ready | Status::Initialising if info.is_live() => "live",
        Status::Ready | Status::Initialising => "dead",
    }
}

/// `4.0K`, `1.5M`: sizes as `ls -h` prints them.
pub fn human_size(bytes: u64) -> String {
    const UNITS: [&str; 6] = ["", "K", "M", "G", "T", "P"];
    let mut v = bytes as f64;
    let mut unit = 0;
    while v >= 1024.0 && unit + 1 < UNITS.len() {
        v /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes}")
    } else if v < 10.0 {
        format!("{v:.1}{}", UNITS[unit])
    } else {
        format!("{v:.0}{}", UNITS[unit])
    }
}

/// `42s`, `7m`, `3h`, `12d`.
pub fn human_age(age: Option<Duration>) -> String {
    let Some(age) = age else { return "-".into() };
    let s = age.as_secs();
    match s {
        0..60 => format!("{s}s"),
        60..3600 => format!("{}m", s / 60),
        3600..86400 => format!("{}h", s / 3600),
        _ => format!("{}d", s / 86400),
    }
}

/// Prints rows as left-aligned columns separated by two spaces (the last
/// column is not padded).
pub fn print_table(rows: &[Vec<String>]) {
    let cols = rows.iter().map(Vec::len).max().unwrap_or(0);
    let widths: Vec<usize> =
        (0..cols).map(|c| rows.iter().filter_map(|r| r.get(c)).map(|s| s.chars().count()).max().unwrap_or(0)).collect();
    for row in rows {
        let mut line = String::new();
        for (c, cell) in row.iter().enumerate() {
            if c + 1 == row.len() {
                line.push_str(cell);
            } else {
                line.push_str(&format!("{cell:<w$}  ", w = widths[c]));
            }
        }
        println!("{}", line.trim_end());
    }
}

/// Bytes as text: printable ASCII kept, everything else `\xNN`.
pub fn escape_bytes(bytes: &[u8]) -> String {
    bytes.iter().flat_map(|&b| std::ascii::escape_default(b)).map(char::from).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_and_ages() {
        assert_eq!(human_size(100), "100");
        assert_eq!(human_size(4096), "4.0K");
        assert_eq!(human_size(65 << 20), "65M");
        assert_eq!(human_age(Some(Duration::from_secs(90))), "1m");
        assert_eq!(human_age(None), "-");
        assert_eq!(escape_bytes(b"a\x01"), "a\\x01");
    }
}
