//! A caller without credentials must not be able to make custos keep
//! unbounded data: a flood of token requests naming large made-up client
//! ids leaves the database and the process's memory bounded, and the audit
//! trail holds one event per source and window plus a counted summary.

mod common;

use common::{Database, Engine, Server};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

/// Requests in the flood; each names an 8,000-character client_id.
const REQUESTS: usize = 4_000;
const CONCURRENCY: usize = 16;

fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap()
}

fn database_bytes(db: &Database) -> u64 {
    ["custos.db", "custos.db-wal"]
        .iter()
        .filter_map(|name| std::fs::metadata(db.dir.join(name)).ok())
        .map(|m| m.len())
        .sum()
}

async fn flood(server: &Server, endpoint: &str, count: usize) {
    let sent = Arc::new(AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for worker in 0..CONCURRENCY {
        let http = server.http.clone();
        let endpoint = endpoint.to_owned();
        let sent = sent.clone();
        tasks.push(tokio::spawn(async move {
            loop {
                let n = sent.fetch_add(1, Ordering::SeqCst);
                if n >= count {
                    break;
                }
                // A different made-up id every time, as an attacker would.
                let id = format!("{worker}-{n}-{}", "x".repeat(8_000));
                let response = http
                    .post(&endpoint)
                    .form(&[
                        ("grant_type", "client_credentials"),
                        ("client_id", id.as_str()),
                        ("client_secret", "guess"),
                    ])
                    .send()
                    .await
                    .unwrap();
                assert_eq!(response.status(), 401);
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
}

#[tokio::test]
async fn a_flood_of_unknown_client_ids_leaves_disk_and_memory_bounded() {
    let db = Database::fresh(Engine::Sqlite).unwrap();
    let server = Server::start(&db).await;
    let endpoint = server.endpoint("token_endpoint").await;
    // Warm up: allocators, pools and caches reach their working size.
    flood(&server, &endpoint, 500).await;
    server.events("?type=token.refused").await;
    let (disk_before, rss_before) = (database_bytes(&db), rss_kib(server.pid()));

    flood(&server, &endpoint, REQUESTS).await;
    let refused = server.events("?type=token.refused&limit=10000").await;
    let (disk_after, rss_after) = (database_bytes(&db), rss_kib(server.pid()));

    eprintln!(
        "flood of {REQUESTS}: {} refusal events, database {disk_before} -> {disk_after} bytes, RSS {rss_before} -> {rss_after} KiB",
        refused.len()
    );
    // Unbounded, the flood would write 4,000 rows of 8 KiB (32 MB) and the
    // unknown-client cache would hold as much again.
    assert!(
        refused.len() <= 3,
        "one event in full per source and window (plus the warm-up's): {}",
        refused.len()
    );
    for event in &refused {
        let id = event["client_id"].as_str().unwrap_or("");
        assert!(
            id.len() <= 70,
            "unknown client ids are cut short: {}",
            id.len()
        );
    }
    let disk_growth = disk_after.saturating_sub(disk_before);
    assert!(
        disk_growth < 1024 * 1024,
        "database grew {disk_growth} bytes"
    );
    let rss_growth_kib = rss_after.saturating_sub(rss_before);
    assert!(
        rss_growth_kib < 24 * 1024,
        "RSS grew {rss_growth_kib} KiB ({rss_before} -> {rss_after})"
    );
}
