//! Per-link NVLink throughput from NVML field values, free of NVML types so that it is
//! tested without the `nvml` feature or a GPU. The raw `nvmlDeviceGetFieldValues` call
//! that fills [`FieldSample`]s is `nvml::nvlink_throughput_kib`.
//!
//! From `nvml.h`: `NVML_FI_DEV_NVLINK_THROUGHPUT_DATA_TX` (138) and `_RX` (139) are the
//! data sent and received (payload; `_RAW_` adds protocol overhead), in KiB, as running
//! totals; the link number goes in the request's `scopeId` (`UINT_MAX` would sum all
//! links).
// Without the `nvml` feature only the tests use this module.
#![cfg_attr(not(feature = "nvml"), allow(dead_code))]

/// `NVML_FI_DEV_NVLINK_THROUGHPUT_DATA_TX`: KiB of data sent over the link in `scopeId`.
pub(crate) const FI_NVLINK_THROUGHPUT_DATA_TX: u32 = 138;
/// `NVML_FI_DEV_NVLINK_THROUGHPUT_DATA_RX`: KiB of data received over the link in `scopeId`.
pub(crate) const FI_NVLINK_THROUGHPUT_DATA_RX: u32 = 139;
/// `NVML_SUCCESS`.
pub(crate) const NVML_SUCCESS: u32 = 0;
/// `NVML_VALUE_TYPE_UNSIGNED_LONG_LONG`: the value is in the union's `ullVal`.
pub(crate) const NVML_VALUE_TYPE_UNSIGNED_LONG_LONG: u32 = 3;

/// One `nvmlFieldValue_t` as NVML returned it, reduced to what pairing needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct FieldSample {
    /// `fieldId`.
    pub field_id: u32,
    /// `scopeId`: the NVML link number.
    pub scope_id: u32,
    /// `nvmlReturn` for this entry.
    pub return_code: u32,
    /// `valueType`.
    pub value_type: u32,
    /// The union's `ullVal`; meaningful only when `value_type` is unsigned long long and
    /// `return_code` is success (0 otherwise).
    pub value: u64,
}

impl FieldSample {
    /// The value, when NVML answered this entry with an unsigned long long.
    fn kib(&self) -> Option<u64> {
        (self.return_code == NVML_SUCCESS && self.value_type == NVML_VALUE_TYPE_UNSIGNED_LONG_LONG)
            .then_some(self.value)
    }
}

/// The `(fieldId, scopeId)` pairs to request for `links`: TX then RX for each link, in
/// order (2 × `links.len()` entries).
pub(crate) fn requests(links: &[u32]) -> Vec<(u32, u32)> {
    links
        .iter()
        .flat_map(|&link| {
            [
                (FI_NVLINK_THROUGHPUT_DATA_TX, link),
                (FI_NVLINK_THROUGHPUT_DATA_RX, link),
            ]
        })
        .collect()
}

/// Per link of `links`, in order: (KiB sent, KiB received), each found in `samples` by
/// field id and scope id. An entry that is missing, whose return code is not success
/// (`NVML_ERROR_NOT_SUPPORTED` on GPUs or drivers without the counters) or whose value
/// type is not unsigned long long gives `None`.
pub(crate) fn per_link_kib(
    links: &[u32],
    samples: &[FieldSample],
) -> Vec<(Option<u64>, Option<u64>)> {
    let find = |field: u32, link: u32| {
        samples
            .iter()
            .find(|s| s.field_id == field && s.scope_id == link)
            .and_then(FieldSample::kib)
    };
    links
        .iter()
        .map(|&link| {
            (
                find(FI_NVLINK_THROUGHPUT_DATA_TX, link),
                find(FI_NVLINK_THROUGHPUT_DATA_RX, link),
            )
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOT_SUPPORTED: u32 = 3;
    const VALUE_TYPE_DOUBLE: u32 = 0;
    const VALUE_TYPE_UNSIGNED_INT: u32 = 1;

    fn ok(field_id: u32, scope_id: u32, value: u64) -> FieldSample {
        FieldSample {
            field_id,
            scope_id,
            return_code: NVML_SUCCESS,
            value_type: NVML_VALUE_TYPE_UNSIGNED_LONG_LONG,
            value,
        }
    }

    #[test]
    fn requests_tx_then_rx_per_link() {
        assert_eq!(
            requests(&[0, 5]),
            vec![(138, 0), (139, 0), (138, 5), (139, 5)]
        );
        assert!(requests(&[]).is_empty());
    }

    #[test]
    fn pairs_by_scope_id_not_position() {
        // Out of order, with an unrequested link in between.
        let samples = [
            ok(FI_NVLINK_THROUGHPUT_DATA_RX, 7, 70),
            ok(FI_NVLINK_THROUGHPUT_DATA_TX, 2, 20),
            ok(FI_NVLINK_THROUGHPUT_DATA_TX, 9, 999),
            ok(FI_NVLINK_THROUGHPUT_DATA_TX, 7, 71),
            ok(FI_NVLINK_THROUGHPUT_DATA_RX, 2, 21),
        ];
        assert_eq!(
            per_link_kib(&[2, 7], &samples),
            vec![(Some(20), Some(21)), (Some(71), Some(70))]
        );
    }

    #[test]
    fn values_stay_in_kib() {
        let samples = [
            ok(FI_NVLINK_THROUGHPUT_DATA_TX, 0, 1),
            ok(FI_NVLINK_THROUGHPUT_DATA_RX, 0, u64::MAX),
        ];
        assert_eq!(
            per_link_kib(&[0], &samples),
            vec![(Some(1), Some(u64::MAX))]
        );
    }

    #[test]
    fn unsupported_entries_are_none() {
        let mut rx = ok(FI_NVLINK_THROUGHPUT_DATA_RX, 1, 0);
        rx.return_code = NOT_SUPPORTED;
        let samples = [ok(FI_NVLINK_THROUGHPUT_DATA_TX, 1, 5), rx];
        assert_eq!(per_link_kib(&[1], &samples), vec![(Some(5), None)]);
    }

    #[test]
    fn other_value_types_are_none() {
        let mut tx = ok(FI_NVLINK_THROUGHPUT_DATA_TX, 3, 5);
        tx.value_type = VALUE_TYPE_DOUBLE;
        let mut rx = ok(FI_NVLINK_THROUGHPUT_DATA_RX, 3, 6);
        rx.value_type = VALUE_TYPE_UNSIGNED_INT;
        assert_eq!(per_link_kib(&[3], &[tx, rx]), vec![(None, None)]);
    }

    #[test]
    fn missing_entries_are_none() {
        let samples = [ok(FI_NVLINK_THROUGHPUT_DATA_TX, 0, 5)];
        assert_eq!(
            per_link_kib(&[0, 1], &samples),
            vec![(Some(5), None), (None, None)]
        );
        assert!(per_link_kib(&[], &samples).is_empty());
    }
}
