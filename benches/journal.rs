//! What the journal's fsync costs: appends 2,000 events with and without fsync, then the
//! same with fsync from 8 concurrent tasks through the shared writer (group commit).
//! Run with `cargo bench --bench journal`.
//!
//! Reference (2-core shared VM, ext4): fsync each ~4,300 events/s, no fsync
//! ~370,000 events/s, 8 tasks with group commit ~11,000 events/s (2.5x fsync each: one
//! fsync covers the lines queued meanwhile). The appender that commits does so on its own
//! thread, which blocks one of the runtime's two workers meanwhile; a writer thread of its
//! own gave ~16,000 here, but cost each sequential step two thread wake-ups (~0.2 ms).

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
    let journal = Journal::share(writer);
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
