//! The SLA report as a page for people (`/ui/sla-report`): rendered here rather than
//! by script, so it prints to PDF exactly as it reads (a print stylesheet drops the
//! screen's controls and keeps each service's tables on one page where they fit).

use std::fmt::Write;

use crate::observe::sla_report::{Attainment, ServiceReport, FAST_BURN};

fn esc(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

fn when(us: i64) -> String {
    let t =
        time::OffsetDateTime::from_unix_timestamp(us.div_euclid(1_000_000)).unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    format!("{:04}-{:02}-{:02} {:02}:{:02} UTC", t.year(), u8::from(t.month()), t.day(), t.hour(), t.minute())
}

fn pct(v: f64, digits: usize) -> String {
    if v.is_finite() {
        format!("{:.*} %", digits, v * 100.0)
    } else {
        "exceeded (no failure allowed)".into()
    }
}

fn status(a: &Attainment, r: &ServiceReport) -> (&'static str, &'static str) {
    if a.counts.total == 0 {
        ("none", "no traffic")
    } else if a.availability >= r.availability_target && a.latency_attainment >= r.latency_target {
        ("met", "met")
    } else {
        ("missed", "missed")
    }
}

const STYLE: &str = r#"
  body { margin:0; font:13px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color:#1d2430; background:#fff; }
  header { padding:16px 28px; border-bottom:2px solid #102a43; }
  header h1 { margin:0 0 4px; font-size:20px; }
  header .meta { color:#5d6878; }
  main { padding:8px 28px 28px; }
  section { margin:18px 0 26px; }
  h2 { font-size:15px; margin:0 0 6px; font-family:ui-monospace, Menlo, monospace; }
  h3 { font-size:13px; margin:12px 0 4px; color:#5d6878; }
  table { border-collapse:collapse; width:100%; }
  th, td { border:1px solid #d8dee4; padding:4px 8px; text-align:right; }
  th:first-child, td:first-child { text-align:left; }
  th { background:#eef1f4; font-size:12px; }
  .met { color:#1a7f37; font-weight:600; } .missed { color:#cf222e; font-weight:600; } .none { color:#5d6878; }
  .controls { margin:10px 0; }
  .controls input { font:inherit; }
  p.note { color:#5d6878; font-size:12px; max-width:900px; }
  @page { size:A4; margin:14mm; }
  @media print {
    .controls, .noprint { display:none; }
    header { padding:0 0 8px; } main { padding:0; }
    section { break-inside:avoid; page-break-inside:avoid; }
    th { background:#eee !important; -webkit-print-color-adjust:exact; print-color-adjust:exact; }
  }
"#;

/// The whole page for the period `[from, to)` (µs).
pub fn render(node: &str, from: i64, to: i64, generated: i64, report: &[ServiceReport]) -> String {
    let mut h = String::with_capacity(8192);
    let _ = write!(
        h,
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>Qaqpa — SLA report {} to {}</title><style>{STYLE}</style></head><body>\
         <header><h1>SLA report</h1><div class=\"meta\">Period <b id=\"period\">{} — {}</b> · node {} · generated {}</div></header><main>\
         <form class=\"controls\" method=\"get\" action=\"/ui/sla-report\">From <input name=\"from\" value=\"{}\" size=\"22\"> to \
         <input name=\"to\" value=\"{}\" size=\"22\"> <button>Show</button> <button type=\"button\" onclick=\"window.print()\">Print</button> \
         <a href=\"/ui\">back to the console</a></form>",
        when(from),
        when(to),
        when(from),
        when(to),
        esc(node),
        when(generated),
        from / 1_000_000,
        to / 1_000_000,
    );
    if report.is_empty() {
        h.push_str("<p>No service has an SLA objective (<code>sla = {…}</code> in its <code>[[service]]</code>).</p>");
    }
    for r in report {
        let (class, word) = status(&r.period, r);
        let p = &r.period;
        let _ = write!(
            h,
            "<section class=\"service\" data-service=\"{svc}\"><h2>{svc}</h2>\
             <table class=\"summary\"><tr><th>Objective</th><th>Exchanges</th><th>Availability</th><th>Availability budget spent</th>\
             <th>Latency &lt; {ms} ms</th><th>Latency budget spent</th><th>Verdict</th></tr>\
             <tr><td>availability {at}, latency {lt} under {ms} ms</td><td class=\"total\">{total}</td><td class=\"availability\">{av}</td>\
             <td class=\"budget\">{ab}</td><td class=\"latency\">{la}</td><td>{lb}</td><td class=\"{class}\">{word}</td></tr></table>",
            svc = esc(&r.service),
            ms = r.latency_threshold_ms,
            at = pct(r.availability_target, 2),
            lt = pct(r.latency_target, 2),
            total = p.counts.total,
            av = pct(p.availability, 3),
            ab = pct(p.availability_budget_spent, 1),
            la = pct(p.latency_attainment, 3),
            lb = pct(p.latency_budget_spent, 1),
        );
        h.push_str("<h3>By day (UTC)</h3><table class=\"days\"><tr><th>Day</th><th>Exchanges</th><th>Unavailable (5xx)</th><th>Slow</th><th>Availability</th><th>Budget spent</th><th>Latency</th><th>Verdict</th></tr>");
        for (day, a) in &r.days {
            let (class, word) = status(a, r);
            let _ = write!(
                h,
                "<tr><td>{day}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td class=\"{class}\">{word}</td></tr>",
                a.counts.total,
                a.counts.unavailable,
                a.counts.slow,
                pct(a.availability, 3),
                pct(a.availability_budget_spent, 1),
                pct(a.latency_attainment, 3),
            );
        }
        if r.days.is_empty() {
            h.push_str("<tr><td colspan=\"8\">No exchanges in the period.</td></tr>");
        }
        h.push_str("</table>");
        let _ = write!(
            h,
            "<h3>Incidents: {} (5-minute windows burning the budget at {FAST_BURN}× the allowed rate or faster; adjacent ones merged)</h3>",
            r.incidents.len()
        );
        if r.incidents.is_empty() {
            h.push_str("<p class=\"incidents none\">None.</p>");
        } else {
            h.push_str("<table class=\"incidents\"><tr><th>From</th><th>To</th><th>Exchanges</th><th>Unavailable</th><th>Worst burn rate</th></tr>");
            for i in &r.incidents {
                let _ = write!(
                    h,
                    "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{:.1}×</td></tr>",
                    when(i.from),
                    when(i.to),
                    i.total,
                    i.unavailable,
                    i.burn_rate
                );
            }
            h.push_str("</table>");
        }
        h.push_str("</section>");
    }
    h.push_str(
        "<p class=\"note\">Availability: share of exchanges not answered with a 5xx status (the gateway's or the \
         provider's). Latency: share whose response head left within the threshold. Budget spent: failures over the \
         failures the objective allows for the period's traffic; above 100 % the objective was missed. Counted from the \
         gateway's monitoring records (DATA_DIR/monitoring), kept for the monitoring retention period.</p></main></body></html>\n",
    );
    h
}
