//! The DeviceClass that selects a driver's devices.

use crate::api::{CelSelector, DeviceClass, DeviceClassSpec, DeviceSelector, ObjectMeta};
use crate::{API_VERSION, Driver};

/// The DeviceClass named after `driver` that selects every device of that driver.
pub fn class(driver: &Driver) -> DeviceClass {
    DeviceClass {
        api_version: API_VERSION,
        kind: "DeviceClass",
        metadata: ObjectMeta {
            name: driver.to_string(),
        },
        spec: DeviceClassSpec {
            selectors: vec![DeviceSelector {
                cel: CelSelector {
                    expression: format!("device.driver == \"{driver}\""),
                },
            }],
        },
    }
}
