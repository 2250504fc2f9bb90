//! `venom dump`: bytes of a segment (header included) as hex or numbers.
//!
//! Bytes are read with `pread` through `venom_core::inspect::read_bytes`, so
//! dumping works on stray and corrupt files and never maps the segment.

use serde_json::{Value, json};
use venom_core::header::HEADER_LEN;
use venom_core::inspect;

use crate::cli::{DumpArgs, Format};
use crate::failure::{self, Failure};

/// Prints the requested range.
pub fn run(args: &DumpArgs, json: bool) -> Result<(), Failure> {
    let offset = if args.body { args.offset.checked_add(HEADER_LEN as u64) } else { Some(args.offset) }
        .ok_or_else(|| Failure::new(format!("offset {} is out of range", args.offset)))?;
    let bytes = inspect::read_bytes(&args.name, offset, args.len).map_err(|e| failure::core(&args.name, &e))?;
    let width = width(args.format);
    let whole = bytes.len() / width * width;
    if json {
        let values = match args.format {
            Format::Hex => Value::String(bytes.iter().map(|b| format!("{b:02x}")).collect()),
            f => Value::Array(bytes[..whole].chunks_exact(width).map(|c| value(f, c)).collect()),
        };
        return failure::print_json(&json!({
            "name": args.name, "offset": offset, "len": bytes.len(),
            "format": format!("{:?}", args.format).to_lowercase(), "values": values,
        }));
    }
    if args.format == Format::Hex {
        for (i, line) in bytes.chunks(16).enumerate() {
            println!("{}", hex_line(offset + (i * 16) as u64, line));
        }
        return Ok(());
    }
    let per_line = (16 / width).max(4);
    for (i, line) in bytes[..whole].chunks(per_line * width).enumerate() {
        let cells: Vec<String> = line.chunks_exact(width).map(|c| value(args.format, c).to_string()).collect();
        println!("{:08x}  {}", offset + (i * per_line * width) as u64, cells.join("  "));
    }
    if whole < bytes.len() {
        eprintln!("venom: {} trailing bytes do not fill a {}-byte value", bytes.len() - whole, width);
    }
    Ok(())
}

fn width(f: Format) -> usize {
    match f {
        Format::Hex | Format::U8 => 1,
        Format::U32 | Format::F32 => 4,
        Format::U64 | Format::I64 | Format::F64 => 8,
    }
}

/// One little-endian value of `f` from exactly `width(f)` bytes.
fn value(f: Format, c: &[u8]) -> Value {
    let b4 = || <[u8; 4]>::try_from(c).unwrap_or([0; 4]);
    let b8 = || <[u8; 8]>::try_from(c).unwrap_or([0; 8]);
    match f {
        Format::Hex | Format::U8 => json!(c.first().copied().unwrap_or(0)),
        Format::U32 => json!(u32::from_le_bytes(b4())),
        Format::U64 => json!(u64::from_le_bytes(b8())),
        Format::I64 => json!(i64::from_le_bytes(b8())),
        // Non-finite floats become strings ("NaN", "inf") so the JSON stays valid.
        Format::F32 => {
            let v = f32::from_le_bytes(b4());
            // Through its shortest decimal form, so 0.1f32 prints as 0.1.
            if v.is_finite() {
                json!(v.to_string().parse::<f64>().unwrap_or(0.0))
            } else {
                Value::String(v.to_string())
            }
        }
        Format::F64 => {
            let v = f64::from_le_bytes(b8());
            if v.is_finite() { json!(v) } else { Value::String(v.to_string()) }
        }
    }
}

/// `00000000  56 45 4e 4f 4d 53 45 47 01 00 00 00 ff ff 00 00  |VENOMSEG........|`
fn hex_line(offset: u64, bytes: &[u8]) -> String {
    let mut hex = String::new();
    for i in 0..16 {
        match bytes.get(i) {
            Some(b) => hex.push_str(&format!("{b:02x} ")),
            None => hex.push_str("   "),
        }
        if i == 7 {
            hex.push(' ');
        }
    }
    let ascii: String =
        bytes.iter().map(|&b| if b.is_ascii_graphic() || b == b' ' { b as char } else { '.' }).collect();
    format!("{offset:08x}  {hex} |{ascii}|")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_and_values() {
        assert_eq!(
            hex_line(0, b"VENOMSEG\x01"),
            "00000000  56 45 4e 4f 4d 53 45 47  01                       |VENOMSEG.|"
        );
        assert_eq!(value(Format::U32, &7u32.to_le_bytes()), json!(7));
        assert_eq!(value(Format::I64, &(-3i64).to_le_bytes()), json!(-3));
        assert_eq!(value(Format::F64, &f64::NAN.to_le_bytes()), json!("NaN"));
    }
}
