//! PCI addresses (`DDDD:BB:DD.F`).

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::Error;

/// A PCI function address: domain, bus, device, function.
///
/// Parses the sysfs form `0000:1b:00.0`, NVML's `00000000:1B:00.0` and the short
/// `1b:00.0`; always prints the sysfs form in lower case.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PciAddress {
    /// PCI segment (domain).
    pub domain: u32,
    /// Bus number.
    pub bus: u8,
    /// Device number (0..32).
    pub device: u8,
    /// Function number (0..8).
    pub function: u8,
}

impl fmt::Display for PciAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{:04x}:{:02x}:{:02x}.{:x}",
            self.domain, self.bus, self.device, self.function
        )
    }
}

impl FromStr for PciAddress {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self, Error> {
        let err = |reason: &str| Error::Parse {
            what: "PCI address",
            value: s.to_string(),
            reason: reason.to_string(),
        };
        let t = s.trim();
        let (rest, function) = t
            .rsplit_once('.')
            .ok_or_else(|| err("expected DDDD:BB:DD.F"))?;
        let parts: Vec<&str> = rest.split(':').collect();
        let (domain, bus, device) = match parts.as_slice() {
            [d, b, dev] => (*d, *b, *dev),
            [b, dev] => ("0", *b, *dev),
            _ => return Err(err("expected DDDD:BB:DD.F")),
        };
        let hex = |x: &str, max: u64, what: &str| -> Result<u64, Error> {
            if x.is_empty() || x.len() > 8 {
                return Err(err(&format!("bad {what} {x:?}")));
            }
            let v = u64::from_str_radix(x, 16).map_err(|_| err(&format!("bad {what} {x:?}")))?;
            if v > max {
                return Err(err(&format!("{what} {x} out of range")));
            }
            Ok(v)
        };
        Ok(PciAddress {
            domain: u32::try_from(hex(domain, u64::from(u32::MAX), "domain")?)
                .map_err(|_| err("domain out of range"))?,
            bus: u8::try_from(hex(bus, 0xff, "bus")?).map_err(|_| err("bus out of range"))?,
            device: u8::try_from(hex(device, 0x1f, "device")?)
                .map_err(|_| err("device out of range"))?,
            function: u8::try_from(hex(function, 7, "function")?)
                .map_err(|_| err("function out of range"))?,
        })
    }
}

impl Serialize for PciAddress {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for PciAddress {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_spelling() {
        let a: PciAddress = "00000000:1B:00.0".parse().unwrap();
        assert_eq!(a.to_string(), "0000:1b:00.0");
        let b: PciAddress = "0000:1b:00.0".parse().unwrap();
        assert_eq!(a, b);
        let c: PciAddress = "c1:00.1".parse().unwrap();
        assert_eq!(c.to_string(), "0000:c1:00.1");
    }

    #[test]
    fn rejects_garbage() {
        for bad in [
            "",
            "1b:00",
            "zz:00.0",
            "0000:1b:20.0",
            "0000:1b:00.8",
            "0:0:0:0.0",
        ] {
            assert!(bad.parse::<PciAddress>().is_err(), "{bad} should fail");
        }
    }
}
