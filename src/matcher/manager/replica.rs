//! The replication hook of user lists (a cluster distributes them; docs/cluster.md, "Lists").
//!
//! A change made through this node's API is validated and compiled here first, then handed to
//! the [`ListReplicator`] *before* it is persisted or kept: when the replicator refuses (the
//! cluster is unreachable) nothing changes and the caller gets [`MatcherError::Unavailable`].
//! Changes made elsewhere arrive through [`ListManager::apply_replicated`], which swaps them in
//! like a local edit but never hands them back to the replicator (no echo loops); an identical
//! list (this node's own change coming back) is left alone.

use std::sync::Arc;

use super::super::names::check_name;
use super::super::{ListFormat, MatcherError};
use super::lists::validate_user_text;
use super::{ListManager, UserList};
use crate::model::{Category, Timestamp};

/// A user list as it travels between nodes: everything needed to install it.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct UserListRecord {
    pub category: Category,
    #[serde(default)]
    pub format: Option<ListFormat>,
    pub text: String,
}

impl UserListRecord {
    pub(super) fn of(u: &UserList) -> Self {
        UserListRecord {
            category: u.category,
            format: u.format,
            text: u.text.to_string(),
        }
    }
}

/// Where validated user-list changes of this node go before they are kept.
pub trait ListReplicator: Send + Sync {
    /// Publishes the new content of user list `name` (`None`: deleted). Called on a blocking
    /// thread, with the change validated and compiled; an `Err` (a short reason) refuses it.
    fn publish(&self, name: &str, list: Option<&UserListRecord>) -> Result<(), String>;
}

impl ListManager {
    /// Registers the replicator of user-list changes (`None` removes it).
    pub fn set_replicator(&self, r: Option<Arc<dyn ListReplicator>>) {
        *self.replicator.lock().unwrap_or_else(|e| e.into_inner()) = r;
    }

    pub(super) fn replicator(&self) -> Option<Arc<dyn ListReplicator>> {
        self.replicator
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Installs user list `name` as another node published it (`None`: deletes it), validated
    /// again (a replica never trusts the wire). Returns `false` when the list was already
    /// exactly that (nothing rebuilt).
    pub fn apply_replicated(
        &self,
        name: &str,
        list: Option<UserListRecord>,
    ) -> Result<bool, MatcherError> {
        check_name(name)?;
        let mut inner = self.lock();
        let same = match (inner.user.get(name), &list) {
            (None, None) => true,
            (Some(u), Some(r)) => UserListRecord::of(u) == *r,
            _ => false,
        };
        if same {
            return Ok(false);
        }
        let new = match list {
            Some(r) => {
                self.check_user_name(&inner, name)?;
                validate_user_text(name, &r.text, r.format)?;
                Some(UserList {
                    category: r.category,
                    format: r.format,
                    text: Arc::from(r.text),
                    updated: Some(Timestamp::now()),
                })
            }
            None => None,
        };
        self.commit(&mut inner, name, new, false)?;
        Ok(true)
    }
}
