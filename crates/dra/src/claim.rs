//! An example ResourceClaim: GPUs that share one fabric attribute.

use crate::api::{
    DeviceClaim, DeviceConstraint, DeviceRequest, ExactDeviceRequest, ObjectMeta, ResourceClaim,
    ResourceClaimSpec,
};
use crate::names::dns_label;
use crate::{API_VERSION, Driver, Error};

/// The attribute every GPU of a claim must share.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeepTogether {
    /// One NVLink island (`DRIVER/nvlinkIsland`).
    Island,
    /// One NVLink domain (`DRIVER/nvlinkDomain`).
    Domain,
    /// One PCIe root (`resource.kubernetes.io/pcieRoot`).
    PcieRoot,
}

impl KeepTogether {
    /// The attribute name the claim's constraint matches on.
    pub fn attribute(self, driver: &Driver) -> String {
        match self {
            Self::Island => format!("{driver}/nvlinkIsland"),
            Self::Domain => format!("{driver}/nvlinkDomain"),
            Self::PcieRoot => "resource.kubernetes.io/pcieRoot".to_string(),
        }
    }
}

/// A ResourceClaim `name` for `count` GPUs of `driver`'s DeviceClass that share the
/// attribute `together` names.
///
/// [`Error::ZeroCount`] when `count` is 0, [`Error::ClaimName`] when `name` is not a
/// Kubernetes object name (a DNS subdomain).
pub fn claim(
    driver: &Driver,
    name: &str,
    count: u32,
    together: KeepTogether,
) -> Result<ResourceClaim, Error> {
    if count == 0 {
        return Err(Error::ZeroCount);
    }
    if !linkwise_core::labels::is_dns_subdomain(name) {
        return Err(Error::ClaimName {
            name: name.to_string(),
            suggestion: dns_label(name),
        });
    }
    Ok(ResourceClaim {
        api_version: API_VERSION,
        kind: "ResourceClaim",
        metadata: ObjectMeta {
            name: name.to_string(),
        },
        spec: ResourceClaimSpec {
            devices: DeviceClaim {
                requests: vec![DeviceRequest {
                    name: "gpus".to_string(),
                    exactly: ExactDeviceRequest {
                        device_class_name: driver.to_string(),
                        allocation_mode: "ExactCount",
                        count,
                    },
                }],
                constraints: vec![DeviceConstraint {
                    requests: vec!["gpus".to_string()],
                    match_attribute: together.attribute(driver),
                }],
            },
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn driver() -> Driver {
        Driver::new("gpu.linkwise.dev").unwrap()
    }

    #[test]
    fn the_constraint_matches_the_attribute_the_slices_publish() {
        let c = claim(&driver(), "gpus-one-island", 4, KeepTogether::Island).unwrap();
        let m = &c.spec.devices.constraints[0].match_attribute;
        assert_eq!(m, "gpu.linkwise.dev/nvlinkIsland");
        assert_eq!(c.spec.devices.requests[0].exactly.count, 4);
        assert_eq!(
            KeepTogether::PcieRoot.attribute(&driver()),
            "resource.kubernetes.io/pcieRoot"
        );
    }

    #[test]
    fn bad_counts_and_names_are_errors() {
        assert!(matches!(
            claim(&driver(), "a", 0, KeepTogether::Domain),
            Err(Error::ZeroCount)
        ));
        match claim(&driver(), "Bad Name;", 1, KeepTogether::Domain) {
            Err(Error::ClaimName { suggestion, .. }) => assert_eq!(suggestion, "bad-name"),
            other => panic!("{other:?}"),
        }
    }
}
