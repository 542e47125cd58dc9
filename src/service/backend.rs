//! The store as the API's backend (`impl api::Backend for store::Store`): the one place where
//! the API's needs and the store's API meet.

use std::net::IpAddr;

use crate::api::{Backend, BackendError};
use crate::model::{Detection, Timestamp};
use crate::query::{
    DetectionFilter, HostTimeline, NewSuppression, Page, PoolIp, PoolSummary, Suppression,
};
use crate::store::{Store, StoreError};

fn backend_err(e: StoreError) -> BackendError {
    match e {
        // The client's input: 400.
        StoreError::BadCursor => BackendError::BadCursor("not a cursor this API issued".into()),
        StoreError::Invalid(m) => BackendError::BadCursor(m),
        other => BackendError::Other(other.to_string()),
    }
}

impl Backend for Store {
    fn list_detections(
        &self,
        f: &DetectionFilter,
        limit: usize,
        cursor: Option<&str>,
    ) -> Result<Page<Detection>, BackendError> {
        Store::list_detections(self, f, limit, cursor).map_err(backend_err)
    }
    fn list_detections_json(
        &self,
        f: &DetectionFilter,
        limit: usize,
        cursor: Option<&str>,
    ) -> Result<Page<Vec<u8>>, BackendError> {
        Store::list_detections_json(self, f, limit, cursor).map_err(backend_err)
    }
    fn detections_generation(&self) -> Option<u64> {
        Some(Store::detections_generation(self))
    }
    fn get_detection(&self, id: &str) -> Result<Option<Detection>, BackendError> {
        Store::get_detection(self, id).map_err(backend_err)
    }
    fn host_timeline(&self, ip: IpAddr, limit: usize) -> Result<HostTimeline, BackendError> {
        Store::host_timeline(self, ip, limit).map_err(backend_err)
    }
    fn pools(&self) -> Result<Vec<PoolSummary>, BackendError> {
        Store::pools(self).map_err(backend_err)
    }
    fn add_suppression(&self, s: NewSuppression) -> Result<Suppression, BackendError> {
        Store::add_suppression(self, s).map_err(backend_err)
    }
    fn list_suppressions(&self) -> Result<Vec<Suppression>, BackendError> {
        Store::list_suppressions(self).map_err(backend_err)
    }
    fn delete_suppression(&self, id: &str) -> Result<bool, BackendError> {
        Store::delete_suppression(self, id).map_err(backend_err)
    }
    fn pool_ips(&self, now: Timestamp) -> Result<Vec<PoolIp>, BackendError> {
        Store::pool_ips(self, now).map_err(backend_err)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn store_errors_map_to_api_classes() {
        assert!(matches!(
            backend_err(StoreError::BadCursor),
            BackendError::BadCursor(_)
        ));
        assert!(matches!(
            backend_err(StoreError::Invalid("x".into())),
            BackendError::BadCursor(_)
        ));
        assert!(matches!(
            backend_err(StoreError::Encode(
                serde_json::from_str::<u8>("x").unwrap_err()
            )),
            BackendError::Other(_)
        ));
    }

    #[test]
    fn backend_over_a_real_store_pages_with_cursors() {
        let s = Store::open_temporary().unwrap();
        let b: &dyn Backend = &s;
        let page = b
            .list_detections(&DetectionFilter::default(), 10, None)
            .unwrap();
        assert!(page.items.is_empty() && page.next_cursor.is_none());
        assert!(matches!(
            b.list_detections(&DetectionFilter::default(), 10, Some("zz")),
            Err(BackendError::BadCursor(_))
        ));
        assert!(b.get_detection("nope").unwrap().is_none());
    }
}
