//! What the journal's fsync costs: appends 2,000 events with and without fsync, then the
//! same with fsync from 8 concurrent tasks through the shared writer (group commit).
//! Run with `cargo bench --bench journal`.
//!
//! Reference (2-core shared VM, ext4): fsync each ~300 events/s, no fsync
//! ~700,000 events/s (fsync is >2,000x the cost of the write), 8 tasks with group commit
//! ~2,000 events/s (about 7x fsync each: one fsync covers the lines queued meanwhile).

use std::time::Instant;

use runbook::journal::{Journal, JournalWriter};
use serde_json::json;

const EVENTS: u32 = 2_000;

fn event(i: u32) -> serde_json::Value {
    json!({"kind": "step_finished", "step": format!("step-{i}"), "host": "db1", "exit": 0})
}

fn sequential(sync: bool) -> f64 {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut writer = JournalWriter::create(&dir.path().join("j.jsonl")).expect("create");
    writer.set_sync(sync);
    let start = Instant::now();
    for i in 0..EVENTS {
        writer.append(&event(i)).expect("append");
    }
    f64::from(EVENTS) / start.elapsed().as_secs_f64()
}

fn grouped(tasks: u32) -> f64 {
    let dir = tempfile::tempdir().expect("temp dir");
    let writer = JournalWriter::create(&dir.path().join("j.jsonl")).expect("create");
    let journal = Journal::spawn(writer).expect("spawn");
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let start = Instant::now();
    runtime.block_on(async {
        let handles: Vec<_> = (0..tasks)
            .map(|t| {
                let journal = journal.clone();
                tokio::spawn(async move {
                    for i in (t..EVENTS).step_by(tasks as usize) {
                        journal.append(&event(i)).await.expect("append");
                    }
                })
            })
            .collect();
        for h in handles {
            h.await.expect("task");
        }
    });
    f64::from(EVENTS) / start.elapsed().as_secs_f64()
}

fn main() {
    let synced = sequential(true);
    let unsynced = sequential(false);
    let group = grouped(8);
    println!("{EVENTS} events, one writer, fsync each:    {synced:>10.0} events/s");
    println!("{EVENTS} events, one writer, no fsync:      {unsynced:>10.0} events/s");
    println!("{EVENTS} events, 8 tasks, group commit:     {group:>10.0} events/s");
    println!("cost of fsync: {:.1}x slower", unsynced / synced);
    println!("group commit gain over fsync each: {:.1}x", group / synced);
}
