//! The checks a binary passes before it becomes an image on an empty base: an ELF
//! executable for the image's platform, statically linked (no program interpreter: the
//! image has no dynamic loader and no libc).

use anyhow::{Context, Result, bail};
use object::elf::PT_INTERP;
use object::read::elf::{ElfFile64, FileHeader, ProgramHeader};
use object::{Endianness, Object};

use crate::image::platform::Platform;

/// `data` (the file `name`) runs on `platform` with nothing beside it.
pub fn check_static_binary(name: &str, data: &[u8], platform: Platform) -> Result<()> {
    let elf = ElfFile64::<Endianness>::parse(data)
        .with_context(|| format!("{name} is not a 64-bit ELF executable"))?;
    let found = elf.architecture();
    if found != platform.elf_architecture() {
        bail!("{name} is built for {found:?}, not for {platform}");
    }
    let endian = elf.endian();
    let headers = elf
        .elf_header()
        .program_headers(endian, data)
        .with_context(|| format!("{name}: unreadable program headers"))?;
    if headers.iter().any(|h| h.p_type(endian) == PT_INTERP) {
        bail!(
            "{name} is dynamically linked (it names a program interpreter): an image on an empty base needs a static binary (a *-linux-musl target)"
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_is_not_elf_is_refused_by_name() {
        let error = check_static_binary("tool", b"#!/bin/sh\n", Platform::LinuxAmd64)
            .unwrap_err()
            .to_string();
        assert_eq!(error, "tool is not a 64-bit ELF executable");
    }

    #[test]
    fn a_dynamic_binary_or_another_machine_is_refused() {
        // The test binary itself: dynamically linked, for the machine running the tests.
        let path = std::env::current_exe().unwrap();
        let data = std::fs::read(&path).unwrap();
        let host = if cfg!(target_arch = "x86_64") {
            Platform::LinuxAmd64
        } else {
            Platform::LinuxArm64
        };
        let other = if host == Platform::LinuxAmd64 {
            Platform::LinuxArm64
        } else {
            Platform::LinuxAmd64
        };
        let error = check_static_binary("t", &data, host)
            .unwrap_err()
            .to_string();
        assert!(error.contains("t is dynamically linked"), "{error}");
        let error = check_static_binary("t", &data, other)
            .unwrap_err()
            .to_string();
        assert!(error.contains(&format!("not for {other}")), "{error}");
    }
}
