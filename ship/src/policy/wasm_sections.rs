//! Reading and replacing custom sections of a wasm module's binary.
//!
//! A module is the 8-byte preamble followed by sections, each `id: u8`,
//! `size: LEB128 u32` and `size` bytes; a custom section (id 0) starts its content
//! with its name (`LEB128 length` + UTF-8 bytes).

use anyhow::{Context, Result, bail};

const PREAMBLE: &[u8] = b"\0asm\x01\0\0\0";
const CUSTOM_SECTION: u8 = 0;

/// One section: its id and the byte range of its content in the module.
struct Section {
    id: u8,
    start: usize,
    content: std::ops::Range<usize>,
}

fn sections(module: &[u8]) -> Result<Vec<Section>> {
    if !module.starts_with(PREAMBLE) {
        bail!("not a wasm module (version 1): the file does not start with \\0asm 01 00 00 00");
    }
    let mut found = Vec::new();
    let mut at = PREAMBLE.len();
    while at < module.len() {
        let start = at;
        let id = module[at];
        let (size, used) =
            read_leb128(&module[at + 1..]).with_context(|| format!("section at byte {start}"))?;
        let begin = at + 1 + used;
        let end = begin
            .checked_add(size as usize)
            .filter(|end| *end <= module.len())
            .with_context(|| format!("section at byte {start} runs past the end of the module"))?;
        found.push(Section {
            id,
            start,
            content: begin..end,
        });
        at = end;
    }
    Ok(found)
}

fn custom_name<'a>(module: &'a [u8], section: &Section) -> Result<&'a str> {
    let content = &module[section.content.clone()];
    let (length, used) = read_leb128(content).context("custom section name")?;
    let name = content
        .get(used..used + length as usize)
        .context("custom section name runs past its section")?;
    std::str::from_utf8(name).context("custom section name is not UTF-8")
}

/// The payload of the custom section `name`, if the module has one.
pub fn read_custom(module: &[u8], name: &str) -> Result<Option<Vec<u8>>> {
    for section in sections(module)? {
        if section.id == CUSTOM_SECTION && custom_name(module, &section)? == name {
            let content = &module[section.content.clone()];
            let (length, used) = read_leb128(content)?;
            return Ok(Some(content[used + length as usize..].to_vec()));
        }
    }
    Ok(None)
}

/// The module with every custom section `name` removed and one holding `payload`
/// appended.
pub fn replace_custom(module: &[u8], name: &str, payload: &[u8]) -> Result<Vec<u8>> {
    let mut out = Vec::with_capacity(module.len() + payload.len() + name.len() + 16);
    out.extend_from_slice(PREAMBLE);
    for section in sections(module)? {
        if section.id == CUSTOM_SECTION && custom_name(module, &section)? == name {
            continue;
        }
        out.extend_from_slice(&module[section.start..section.content.end]);
    }
    let mut content = Vec::new();
    write_leb128(&mut content, name.len());
    content.extend_from_slice(name.as_bytes());
    content.extend_from_slice(payload);
    out.push(CUSTOM_SECTION);
    write_leb128(&mut out, content.len());
    out.extend_from_slice(&content);
    Ok(out)
}

fn read_leb128(bytes: &[u8]) -> Result<(u32, usize)> {
    let mut value: u32 = 0;
    for (i, byte) in bytes.iter().enumerate().take(5) {
        value |= u32::from(byte & 0x7f) << (7 * i);
        if byte & 0x80 == 0 {
            return Ok((value, i + 1));
        }
    }
    bail!("malformed LEB128 size")
}

fn write_leb128(out: &mut Vec<u8>, mut value: usize) {
    loop {
        let byte = (value & 0x7f) as u8;
        value >>= 7;
        if value == 0 {
            out.push(byte);
            return;
        }
        out.push(byte | 0x80);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The smallest module: preamble plus an empty type section.
    fn module() -> Vec<u8> {
        let mut m = PREAMBLE.to_vec();
        m.extend_from_slice(&[1, 1, 0]);
        m
    }

    #[test]
    fn a_section_written_reads_back() {
        let annotated = replace_custom(&module(), "x.y", b"{\"a\":1}").unwrap();
        assert_eq!(
            read_custom(&annotated, "x.y").unwrap().as_deref(),
            Some(&b"{\"a\":1}"[..])
        );
        assert_eq!(read_custom(&annotated, "other").unwrap(), None);
        assert!(annotated.starts_with(&module()));
    }

    #[test]
    fn writing_again_replaces_instead_of_adding() {
        let once = replace_custom(&module(), "x", b"1").unwrap();
        let twice = replace_custom(&once, "x", &vec![b'2'; 300]).unwrap();
        assert_eq!(read_custom(&twice, "x").unwrap(), Some(vec![b'2'; 300]));
        assert_eq!(sections(&twice).unwrap().len(), 2);
    }

    #[test]
    fn long_payloads_get_multi_byte_sizes() {
        let payload = vec![7u8; 70_000];
        let annotated = replace_custom(&module(), "big", &payload).unwrap();
        assert_eq!(read_custom(&annotated, "big").unwrap(), Some(payload));
    }

    #[test]
    fn broken_modules_are_refused() {
        assert!(
            read_custom(b"hello", "x")
                .unwrap_err()
                .to_string()
                .contains("not a wasm module")
        );
        let mut truncated = module();
        truncated.extend_from_slice(&[0, 50, 1, b'x']);
        assert!(
            read_custom(&truncated, "x")
                .unwrap_err()
                .to_string()
                .contains("runs past the end")
        );
    }
}
