//! The one integration-test binary: every integration test is a module of it, and all of them
//! share `support` (fixtures, builders, real servers). One binary links once, so `cargo test`
//! builds in a fraction of the time and disk of one binary per file.
//!
//! Run one area with a filter: `cargo test --test it follow_files::`.

// A test/bench/example fails loudly: unwrap/expect/indexing are allowed here (Cargo.toml [lints]).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

mod support;

mod api_config;
mod api_detections;
mod api_events;
mod api_lists;
mod api_page_cache;
mod api_sample_data;
mod api_security;
mod api_server;
mod architecture;
mod capture_bench_gates;
mod capture_fixtures;
mod capture_flood;
mod capture_garbage;
mod capture_lab;
mod capture_live;
mod capture_parallel;
mod capture_peers;
mod capture_savefile;
mod cli_contract;
mod cli_errors;
mod cluster_faults;
mod cluster_fleet;
mod cluster_lab;
mod cluster_storage;
mod cluster_wire;
mod correlate_engine;
mod correlate_garbage;
mod correlate_incidents;
mod correlate_lab;
mod correlate_replay;
mod correlate_rules;
mod correlate_shared_address;
mod demo;
mod dnstap_files;
mod dnstap_lab;
mod dnstap_resolvers;
mod dnstap_socket;
mod e2e_bench_gates;
mod e2e_public_captures;
mod feeds;
mod flood_scan;
mod follow_crash_loop;
mod follow_files;
mod follow_positions;
mod follow_stdin;
mod hunt_cap;
mod hunt_cli;
mod hunt_migrate;
mod hunt_pages;
mod hunt_retro;
mod hunt_retro_sinks;
mod ingest_formats;
mod ingest_golden;
mod ingest_hostile;
mod ingest_lab;
mod input_line_caps;
mod matcher_cases;
mod matcher_changes;
mod matcher_cli;
mod matcher_exports;
mod matcher_precision;
mod matcher_reload;
mod matcher_walk;
mod model_json;
mod ops_deb;
mod ops_demo;
mod ops_dist;
mod ops_openapi;
mod ops_progress;
mod ops_sse;
mod ops_suricata;
mod output_faults;
mod output_file;
mod output_syslog;
mod output_webhook;
mod prefilter_edges;
mod scan_cli;
mod scan_fastpath;
mod scan_lab_real;
mod scan_logs;
mod scan_threads;
mod service_api;
mod service_lifecycle;
mod service_live;
mod store_durability;
mod store_migrate;
mod store_open;
mod store_queries;
mod stratum_rule;
mod ui_browser;
mod ui_http;
mod verdict_golden;
