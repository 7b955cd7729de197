//! The platforms we build images for, in the words of the OCI index
//! (`linux/amd64`, `linux/arm64`) and of the binaries' ELF headers.

use std::fmt;

use anyhow::{Result, bail};
use oci_client::manifest::Platform as IndexPlatform;
use oci_spec::image::{Arch, Os};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Platform {
    LinuxAmd64,
    LinuxArm64,
}

impl Platform {
    pub const ALL: [Platform; 2] = [Platform::LinuxAmd64, Platform::LinuxArm64];

    pub fn parse(text: &str) -> Result<Self> {
        match Self::ALL.into_iter().find(|p| p.to_string() == text) {
            Some(platform) => Ok(platform),
            None => bail!("platform {text:?} is not one we build: linux/amd64 or linux/arm64"),
        }
    }

    pub fn architecture(self) -> Arch {
        match self {
            Platform::LinuxAmd64 => Arch::Amd64,
            Platform::LinuxArm64 => Arch::ARM64,
        }
    }

    /// The variant the OCI image index spec names for 64-bit ARM.
    pub fn variant(self) -> Option<&'static str> {
        match self {
            Platform::LinuxAmd64 => None,
            Platform::LinuxArm64 => Some("v8"),
        }
    }

    /// The machine an ELF binary must be built for to run here.
    pub fn elf_architecture(self) -> object::Architecture {
        match self {
            Platform::LinuxAmd64 => object::Architecture::X86_64,
            Platform::LinuxArm64 => object::Architecture::Aarch64,
        }
    }

    /// As an image index entry describes it.
    pub fn in_index(self) -> IndexPlatform {
        IndexPlatform {
            architecture: self.architecture(),
            os: Os::Linux,
            os_version: None,
            os_features: None,
            variant: self.variant().map(str::to_string),
            features: None,
        }
    }
}

impl fmt::Display for Platform {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Platform::LinuxAmd64 => "linux/amd64",
            Platform::LinuxArm64 => "linux/arm64",
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn platforms_parse_from_their_names() {
        for platform in Platform::ALL {
            assert_eq!(Platform::parse(&platform.to_string()).unwrap(), platform);
        }
        let error = Platform::parse("linux/riscv64").unwrap_err().to_string();
        assert!(error.contains("\"linux/riscv64\""), "{error}");
    }

    #[test]
    fn index_entries_name_os_architecture_and_variant() {
        let arm = serde_json::to_value(Platform::LinuxArm64.in_index()).unwrap();
        assert_eq!(
            arm,
            serde_json::json!({"architecture": "arm64", "os": "linux", "variant": "v8"})
        );
        let amd = serde_json::to_value(Platform::LinuxAmd64.in_index()).unwrap();
        assert_eq!(
            amd,
            serde_json::json!({"architecture": "amd64", "os": "linux"})
        );
    }
}
