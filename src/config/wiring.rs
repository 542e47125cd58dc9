//! `Settings` → the stages' own configurations. The stages know nothing of `Settings`; these
//! constructors live here, above them.

use super::*;

impl crate::matcher::ListManagerConfig {
    /// The configuration of `poolwatch serve`. Configured feeds get the category their name
    /// suggests (`allow`/`browser`/`proxy`, else `pool`).
    pub fn from_settings(s: &Settings) -> Self {
        use crate::matcher::{FeedPolicy, FeedState};
        crate::matcher::ListManagerConfig {
            blocklists: s.blocklists.clone(),
            feeds: s
                .feeds
                .iter()
                .map(|f| {
                    FeedState::new_configured(&f.name, &f.url, f.interval.as_secs(), f.max_bytes)
                })
                .collect(),
            watch_interval: Some(crate::matcher::DEFAULT_WATCH_INTERVAL),
            feed_policy: FeedPolicy {
                allow_private: s.feed_allow_private,
                file_roots: s.feed_file_roots.clone(),
                allow_hosts: s.feed_allow_hosts.clone(),
            },
            ..crate::matcher::ListManagerConfig::new(s.user_lists.clone())
        }
    }
}

impl crate::api::ApiOptions {
    /// Tokens and limits from the validated service settings.
    pub fn from_settings(s: &Settings) -> Self {
        crate::api::ApiOptions {
            tokens: crate::api::Tokens {
                admin: s.admin_token.clone(),
                read: s.read_token.clone(),
            },
            max_body: s.max_body,
            request_timeout: s.request_timeout,
            max_connections: s.api.max_connections,
            header_read_timeout: s.api.header_read_timeout,
            max_connections_per_client: s.api.max_connections_per_client,
            probe_connections: s.api.probe_connections,
            write_timeout: s.api.write_timeout,
            idle_timeout: s.api.idle_timeout,
            max_requests_per_connection: s.api.max_requests_per_connection,
            max_uri_len: s.api.max_uri_len,
            max_header_bytes: s.api.max_header_bytes,
            ..crate::api::ApiOptions::default()
        }
    }
}
