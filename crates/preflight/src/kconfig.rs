//! Kernel configurations (`.config`, `/proc/config.gz`, distributions' `config-*` files,
//! Debian's `config.*.xz`): the value of every option, and the architecture it is for.

use std::collections::BTreeMap;
use std::fmt;
use std::io::Read;

use serde::{Deserialize, Serialize};

use crate::Error;

/// The architectures the rules distinguish.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Arch {
    /// 64-bit RISC-V (`CONFIG_RISCV` with `CONFIG_64BIT`).
    Riscv64,
    /// 64-bit x86 (`CONFIG_X86_64`).
    #[serde(rename = "x86_64")]
    X86_64,
    /// 64-bit Arm (`CONFIG_ARM64`).
    Arm64,
}

impl Arch {
    /// Every architecture, in the order the help text lists them.
    pub const ALL: [Arch; 3] = [Arch::X86_64, Arch::Arm64, Arch::Riscv64];

    /// The name used on the command line and in the spec (`riscv64`, `x86_64`, `arm64`).
    pub fn as_str(self) -> &'static str {
        match self {
            Arch::Riscv64 => "riscv64",
            Arch::X86_64 => "x86_64",
            Arch::Arm64 => "arm64",
        }
    }

    /// Parses a name: the spec's own, or what `uname -m` prints (`aarch64`, `amd64`).
    pub fn parse(s: &str) -> Option<Arch> {
        match s {
            "riscv64" => Some(Arch::Riscv64),
            "x86_64" | "amd64" | "x86-64" => Some(Arch::X86_64),
            "arm64" | "aarch64" => Some(Arch::Arm64),
            _ => None,
        }
    }
}

impl fmt::Display for Arch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An option's setting.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Setting {
    /// `=y`: built in.
    Yes,
    /// `=m`: a module.
    Module,
    /// `# CONFIG_X is not set` or `=n`.
    No,
    /// A string (quotes removed), number or hex value.
    Value(String),
}

impl Setting {
    /// Built in or a module.
    pub fn enabled(&self) -> bool {
        matches!(self, Setting::Yes | Setting::Module)
    }

    /// How a message says it: `y`, `m`, `not set`, or the value.
    pub fn describe(&self) -> String {
        match self {
            Setting::Yes => "y".into(),
            Setting::Module => "m".into(),
            Setting::No => "not set".into(),
            Setting::Value(v) => v.clone(),
        }
    }
}

/// A parsed kernel configuration.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct KernelConfig {
    /// Every option named in the file, without the `CONFIG_` prefix.
    pub options: BTreeMap<String, Setting>,
}

impl KernelConfig {
    /// The setting of `name` (with or without `CONFIG_`); absent options are `None`.
    pub fn get(&self, name: &str) -> Option<&Setting> {
        self.options
            .get(name.strip_prefix("CONFIG_").unwrap_or(name))
    }

    /// Whether `name` is built in or a module.
    pub fn enabled(&self, name: &str) -> bool {
        self.get(name).is_some_and(Setting::enabled)
    }

    /// `y`, `m`, or `not set` (also for absent options).
    pub fn describe(&self, name: &str) -> String {
        self.get(name)
            .map_or_else(|| "not set".into(), Setting::describe)
    }

    /// The architecture, from the options themselves.
    pub fn arch(&self) -> Option<Arch> {
        if self.enabled("X86_64") {
            Some(Arch::X86_64)
        } else if self.enabled("ARM64") {
            Some(Arch::Arm64)
        } else if self.enabled("RISCV") && !self.enabled("32BIT") {
            Some(Arch::Riscv64)
        } else {
            None
        }
    }

    /// Parses the text of a config; `source` names it in errors (`FILE:LINE: ...`).
    pub fn parse_text(text: &str, source: &str) -> Result<KernelConfig, Error> {
        let mut options = BTreeMap::new();
        for (n, raw) in text.lines().enumerate() {
            let line = raw.trim();
            if line.is_empty() {
                continue;
            }
            if let Some(comment) = line.strip_prefix('#') {
                if let Some(name) = comment
                    .trim()
                    .strip_prefix("CONFIG_")
                    .and_then(|r| r.strip_suffix(" is not set"))
                {
                    check_name(name, source, n + 1)?;
                    options.insert(name.to_string(), Setting::No);
                }
                continue;
            }
            let bad = |why: &str| Error::Parse {
                source_name: source.to_string(),
                line: n + 1,
                message: format!("{why}: {}", shorten(line)),
            };
            let (key, value) = line
                .split_once('=')
                .ok_or_else(|| bad("expected CONFIG_NAME=VALUE or a comment"))?;
            let name = key
                .strip_prefix("CONFIG_")
                .ok_or_else(|| bad("an option name must start with CONFIG_"))?;
            check_name(name, source, n + 1)?;
            let setting = match value {
                "y" => Setting::Yes,
                "m" => Setting::Module,
                "n" => Setting::No,
                v if v.starts_with('"') => {
                    let inner = v
                        .strip_prefix('"')
                        .and_then(|v| v.strip_suffix('"'))
                        .filter(|_| v.len() >= 2)
                        .ok_or_else(|| bad("a string value must end with a quote"))?;
                    Setting::Value(inner.replace("\\\"", "\"").replace("\\\\", "\\"))
                }
                v if is_number(v) => Setting::Value(v.to_string()),
                _ => return Err(bad("a value is y, m, n, a quoted string or a number")),
            };
            options.insert(name.to_string(), setting);
        }
        Ok(KernelConfig { options })
    }

    /// Parses `bytes`: plain text, or gzip (`/proc/config.gz`) or xz (Debian's
    /// `config.*.xz`) compressed, told apart by their magic bytes.
    pub fn parse_bytes(bytes: &[u8], source: &str) -> Result<KernelConfig, Error> {
        let text = decompress(bytes, source)?;
        let text = String::from_utf8(text).map_err(|e| Error::Parse {
            source_name: source.to_string(),
            line: 0,
            message: format!(
                "not a kernel config: not text (invalid byte at offset {})",
                e.utf8_error().valid_up_to()
            ),
        })?;
        KernelConfig::parse_text(&text, source)
    }
}

/// The largest decompressed config accepted (real ones are well under 1 MiB).
const MAX_DECOMPRESSED: u64 = 16 * 1024 * 1024;

/// `bytes` decompressed when they start with the gzip or xz magic; as they are otherwise.
pub fn decompress(bytes: &[u8], source: &str) -> Result<Vec<u8>, Error> {
    let failed = |kind: &str, e: &dyn fmt::Display| Error::Parse {
        source_name: source.to_string(),
        line: 0,
        message: format!("cannot decompress {kind}: {e}"),
    };
    if bytes.starts_with(&[0x1f, 0x8b]) {
        let mut out = Vec::new();
        flate2::read::MultiGzDecoder::new(bytes)
            .take(MAX_DECOMPRESSED + 1)
            .read_to_end(&mut out)
            .map_err(|e| failed("gzip", &e))?;
        too_large(&out, source)?;
        Ok(out)
    } else if bytes.starts_with(&[0xfd, b'7', b'z', b'X', b'Z', 0x00]) {
        let mut out = Vec::new();
        lzma_rust2::XzReader::new(bytes, true)
            .take(MAX_DECOMPRESSED + 1)
            .read_to_end(&mut out)
            .map_err(|e| failed("xz", &e))?;
        too_large(&out, source)?;
        Ok(out)
    } else {
        Ok(bytes.to_vec())
    }
}

fn too_large(out: &[u8], source: &str) -> Result<(), Error> {
    if out.len() as u64 > MAX_DECOMPRESSED {
        return Err(Error::Parse {
            source_name: source.to_string(),
            line: 0,
            message: format!(
                "decompresses to more than {} MiB: not a kernel config",
                MAX_DECOMPRESSED >> 20
            ),
        });
    }
    Ok(())
}

fn check_name(name: &str, source: &str, line: usize) -> Result<(), Error> {
    if !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
        return Ok(());
    }
    Err(Error::Parse {
        source_name: source.to_string(),
        line,
        message: format!("bad option name CONFIG_{}", shorten(name)),
    })
}

fn is_number(v: &str) -> bool {
    let digits = v.strip_prefix('-').unwrap_or(v);
    if let Some(hex) = digits
        .strip_prefix("0x")
        .or_else(|| digits.strip_prefix("0X"))
    {
        return !hex.is_empty() && hex.chars().all(|c| c.is_ascii_hexdigit());
    }
    !digits.is_empty() && digits.chars().all(|c| c.is_ascii_digit())
}

fn shorten(s: &str) -> String {
    if s.chars().count() > 80 {
        format!("{}...", s.chars().take(80).collect::<String>())
    } else {
        s.to_string()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::io::Write;

    use super::*;

    const SAMPLE: &str = "#\n# Automatically generated file; DO NOT EDIT.\n# Linux/riscv 6.12.38 Kernel Configuration\n#\nCONFIG_RISCV=y\nCONFIG_64BIT=y\nCONFIG_VFIO=m\n# CONFIG_IOMMUFD is not set\nCONFIG_LOCALVERSION=\"-lw \\\"x\\\"\"\nCONFIG_NR_CPUS=512\nCONFIG_PHYS_OFFSET=0x80000000\nCONFIG_EXAMPLE_OFF=n\nCONFIG_SCSI_DC395x=m\n\n";

    #[test]
    fn every_line_form_is_read() {
        let c = KernelConfig::parse_text(SAMPLE, "sample").unwrap();
        assert_eq!(c.get("CONFIG_VFIO"), Some(&Setting::Module));
        assert_eq!(c.get("IOMMUFD"), Some(&Setting::No));
        assert_eq!(c.get("EXAMPLE_OFF"), Some(&Setting::No));
        // Real option names may have lower-case letters (drivers/scsi/Kconfig).
        assert_eq!(c.get("SCSI_DC395x"), Some(&Setting::Module));
        assert_eq!(c.describe("LOCALVERSION"), "-lw \"x\"");
        assert_eq!(c.describe("NR_CPUS"), "512");
        assert_eq!(c.describe("PHYS_OFFSET"), "0x80000000");
        assert_eq!(c.describe("ABSENT"), "not set");
        assert!(c.enabled("VFIO") && !c.enabled("IOMMUFD") && !c.enabled("ABSENT"));
        assert_eq!(c.arch(), Some(Arch::Riscv64));
    }

    #[test]
    fn a_bad_line_is_an_error_naming_the_file_and_line() {
        for (text, line, says) in [
            (
                "CONFIG_A=y\nnot a config line\n",
                2,
                "expected CONFIG_NAME=VALUE",
            ),
            ("CONFIG_A=y\nCONFIG_B=maybe\n", 2, "a value is y, m, n"),
            ("FOO=y\n", 1, "must start with CONFIG_"),
            ("CONFIG_A=\"open\n", 1, "end with a quote"),
            ("CONFIG_a b=y\n", 1, "bad option name"),
            ("CONFIG_A-B=y\n", 1, "bad option name"),
        ] {
            let err = KernelConfig::parse_text(text, "cfg")
                .unwrap_err()
                .to_string();
            assert!(err.contains(&format!("cfg:{line}")), "{err}");
            assert!(err.contains(says), "{err}");
        }
    }

    #[test]
    fn gzip_and_xz_are_read_by_their_magic() {
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        gz.write_all(SAMPLE.as_bytes()).unwrap();
        let gz = gz.finish().unwrap();
        let from_gz = KernelConfig::parse_bytes(&gz, "config.gz").unwrap();
        let mut w =
            lzma_rust2::XzWriter::new(Vec::new(), lzma_rust2::XzOptions::default()).unwrap();
        w.write_all(SAMPLE.as_bytes()).unwrap();
        let xz = w.finish().unwrap();
        let from_xz = KernelConfig::parse_bytes(&xz, "config.xz").unwrap();
        let plain = KernelConfig::parse_text(SAMPLE, "config").unwrap();
        assert_eq!(from_gz, plain);
        assert_eq!(from_xz, plain);
        let err = KernelConfig::parse_bytes(&gz[..gz.len() / 2], "cut.gz")
            .unwrap_err()
            .to_string();
        assert!(err.contains("cut.gz") && err.contains("gzip"), "{err}");
        let err = KernelConfig::parse_bytes(&[0, 159, 146, 150], "bin")
            .unwrap_err()
            .to_string();
        assert!(err.contains("not text"), "{err}");
    }
}
