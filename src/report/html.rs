//! `report.html`: one self-contained file to file as evidence — inline CSS and SVG, no
//! script, no external reference of any kind — with the run as a timeline (one bar per
//! step and host). Light and printable. Every text from the journal goes through [`esc`].

// Pixel positions are computed in f64 from millisecond offsets; precision beyond 2^52 ms
// is irrelevant for a drawing.
#![allow(clippy::cast_precision_loss)]

use std::fmt::Write as _;

use super::{Report, StepReport, clock, delta, mode_banner, printable, took};
use crate::event::Mode;
use crate::host_info::parse_rfc3339_ms;

pub fn render(r: &Report) -> String {
    let mut out = String::with_capacity(32 * 1024);
    let _ = write!(
        out,
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\"/>\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\"/>\n\
         <title>{} run report: {} ({})</title>\n<style>{CSS}</style>\n</head>\n<body>\n",
        r.mode.label(),
        esc(&r.runbook.name),
        esc(&r.run_id)
    );
    header(&mut out, r);
    summary(&mut out, r);
    let _ = write!(
        out,
        "<section class=\"timeline\"><h2>Timeline</h2>\n{}</section>\n",
        timeline(r)
    );
    steps(&mut out, r);
    approvals(&mut out, r);
    events(&mut out, r);
    comparison(&mut out, r);
    outputs(&mut out, r);
    let _ = write!(
        out,
        "<footer>Generated {} by runbook {} (report schema {}) from the journal {} \
         ({} events, {}). All times are UTC. Secrets are redacted in the journal and never \
         appear here.</footer>\n</body>\n</html>\n",
        esc(&r.generated_at),
        esc(&r.tool_version),
        r.schema_version,
        esc(&r.journal.path),
        r.journal.events,
        esc(&r.journal.integrity)
    );
    out
}

fn mode_class(mode: Mode) -> &'static str {
    match mode {
        Mode::Real => "real",
        Mode::Drill => "drill",
        Mode::DryRun => "dryrun",
        Mode::Probe => "probe",
    }
}

fn header(out: &mut String, r: &Report) {
    let _ = write!(
        out,
        "<header>\n<p class=\"kicker\">Disaster-recovery run report</p>\n\
         <h1>{}</h1>\n<p class=\"runid\">Run <code>{}</code>{}</p>\n",
        esc(&r.runbook.name),
        esc(&r.run_id),
        r.timing
            .started_at
            .as_deref()
            .and_then(|at| Some(format!(
                " · started {} {} UTC",
                at.get(..10)?,
                at.get(11..19)?
            )))
            .map(|text| esc(&text))
            .unwrap_or_default()
    );
    if let Some(description) = &r.runbook.description {
        let _ = writeln!(out, "<p class=\"desc\">{}</p>", esc(description));
    }
    let _ = write!(
        out,
        "</header>\n<div class=\"banner mode-{}\"><span class=\"mode\">{}</span> {}</div>\n",
        mode_class(r.mode),
        r.mode.label(),
        esc(mode_banner(r.mode)
            .split_once(": ")
            .map_or("", |(_, rest)| rest))
    );
    let state_class = match r.state.as_str() {
        "succeeded" => "ok",
        "failed" => "bad",
        _ => "warn",
    };
    let _ = write!(
        out,
        "<div class=\"result {state_class}\"><span class=\"word\">{}</span> <span>{}</span>",
        esc(&r.state.to_uppercase()),
        esc(&rto_words(r))
    );
    if let Some(reason) = &r.paused_reason {
        let _ = write!(out, " <span>Paused: {}</span>", esc(reason));
    }
    out.push_str("</div>\n");
}

/// Total time against the RTO in one plain sentence (no markup).
fn rto_words(r: &Report) -> String {
    let t = &r.timing;
    match (t.rto_ms, t.rto_met) {
        (Some(rto), Some(true)) => format!(
            "in {}, within the RTO of {} ({}% used)",
            took(t.total_ms),
            took(rto),
            percent(t.total_ms, rto)
        ),
        (Some(rto), Some(false)) => format!(
            "in {}: RTO of {} exceeded by {}",
            took(t.total_ms),
            took(rto),
            took(t.total_ms - rto)
        ),
        (Some(rto), None) => format!(
            "after {}: not a completed recovery, so not measured against the RTO of {}",
            took(t.total_ms),
            took(rto)
        ),
        (None, _) => format!("in {} (no RTO target)", took(t.total_ms)),
    }
}

fn percent(part: u64, whole: u64) -> String {
    if whole == 0 {
        return "-".into();
    }
    let p = part as f64 * 100.0 / whole as f64;
    if p < 1.0 {
        format!("{p:.1}")
    } else {
        format!("{p:.0}")
    }
}

fn summary(out: &mut String, r: &Report) {
    let t = &r.timing;
    out.push_str("<section class=\"summary\">\n<table class=\"facts\">\n");
    let mut row = |key: &str, value: String| {
        let _ = writeln!(out, "<tr><th>{key}</th><td>{value}</td></tr>");
    };
    row(
        "Runbook",
        format!(
            "<strong>{}</strong><br/><code>{}</code>",
            esc(&r.runbook.name),
            esc(&r.runbook.path)
        ),
    );
    row(
        "Runbook SHA-256",
        r.runbook.sha256.as_deref().map_or("unknown".into(), |h| {
            format!("<code class=\"hash\">{}</code>", esc(h))
        }),
    );
    if let Some(inventory) = &r.inventory {
        row(
            "Inventory",
            format!(
                "<code>{}</code><br/>SHA-256 <code class=\"hash\">{}</code>",
                esc(&inventory.path),
                inventory.sha256.as_deref().map_or("unknown".into(), esc)
            ),
        );
    }
    row("Operator", esc(&r.operator_label()));
    row(
        "Reason",
        r.reason
            .as_deref()
            .map_or("<em>none given</em>".into(), esc),
    );
    row("Started", t.started_at.as_deref().map_or("-".into(), esc));
    row(
        "Finished",
        t.finished_at
            .as_deref()
            .map_or("<em>not finished</em>".into(), esc),
    );
    row(
        "Checkpoints",
        if r.checkpoints.is_empty() {
            "none".into()
        } else {
            r.checkpoints
                .iter()
                .map(|c| format!("<span class=\"chip\">{}</span>", esc(&c.name)))
                .collect::<Vec<_>>()
                .join(" ")
        },
    );
    row(
        "Journal",
        format!(
            "<span class=\"{}\">{}</span> · {} events, hash-chained",
            if r.journal.intact { "okt" } else { "badt" },
            esc(&r.journal.integrity),
            r.journal.events
        ),
    );
    out.push_str("</table>\n<div class=\"time\">\n");
    let _ = writeln!(
        out,
        "<div class=\"total\">{}</div><div class=\"sub\">total time{}</div>",
        took(t.total_ms),
        t.rto_ms
            .map(|rto| format!(" · RTO target {}", took(rto)))
            .unwrap_or_default()
    );
    out.push_str(&gauge(r));
    let _ = write!(
        out,
        "<table class=\"split\"><tr><td><span class=\"sw sw-work\"></span>Working</td><td>{}</td></tr>\
         <tr><td><span class=\"sw sw-wait\"></span>Waiting for approvals</td><td>{}</td></tr>",
        took(t.working_ms),
        took(t.approval_wait_ms)
    );
    if let Some(c) = &r.comparison {
        let _ = write!(
            out,
            "<tr><td>Previous {} run</td><td>{} ({})</td></tr>",
            r.mode.label(),
            took(c.previous_total_ms),
            delta(c.total_delta_ms)
        );
    }
    out.push_str("</table>\n</div>\n</section>\n");
}

/// Working and waiting time as one bar against the RTO budget.
#[allow(clippy::many_single_char_names)] // x, y, w, h: the drawing's coordinates
fn gauge(r: &Report) -> String {
    let t = &r.timing;
    let (w, h) = (320.0, 18.0);
    let scale = t.rto_ms.unwrap_or(0).max(t.total_ms).max(1) as f64;
    let work = t.working_ms as f64 / scale * w;
    let wait = t.approval_wait_ms as f64 / scale * w;
    let mut svg = format!(
        "<svg class=\"gauge\" viewBox=\"0 0 {w} {}\" role=\"img\" aria-label=\"time against the RTO\">\
         <rect x=\"0\" y=\"0\" width=\"{w}\" height=\"{h}\" class=\"budget\"/>\
         <rect x=\"0\" y=\"0\" width=\"{:.1}\" height=\"{h}\" class=\"work\"/>\
         <rect x=\"{:.1}\" y=\"0\" width=\"{:.1}\" height=\"{h}\" class=\"wait\"/>",
        h + 14.0,
        work.max(if t.working_ms > 0 { 1.5 } else { 0.0 }),
        work,
        wait
    );
    if let Some(rto) = t.rto_ms {
        let x = rto as f64 / scale * w;
        let _ = write!(
            svg,
            "<line x1=\"{x:.1}\" x2=\"{x:.1}\" y1=\"-2\" y2=\"{}\" class=\"rto\"/>\
             <text x=\"{:.1}\" y=\"{}\" class=\"rtolabel\" text-anchor=\"end\">RTO {}</text>",
            h + 2.0,
            x.min(w),
            h + 13.0,
            took(rto)
        );
    }
    svg.push_str("</svg>\n");
    svg
}

// ---------------------------------------------------------------------------------------
// The timeline

/// Layout of the timeline drawing, in SVG user units.
const WIDTH: f64 = 1000.0;
const LABEL_W: f64 = 270.0;
const RIGHT_W: f64 = 150.0;
const TOP: f64 = 44.0;
const ROW_H: f64 = 22.0;
const BAR_H: f64 = 14.0;
/// The width of a character of a note, on average, to keep notes inside the drawing.
const NOTE_CHAR_W: f64 = 6.0;

struct Row {
    step: String,
    host: String,
    /// Shading band: alternates per step, not per row.
    band: bool,
    marks: Vec<Mark>,
    /// Words after the last mark (duration, exit code, reason).
    note: String,
    /// Where the note goes: after this offset (ms), or at the start when `None`.
    note_at: Option<u64>,
}

enum Mark {
    Bar {
        from: u64,
        to: u64,
        class: &'static str,
        title: String,
    },
    Skip {
        at: u64,
    },
}

#[allow(clippy::many_single_char_names)] // x, y, w, h: the drawing's coordinates
fn timeline(r: &Report) -> String {
    let t0 = r.timing.started_at.as_deref().and_then(parse_rfc3339_ms);
    let end = r.timing.total_ms;
    let offset =
        |at: Option<&str>| -> Option<u64> { Some(parse_rfc3339_ms(at?)?.saturating_sub(t0?)) };
    let rows = rows(r, &offset, end);

    let total = end.max(1);
    // The RTO is drawn to scale when it is near the run's length; a far-off target would
    // squash every bar to a hairline, so it is then named at the edge instead.
    let rto_on_scale = r
        .timing
        .rto_ms
        .filter(|&rto| rto <= total.saturating_mul(5) / 4);
    let axis = rto_on_scale.map_or(total, |rto| rto.max(total));
    let chart_w = WIDTH - LABEL_W - RIGHT_W;
    let x = |ms: u64| LABEL_W + ms as f64 / axis as f64 * chart_w;
    let bottom = TOP + ROW_H * rows.len() as f64;
    let height = bottom + 74.0;

    let mut s = String::new();
    let _ = write!(
        s,
        "<svg class=\"chart\" viewBox=\"0 0 {WIDTH} {height}\" role=\"img\" \
         aria-label=\"timeline of the run, one bar per step and host\">\n{DEFS}"
    );
    // Shading bands and row labels.
    for (i, row) in rows.iter().enumerate() {
        let y = TOP + ROW_H * i as f64;
        if row.band {
            let _ = write!(
                s,
                "<rect x=\"0\" y=\"{y}\" width=\"{WIDTH}\" height=\"{ROW_H}\" class=\"band\"/>"
            );
        }
        let label = if row.host.is_empty() {
            row.step.clone()
        } else {
            format!("{} · {}", row.step, row.host)
        };
        let _ = write!(
            s,
            "<text x=\"6\" y=\"{:.1}\" class=\"label\"><title>{}</title><tspan class=\"sid\">{}</tspan>",
            y + ROW_H / 2.0 + 4.0,
            esc(&label),
            esc(&truncate(&row.step, 34))
        );
        if !row.host.is_empty() {
            let room = 42usize.saturating_sub(row.step.chars().count().min(34));
            let _ = write!(
                s,
                "<tspan class=\"host\"> · {}</tspan>",
                esc(&truncate(&row.host, room.max(8)))
            );
        }
        s.push_str("</text>\n");
    }
    // Axis: ticks and grid.
    let tick = nice_tick(axis);
    let mut ms = 0;
    while ms <= axis {
        let xx = x(ms);
        let _ = writeln!(
            s,
            "<line x1=\"{xx:.1}\" x2=\"{xx:.1}\" y1=\"{}\" y2=\"{bottom}\" class=\"grid\"/>\
             <text x=\"{xx:.1}\" y=\"{}\" class=\"tick\" text-anchor=\"middle\">{}</text>",
            TOP - 6.0,
            TOP - 10.0,
            if ms == 0 {
                "0".into()
            } else {
                format!("+{}", took(ms))
            }
        );
        ms += tick;
    }
    let _ = writeln!(
        s,
        "<text x=\"{LABEL_W}\" y=\"14\" class=\"axis\">Elapsed since the start{}</text>\
         <line x1=\"{LABEL_W}\" x2=\"{:.1}\" y1=\"{}\" y2=\"{}\" class=\"axisline\"/>",
        r.timing
            .started_at
            .as_deref()
            .map(|at| format!(" ({} UTC)", esc(clock(at))))
            .unwrap_or_default(),
        x(axis),
        TOP - 1.0,
        TOP - 1.0
    );
    // Bars.
    for (i, row) in rows.iter().enumerate() {
        let y = TOP + ROW_H * i as f64 + (ROW_H - BAR_H) / 2.0;
        for mark in &row.marks {
            match mark {
                Mark::Bar {
                    from,
                    to,
                    class,
                    title,
                } => {
                    let x0 = x(*from);
                    let w = (x(*to) - x0).max(2.5);
                    let _ = write!(
                        s,
                        "<rect x=\"{x0:.1}\" y=\"{y:.1}\" width=\"{w:.1}\" height=\"{BAR_H}\" \
                         rx=\"2\" class=\"{class}\"><title>{}</title></rect>",
                        esc(title)
                    );
                }
                Mark::Skip { at } => {
                    let (cx, cy) = (x(*at), y + BAR_H / 2.0);
                    let _ = write!(
                        s,
                        "<path d=\"M{:.1} {cy:.1} l5 -5 l5 5 l-5 5 z\" class=\"skip\"/>",
                        cx - 5.0
                    );
                }
            }
        }
        if !row.note.is_empty() {
            // After the bars when it fits, else before them (a late skip has room on the
            // left), else cut to the room there is.
            let chars = row.note.chars().count();
            let after = row.note_at.map_or(LABEL_W + 4.0, |at| x(at) + 6.0);
            let before = row.marks.first().map_or(LABEL_W, |m| match m {
                Mark::Bar { from, .. } => x(*from) - 6.0,
                Mark::Skip { at } => x(*at) - 9.0,
            });
            // Clamped at zero first: the cast cannot lose a sign.
            #[allow(clippy::cast_sign_loss)]
            let fits = |room: f64| (room.max(0.0) / NOTE_CHAR_W) as usize;
            let (nx, anchor, room) = if fits(WIDTH - after) >= chars
                || fits(WIDTH - after) >= fits(before - LABEL_W - 4.0)
            {
                (after, "start", fits(WIDTH - after))
            } else {
                (before, "end", fits(before - LABEL_W - 4.0))
            };
            let _ = write!(
                s,
                "<text x=\"{nx:.1}\" y=\"{:.1}\" class=\"note\" text-anchor=\"{anchor}\">{}</text>",
                y + BAR_H - 3.0,
                esc(&truncate(&row.note, room.max(8)))
            );
        }
        s.push('\n');
    }
    // The RTO target.
    match (r.timing.rto_ms, rto_on_scale) {
        (Some(rto), Some(_)) => {
            let xx = x(rto);
            let _ = writeln!(
                s,
                "<line x1=\"{xx:.1}\" x2=\"{xx:.1}\" y1=\"{}\" y2=\"{bottom}\" class=\"rto\"/>\
                 <text x=\"{:.1}\" y=\"{}\" class=\"rtolabel\">RTO {}</text>",
                TOP - 20.0,
                xx + 4.0,
                TOP - 22.0,
                took(rto)
            );
        }
        (Some(rto), None) => {
            let _ = writeln!(
                s,
                "<text x=\"{:.1}\" y=\"14\" class=\"rtolabel\" text-anchor=\"end\">RTO {}: beyond \
                 this scale (the run took {}% of it)</text>",
                WIDTH - 6.0,
                took(rto),
                percent(r.timing.total_ms, rto)
            );
        }
        _ => {}
    }
    legend(&mut s, bottom + 22.0);
    s.push_str("</svg>\n");
    s
}

fn rows(r: &Report, offset: &dyn Fn(Option<&str>) -> Option<u64>, end: u64) -> Vec<Row> {
    let mut rows = Vec::new();
    for (index, step) in r.steps.iter().enumerate() {
        let band = index % 2 == 1;
        let row = |host: &str| Row {
            step: step.id.clone(),
            host: host.to_string(),
            band,
            marks: Vec::new(),
            note: String::new(),
            note_at: None,
        };
        if step.kind == "approve" {
            let mut row = row("approval");
            approval_row(r, step, offset, end, &mut row);
            rows.push(row);
            continue;
        }
        match step.status.as_str() {
            "skipped" => {
                let mut row = row("");
                let at = offset(step.finished_at.as_deref());
                if let Some(at) = at {
                    row.marks.push(Mark::Skip { at });
                }
                row.note = format!(
                    "skipped: {}",
                    step.skipped_reason
                        .as_deref()
                        .unwrap_or("no reason recorded")
                );
                row.note_at = at.map(|a| a + 4);
                rows.push(row);
                continue;
            }
            "not-run" if step.hosts.is_empty() => {
                let mut row = row("");
                row.note = "not run".into();
                rows.push(row);
                continue;
            }
            _ => {}
        }
        for host in &step.hosts {
            let mut row = row(&host.host);
            let last = host.attempts.len();
            for (i, attempt) in host.attempts.iter().enumerate() {
                let from = offset(attempt.started_at.as_deref()).or_else(|| {
                    let to = offset(attempt.finished_at.as_deref())?;
                    Some(to.saturating_sub(attempt.duration_ms.unwrap_or(0)))
                });
                let Some(from) = from else { continue };
                let to = offset(attempt.finished_at.as_deref()).unwrap_or(end);
                let class = match (attempt.outcome.as_deref(), attempt.simulated) {
                    (None, _) => "inflight",
                    (Some(_), true) => "simulated",
                    (Some("failed"), _) if i + 1 < last => "retried",
                    (Some("failed"), _) => "failed",
                    _ => "ok",
                };
                let title = format!(
                    "{} on {}, attempt {}: {} · {} → {} · {}{}",
                    step.id,
                    host.host,
                    attempt.number,
                    attempt
                        .outcome
                        .as_deref()
                        .unwrap_or("in flight, outcome unknown"),
                    attempt.started_at.as_deref().map_or("?", clock),
                    attempt.finished_at.as_deref().map_or("?", clock),
                    attempt.duration_ms.map_or("?".into(), took),
                    attempt
                        .exit_code
                        .map(|c| format!(" · exit {c}"))
                        .unwrap_or_default()
                );
                row.marks.push(Mark::Bar {
                    from,
                    to,
                    class,
                    title,
                });
                row.note_at = Some(to);
            }
            row.note = host_note(host);
            rows.push(row);
        }
    }
    rows
}

fn approval_row(
    r: &Report,
    step: &StepReport,
    offset: &dyn Fn(Option<&str>) -> Option<u64>,
    end: u64,
    row: &mut Row,
) {
    let asked: Vec<_> = r.approvals.iter().filter(|a| a.step == step.id).collect();
    for a in &asked {
        let Some(from) = offset(Some(&a.requested_at)) else {
            continue;
        };
        let to = offset(a.answered_at.as_deref()).unwrap_or(end);
        let class = if a.outcome == "declined" {
            "declined"
        } else {
            "wait"
        };
        row.marks.push(Mark::Bar {
            from,
            to,
            class,
            title: format!("{}: {} after {}", step.id, a.outcome, took(a.waited_ms)),
        });
        row.note_at = Some(to);
    }
    row.note = match asked.last() {
        Some(a) => match (&a.user, &a.machine) {
            (Some(user), Some(machine)) => format!(
                "{} by {user}@{machine}{} after {}",
                a.outcome,
                a.via
                    .as_deref()
                    .map(|v| format!(" via {v}"))
                    .unwrap_or_default(),
                took(a.waited_ms)
            ),
            _ => format!("waiting for {}", took(a.waited_ms)),
        },
        None if step.status == "skipped" => format!(
            "skipped: {}",
            step.skipped_reason
                .as_deref()
                .unwrap_or("no reason recorded")
        ),
        None => "not asked".into(),
    };
}

fn host_note(host: &super::HostReport) -> String {
    let mut note = host.duration_ms.map_or_else(String::new, took);
    if host.attempts.len() > 1 {
        let _ = write!(note, " · {} attempts", host.attempts.len());
    }
    match host.status.as_str() {
        "failed" => {
            let _ = write!(
                note,
                " · FAILED{}",
                host.exit_code
                    .map(|c| format!(", exit {c}"))
                    .unwrap_or_default()
            );
        }
        "in-flight" => note.push_str(" · in flight, outcome unknown"),
        _ => {}
    }
    note
}

/// A round tick interval giving about eight ticks over `axis` ms.
fn nice_tick(axis: u64) -> u64 {
    const NICE: &[u64] = &[
        1, 2, 5, 10, 20, 50, 100, 200, 250, 500, 1_000, 2_000, 5_000, 10_000, 15_000, 30_000,
        60_000, 120_000, 300_000, 600_000, 900_000, 1_800_000, 3_600_000, 7_200_000, 14_400_000,
        21_600_000, 43_200_000, 86_400_000,
    ];
    let raw = axis / 8;
    NICE.iter()
        .copied()
        .find(|&n| n >= raw)
        .unwrap_or_else(|| raw.max(1))
}

fn legend(s: &mut String, y: f64) {
    let items: &[(&str, &str)] = &[
        ("ok", "succeeded"),
        ("failed", "failed"),
        ("retried", "failed, then retried"),
        ("inflight", "in flight (outcome unknown)"),
        ("simulated", "simulated (nothing sent)"),
        ("wait", "waiting for approval"),
    ];
    let mut x = LABEL_W;
    let mut row_y = y;
    for (class, text) in items {
        let width = 30.0 + text.chars().count() as f64 * 6.6;
        if x + width > WIDTH {
            x = LABEL_W;
            row_y += 20.0;
        }
        let _ = write!(
            s,
            "<rect x=\"{x:.1}\" y=\"{:.1}\" width=\"18\" height=\"11\" rx=\"2\" class=\"{class}\"/>\
             <text x=\"{:.1}\" y=\"{:.1}\" class=\"legend\">{text}</text>",
            row_y - 9.0,
            x + 23.0,
            row_y
        );
        x += width;
    }
    let extra = [("skip", "skipped"), ("rto", "RTO target")];
    for (class, text) in extra {
        let width = 30.0 + text.chars().count() as f64 * 6.6;
        if x + width > WIDTH {
            x = LABEL_W;
            row_y += 20.0;
        }
        if class == "skip" {
            let _ = write!(
                s,
                "<path d=\"M{:.1} {:.1} l5 -5 l5 5 l-5 5 z\" class=\"skip\"/>",
                x + 4.0,
                row_y - 3.5
            );
        } else {
            let _ = write!(
                s,
                "<line x1=\"{:.1}\" x2=\"{:.1}\" y1=\"{:.1}\" y2=\"{:.1}\" class=\"rto\"/>",
                x + 9.0,
                x + 9.0,
                row_y - 12.0,
                row_y + 3.0
            );
        }
        let _ = write!(
            s,
            "<text x=\"{:.1}\" y=\"{row_y:.1}\" class=\"legend\">{text}</text>",
            x + 23.0
        );
        x += width;
    }
}

fn truncate(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        text.to_string()
    } else {
        let mut out: String = text.chars().take(max.saturating_sub(1)).collect();
        out.push('…');
        out
    }
}

// ---------------------------------------------------------------------------------------
// Tables

fn chip(status: &str) -> String {
    let class = match status {
        "succeeded" | "approved" => "ok",
        "failed" | "declined" => "bad",
        "skipped" | "not-run" => "mute",
        _ => "warn",
    };
    format!("<span class=\"st {class}\">{}</span>", esc(status))
}

fn steps(out: &mut String, r: &Report) {
    out.push_str(
        "<section><h2>Steps</h2>\n<table class=\"grid\"><thead><tr><th>Step</th><th>Host</th>\
         <th>Status</th><th>Start</th><th>End</th><th>Duration</th><th>Attempts</th>\
         <th>Exit</th></tr></thead>\n<tbody>\n",
    );
    let at = |t: &Option<String>| t.as_deref().map_or("-".into(), |a| esc(clock(a)));
    for step in &r.steps {
        let title = format!(
            "<code>{}</code>{}",
            esc(&step.id),
            step.name
                .as_deref()
                .map(|n| format!("<div class=\"name\">{}</div>", esc(n)))
                .unwrap_or_default()
        );
        if step.hosts.is_empty() {
            let detail = match (step.kind.as_str(), &step.skipped_reason) {
                (_, Some(reason)) => format!("<div class=\"name\">{}</div>", esc(reason)),
                ("approve", None) => "<div class=\"name\">approval gate</div>".into(),
                _ => String::new(),
            };
            let _ = writeln!(
                out,
                "<tr><td>{title}</td><td>{}</td><td>{}{detail}</td><td>{}</td><td>{}</td><td>{}</td><td></td><td></td></tr>",
                step.on.as_deref().map_or(String::new(), esc),
                chip(&step.status),
                at(&step.started_at),
                at(&step.finished_at),
                step.duration_ms.map_or("-".into(), took),
            );
            continue;
        }
        for (i, host) in step.hosts.iter().enumerate() {
            let attempts = if host.attempts.len() > 1 {
                let list: Vec<String> = host
                    .attempts
                    .iter()
                    .map(|a| {
                        format!(
                            "#{} {}{}",
                            a.number,
                            a.outcome.as_deref().unwrap_or("in flight"),
                            a.exit_code.map(|c| format!(" ({c})")).unwrap_or_default()
                        )
                    })
                    .collect();
                format!(
                    "{}<div class=\"name\">{}</div>",
                    host.attempts.len(),
                    esc(&list.join(", "))
                )
            } else {
                host.attempts.len().to_string()
            };
            let _ = writeln!(
                out,
                "<tr{}><td>{}</td><td>{}</td><td>{}{}</td><td>{}</td><td>{}</td><td>{}</td><td>{attempts}</td><td>{}</td></tr>",
                if i > 0 { " class=\"cont\"" } else { "" },
                if i == 0 { title.clone() } else { String::new() },
                esc(&host.host),
                chip(&host.status),
                host.error
                    .as_deref()
                    .map(|e| format!("<div class=\"name\">{}</div>", esc(e)))
                    .unwrap_or_default(),
                at(&host.started_at),
                at(&host.finished_at),
                host.duration_ms.map_or("-".into(), took),
                host.exit_code.map_or("-".into(), |c| c.to_string()),
            );
        }
    }
    out.push_str("</tbody></table></section>\n");
}

fn approvals(out: &mut String, r: &Report) {
    if r.approvals.is_empty() {
        return;
    }
    out.push_str(
        "<section><h2>Approvals</h2>\n<table class=\"grid\"><thead><tr><th>Step</th><th>Question</th>\
         <th>Outcome</th><th>By</th><th>Via</th><th>Requested</th><th>Answered</th><th>Waited</th>\
         </tr></thead>\n<tbody>\n",
    );
    for a in &r.approvals {
        let by = match (&a.user, &a.machine) {
            (Some(u), Some(m)) => esc(&format!("{u}@{m}")),
            _ => "-".into(),
        };
        let _ = writeln!(
            out,
            "<tr><td><code>{}</code></td><td class=\"q\">{}</td><td>{}</td><td>{by}</td><td>{}</td>\
             <td>{}</td><td>{}</td><td>{}</td></tr>",
            esc(&a.step),
            esc(&a.question),
            chip(&a.outcome),
            a.via.as_deref().map_or("-".into(), esc),
            esc(clock(&a.requested_at)),
            a.answered_at
                .as_deref()
                .map_or("-".into(), |t| esc(clock(t))),
            took(a.waited_ms),
        );
    }
    out.push_str("</tbody></table></section>\n");
}

fn events(out: &mut String, r: &Report) {
    out.push_str("<section class=\"two\"><div><h2>Checkpoints reached</h2>\n");
    if r.checkpoints.is_empty() {
        out.push_str("<p class=\"mute\">None.</p>");
    } else {
        out.push_str("<ul>");
        for c in &r.checkpoints {
            let _ = write!(
                out,
                "<li><strong>{}</strong> at {} (step <code>{}</code>)</li>",
                esc(&c.name),
                esc(clock(&c.at)),
                esc(&c.step)
            );
        }
        out.push_str("</ul>");
    }
    out.push_str("</div>\n<div><h2>Host keys</h2>\n");
    if r.host_keys.is_empty() {
        out.push_str(
            "<p class=\"mute\">No SSH connection was opened (local or simulated hosts).</p>",
        );
    } else {
        out.push_str("<ul>");
        for k in &r.host_keys {
            let _ = write!(
                out,
                "<li><strong>{}</strong>: <code class=\"hash\">{}</code></li>",
                esc(&k.host),
                esc(&k.detail)
            );
        }
        out.push_str("</ul>");
    }
    out.push_str("</div></section>\n");
    if r.resumes.is_empty() && r.decisions.is_empty() && r.interruptions.is_empty() {
        return;
    }
    out.push_str("<section><h2>Interruptions and resumes</h2><ul>\n");
    for i in &r.interruptions {
        let _ = writeln!(
            out,
            "<li>{}: {}</li>",
            esc(&i.at),
            if i.forced {
                "stopped at once"
            } else {
                "interrupted"
            }
        );
    }
    for s in &r.resumes {
        let _ = writeln!(
            out,
            "<li>{}: resumed by {}{}{}{}</li>",
            esc(&s.at),
            esc(&format!("{}@{}", s.operator, s.machine)),
            s.reason
                .as_deref()
                .map(|x| format!(" ({})", esc(x)))
                .unwrap_or_default(),
            if s.forced {
                " <strong>with --force</strong>"
            } else {
                ""
            },
            if s.changed_steps.is_empty() {
                String::new()
            } else {
                format!("; changed steps: {}", esc(&s.changed_steps.join(", ")))
            }
        );
    }
    for d in &r.decisions {
        let _ = writeln!(
            out,
            "<li>{}: <code>{}</code> {} settled as {} by {}</li>",
            esc(&d.at),
            esc(d.step.as_deref().unwrap_or("")),
            esc(d.host.as_deref().unwrap_or("")),
            esc(&format!("{:?}", d.decision)),
            esc(&format!("{}@{}", d.user, d.machine))
        );
    }
    out.push_str("</ul></section>\n");
}

fn comparison(out: &mut String, r: &Report) {
    out.push_str("<section><h2>Compared with the previous run</h2>\n");
    let Some(c) = &r.comparison else {
        let _ = writeln!(
            out,
            "<p class=\"mute\">No earlier finished {} run of this runbook to compare with.</p></section>",
            r.mode.label()
        );
        return;
    };
    let _ = write!(
        out,
        "<p>Previous {} run <code>{}</code> ({}, {}): {} in total; this run {} ({}).</p>\n\
         <table class=\"grid\"><thead><tr><th>Step</th><th>Before</th><th>After</th><th>Change</th>\
         </tr></thead><tbody>\n",
        r.mode.label(),
        esc(&c.previous_run_id),
        c.previous_started_at.as_deref().map_or("-".into(), esc),
        esc(&c.previous_state),
        took(c.previous_total_ms),
        took(r.timing.total_ms),
        delta(c.total_delta_ms)
    );
    for s in &c.steps {
        let change = match (s.change.as_str(), s.delta_ms) {
            ("slower", Some(d)) => format!(
                "<span class=\"badt\">slower by {}</span>",
                took(d.unsigned_abs())
            ),
            ("faster", Some(d)) => format!(
                "<span class=\"okt\">faster by {}</span>",
                took(d.unsigned_abs())
            ),
            (word, _) => esc(word),
        };
        let _ = writeln!(
            out,
            "<tr><td><code>{}</code></td><td>{}</td><td>{}</td><td>{change}{}</td></tr>",
            esc(&s.id),
            s.before_ms.map_or("-".into(), took),
            s.after_ms.map_or("-".into(), took),
            if s.new_failure {
                " <span class=\"st bad\">new failure</span>"
            } else {
                ""
            }
        );
    }
    out.push_str("</tbody></table></section>\n");
}

fn outputs(out: &mut String, r: &Report) {
    let hosts = r.hosts_with_output();
    if hosts.is_empty() {
        return;
    }
    out.push_str("<section class=\"outputs\"><h2>Output (last lines of the last attempt)</h2>\n");
    for (step, host) in hosts {
        let _ = write!(
            out,
            "<div class=\"out\"><h3><code>{}</code> on {} {}</h3>",
            esc(&step.id),
            esc(&host.host),
            chip(&host.status)
        );
        if let Some(error) = &host.error {
            let _ = write!(out, "<p class=\"badt\">{}</p>", esc(error));
        }
        if !host.stdout_tail.is_empty() {
            let _ = write!(out, "<pre>{}</pre>", esc(&host.stdout_tail));
        }
        if !host.stderr_tail.is_empty() {
            let _ = write!(out, "<pre class=\"err\">{}</pre>", esc(&host.stderr_tail));
        }
        out.push_str("</div>\n");
    }
    out.push_str("</section>\n");
}

/// Text safe anywhere in HTML or SVG, in element content and in quoted attributes.
fn esc(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in printable(text).chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            _ => out.push(c),
        }
    }
    out
}

/// Patterns for the hatched bars (approval waits, unknown outcomes).
const DEFS: &str = "<defs>\
<pattern id=\"hatch-wait\" width=\"6\" height=\"6\" patternUnits=\"userSpaceOnUse\" patternTransform=\"rotate(45)\">\
<rect width=\"6\" height=\"6\" fill=\"#e3ecfa\"/><line x1=\"0\" y1=\"0\" x2=\"0\" y2=\"6\" stroke=\"#1f5fbf\" stroke-width=\"2.5\"/></pattern>\
<pattern id=\"hatch-inflight\" width=\"6\" height=\"6\" patternUnits=\"userSpaceOnUse\" patternTransform=\"rotate(-45)\">\
<rect width=\"6\" height=\"6\" fill=\"#fff4cc\"/><line x1=\"0\" y1=\"0\" x2=\"0\" y2=\"6\" stroke=\"#c79a00\" stroke-width=\"2.5\"/></pattern>\
</defs>\n";

const CSS: &str = r"
:root { color-scheme: light; }
* { box-sizing: border-box; -webkit-print-color-adjust: exact; print-color-adjust: exact; }
body { margin: 0 auto; max-width: 1120px; padding: 28px 32px 40px; background: #fff; color: #1b1f24;
  font: 14px/1.45 system-ui, -apple-system, 'Segoe UI', Roboto, 'Helvetica Neue', Arial, sans-serif; }
code, pre, .hash { font-family: ui-monospace, 'SFMono-Regular', Menlo, Consolas, 'Liberation Mono', monospace; font-size: 12.5px; }
header .kicker { margin: 0; text-transform: uppercase; letter-spacing: .08em; font-size: 12px; color: #57606a; }
h1 { margin: 2px 0 0; font-size: 30px; }
header .runid { margin: 2px 0 6px; color: #57606a; }
header .desc { margin: 0 0 12px; color: #333; max-width: 900px; }
h2 { font-size: 17px; margin: 26px 0 8px; padding-bottom: 4px; border-bottom: 2px solid #d0d7de; }
h3 { font-size: 14px; margin: 12px 0 4px; }
.banner { margin: 12px 0 0; padding: 10px 16px; border: 3px solid; border-radius: 6px; font-size: 16px; }
.banner .mode { font-weight: 800; font-size: 22px; letter-spacing: .06em; margin-right: 10px; }
.mode-real { background: #fde8e8; border-color: #b42318; color: #7a1209; }
.mode-drill { border-color: #b25e00; color: #5c3100;
  background: repeating-linear-gradient(-45deg, #fff3d6 0 14px, #ffe7ad 14px 28px); }
.mode-dryrun { background: #eef2f6; border-color: #475467; color: #1d2939; }
.mode-probe { background: #e6f6f4; border-color: #0e7c6b; color: #084c41; }
.result { margin: 10px 0 0; padding: 8px 16px; border-radius: 6px; font-size: 15px; border-left: 8px solid; }
.result .word { font-weight: 800; letter-spacing: .05em; margin-right: 8px; }
.result.ok { background: #e9f6ec; border-color: #1a7f37; }
.result.bad { background: #fdecec; border-color: #c62828; }
.result.warn { background: #fff6db; border-color: #c79a00; }
.summary { display: flex; gap: 28px; align-items: flex-start; margin-top: 18px; }
.facts { border-collapse: collapse; flex: 1 1 auto; }
.facts th { text-align: left; vertical-align: top; color: #57606a; font-weight: 600; padding: 4px 14px 4px 0; white-space: nowrap; }
.facts td { padding: 4px 0; vertical-align: top; }
.hash { word-break: break-all; font-size: 11.5px; }
.time { flex: 0 0 340px; border: 1px solid #d0d7de; border-radius: 6px; padding: 12px 14px; }
.time .total { font-size: 30px; font-weight: 700; }
.time .sub { color: #57606a; margin-bottom: 8px; }
.split { border-collapse: collapse; width: 100%; margin-top: 6px; }
.split td { padding: 2px 0; } .split td:last-child { text-align: right; font-weight: 600; }
.sw { display: inline-block; width: 14px; height: 10px; margin-right: 6px; border-radius: 2px; }
.sw-work { background: #2f8f46; }
.sw-wait { background: repeating-linear-gradient(45deg, #1f5fbf 0 2px, #e3ecfa 2px 5px); }
.gauge { width: 100%; height: auto; overflow: visible; }
.gauge .budget { fill: #f3f4f6; stroke: #98a2b3; }
.gauge .work { fill: #2f8f46; }
.gauge .wait { fill: url(#hatch-wait); }
.chip { display: inline-block; padding: 0 8px; border-radius: 10px; background: #eef2ff; border: 1px solid #c7d2fe; }
.okt { color: #1a7f37; font-weight: 600; } .badt { color: #b42318; font-weight: 600; }
.mute { color: #6b7280; }
.chart { width: 100%; height: auto; display: block; }
.chart text { font-family: system-ui, -apple-system, 'Segoe UI', Roboto, Arial, sans-serif; }
.chart .band { fill: #f6f8fa; }
.chart .label { font-size: 12px; fill: #1b1f24; }
.chart .label .sid { font-weight: 600; } .chart .label .host { fill: #57606a; }
.chart .tick { font-size: 11px; fill: #57606a; } .chart .axis { font-size: 11px; fill: #57606a; }
.chart .grid { stroke: #e5e7eb; stroke-width: 1; } .chart .axisline { stroke: #98a2b3; }
.chart .note { font-size: 11px; fill: #344054; }
.chart .legend { font-size: 11.5px; fill: #344054; }
.ok { fill: #2f8f46; } .failed { fill: #c62828; } .retried { fill: #f08c00; }
.inflight { fill: url(#hatch-inflight); stroke: #c79a00; }
.simulated { fill: #fff; stroke: #475467; stroke-dasharray: 3 2; }
.wait { fill: url(#hatch-wait); stroke: #1f5fbf; } .declined { fill: #fdecec; stroke: #c62828; }
.skip { fill: #98a2b3; }
.rto { stroke: #b42318; stroke-width: 2; stroke-dasharray: 6 3; }
.rtolabel { font-size: 11.5px; font-weight: 700; fill: #b42318; }
table.grid { border-collapse: collapse; width: 100%; }
.grid th { text-align: left; font-size: 12px; color: #57606a; border-bottom: 2px solid #d0d7de; padding: 5px 8px; }
.grid td { border-bottom: 1px solid #e5e7eb; padding: 5px 8px; vertical-align: top; }
.grid tr.cont td { border-top: none; }
.grid .name { color: #57606a; font-size: 12px; }
.grid .q { max-width: 420px; }
.st { display: inline-block; padding: 0 7px; border-radius: 9px; font-size: 12px; font-weight: 600; border: 1px solid; }
.st.ok { color: #1a7f37; background: #e9f6ec; border-color: #a6d9b3; fill: none; }
.st.bad { color: #b42318; background: #fdecec; border-color: #f5b5b0; }
.st.warn { color: #8a6100; background: #fff6db; border-color: #ecd27c; }
.st.mute { color: #57606a; background: #f3f4f6; border-color: #d0d7de; }
.two { display: flex; gap: 28px; } .two > div { flex: 1; }
.two ul { margin: 0; padding-left: 20px; }
.out { margin-bottom: 8px; }
pre { margin: 2px 0 6px; padding: 8px 10px; background: #f6f8fa; border: 1px solid #e5e7eb; border-radius: 4px;
  white-space: pre-wrap; word-break: break-word; }
pre.err { background: #fff5f5; border-color: #f5c2c0; }
footer { margin-top: 30px; padding-top: 8px; border-top: 1px solid #d0d7de; color: #57606a; font-size: 12px; }
@page { size: A4; margin: 14mm 12mm; }
@media print {
  body { max-width: none; padding: 0; font-size: 10pt; }
  h2 { break-after: avoid; }
  tr, .out, .banner, .result, .summary, .timeline { break-inside: avoid; }
  .time { flex-basis: 260px; }
}
";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markup_in_output_is_escaped() {
        assert_eq!(
            esc("<script>alert('x')</script>&\""),
            "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;&amp;&quot;"
        );
    }

    #[test]
    fn ticks_are_round_and_about_eight() {
        assert_eq!(nice_tick(1_400), 200);
        assert_eq!(nice_tick(30 * 60 * 1000), 300_000);
        assert_eq!(nice_tick(0), 1);
    }

    #[test]
    fn long_labels_are_cut_with_an_ellipsis() {
        assert_eq!(truncate("abcdef", 4), "abc…");
        assert_eq!(truncate("abc", 4), "abc");
    }
}
