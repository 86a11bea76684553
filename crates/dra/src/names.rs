//! Names and values in Kubernetes form: the driver name, DNS labels, quantities, versions.

use crate::Error;

/// A DRA driver name: a DNS subdomain with at least one dot (`gpu.linkwise.dev`). Device
/// attributes are published in its domain (`gpu.linkwise.dev/nvlinkIsland`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Driver(String);

impl Driver {
    /// The driver name `name`, or [`Error::Driver`] when it is not a DNS subdomain with a dot.
    pub fn new(name: &str) -> Result<Self, Error> {
        if linkwise_core::labels::is_label_key(&format!("{name}/x")) && name.contains('.') {
            Ok(Self(name.to_string()))
        } else {
            Err(Error::Driver {
                name: name.to_string(),
            })
        }
    }

    /// The name as given.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for Driver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// A DNS-1123 label from any text: lower case, every other character `-`, trimmed, at
/// most 63 characters.
pub fn dns_label(s: &str) -> String {
    let v: String = s
        .to_ascii_lowercase()
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect();
    v.trim_matches('-')
        .chars()
        .take(63)
        .collect::<String>()
        .trim_end_matches('-')
        .to_string()
}

/// A Kubernetes quantity for bytes: whole GiB as `NGi`, else whole MiB as `NMi`, else bytes.
pub fn quantity(bytes: u64) -> String {
    if bytes.is_multiple_of(1 << 30) {
        format!("{}Gi", bytes >> 30)
    } else if bytes.is_multiple_of(1 << 20) {
        format!("{}Mi", bytes >> 20)
    } else {
        bytes.to_string()
    }
}

/// A semantic version from a driver version (`550.54.15`; `535.86` gains `.0`), if it is one.
pub fn semver(v: &str) -> Option<String> {
    let parts: Vec<&str> = v.split('.').collect();
    let nums = |p: &[&str]| {
        p.iter().all(|x| {
            !x.is_empty()
                && x.chars().all(|c| c.is_ascii_digit())
                && (x.len() == 1 || !x.starts_with('0'))
        })
    };
    match parts.len() {
        3 if nums(&parts) => Some(v.to_string()),
        2 if nums(&parts) => Some(format!("{v}.0")),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantities_and_versions() {
        assert_eq!(quantity(80 << 30), "80Gi");
        assert_eq!(quantity(81_559 << 20), "81559Mi");
        assert_eq!(quantity(1000), "1000");
        assert_eq!(semver("550.54.15").as_deref(), Some("550.54.15"));
        assert_eq!(semver("535.86").as_deref(), Some("535.86.0"));
        assert_eq!(semver("550.054.15"), None);
        assert_eq!(semver("r550"), None);
        assert_eq!(dns_label("nvl72-tray01"), "nvl72-tray01");
        assert_eq!(dns_label("Host_A.example"), "host-a-example");
    }

    #[test]
    fn driver_names_are_dns_subdomains_with_a_dot() {
        assert_eq!(
            Driver::new("gpu.linkwise.dev").map(|d| d.to_string()).ok(),
            Some("gpu.linkwise.dev".to_string())
        );
        assert!(matches!(Driver::new("nodots"), Err(Error::Driver { .. })));
        assert!(matches!(Driver::new("Bad.Name"), Err(Error::Driver { .. })));
        assert!(matches!(Driver::new(""), Err(Error::Driver { .. })));
    }
}
