//! Access reviews: who did what to a tenant's data in a period, from the audit log, as
//! JSON, CSV or a self-contained HTML page with an inline SVG chart of activity per day
//! (no external assets: it must open on an air-gapped machine). Pure functions over audit
//! rows; users appear as the log's pseudonyms.

use std::collections::BTreeMap;
use std::fmt::Write;

use serde::Serialize;

use crate::store::AuditRow;

#[derive(Clone, Debug, Serialize)]
pub struct AccessReview {
    pub tenant_id: String,
    pub from: String,
    pub to: String,
    pub total_events: usize,
    /// Events per user and action.
    pub by_user: Vec<UserActivity>,
    pub denied: Vec<ReviewEvent>,
    pub deletions: Vec<ReviewEvent>,
    pub exports: Vec<ReviewEvent>,
    /// Events per day (UTC date → count).
    pub per_day: BTreeMap<String, usize>,
}

#[derive(Clone, Debug, Serialize)]
pub struct UserActivity {
    pub user: String,
    pub actions: BTreeMap<String, usize>,
}

#[derive(Clone, Debug, Serialize)]
pub struct ReviewEvent {
    pub seq: i64,
    pub at: String,
    pub user: String,
    pub action: String,
    pub resource: String,
    pub outcome: String,
}

impl From<&AuditRow> for ReviewEvent {
    fn from(row: &AuditRow) -> ReviewEvent {
        ReviewEvent {
            seq: row.seq,
            at: crate::time::rfc3339(row.at),
            user: row.actor.clone(),
            action: row.action.clone(),
            resource: row.resource.clone(),
            outcome: row.outcome.clone(),
        }
    }
}

/// The period a report covers, in Unix seconds (`from` inclusive, `to` exclusive): a
/// calendar quarter (`2026Q4`), or RFC 3339 bounds, each open-ended when absent. The one
/// parser for every front end; its error is a message for the user.
pub fn period(
    quarter: Option<&str>,
    from: Option<&str>,
    to: Option<&str>,
) -> Result<(i64, i64), String> {
    if let Some(quarter) = quarter {
        return quarter_bounds(quarter).ok_or_else(|| "quarter must look like 2026Q4".into());
    }
    let parse = |text: &str| {
        crate::time::parse_rfc3339(text)
            .ok_or_else(|| format!("`{text}` is not an RFC 3339 time (e.g. 2026-10-01T00:00:00Z)"))
    };
    let from = from.map(parse).transpose()?.unwrap_or(0);
    let to = to.map(parse).transpose()?.unwrap_or(i64::MAX);
    if from >= to {
        return Err("`from` must be before `to`".into());
    }
    Ok((from, to))
}

/// `2026Q4` → (start, end) in Unix seconds, end exclusive.
pub fn quarter_bounds(quarter: &str) -> Option<(i64, i64)> {
    let (year, q) = quarter.split_once(['Q', 'q'])?;
    let year: i32 = year.parse().ok()?;
    let q: u8 = q.parse().ok().filter(|q| (1..=4).contains(q))?;
    let start_month = time::Month::try_from(3 * (q - 1) + 1).ok()?;
    let start = time::Date::from_calendar_date(year, start_month, 1).ok()?;
    let end = if q == 4 {
        time::Date::from_calendar_date(year + 1, time::Month::January, 1).ok()?
    } else {
        time::Date::from_calendar_date(year, time::Month::try_from(3 * q + 1).ok()?, 1).ok()?
    };
    Some((
        start.midnight().assume_utc().unix_timestamp(),
        end.midnight().assume_utc().unix_timestamp(),
    ))
}

pub fn build(tenant_id: &str, rows: &[AuditRow], from: i64, to: i64) -> AccessReview {
    let selected: Vec<&AuditRow> = rows
        .iter()
        .filter(|row| row.at >= from && row.at < to)
        .collect();
    let mut by_user: BTreeMap<String, BTreeMap<String, usize>> = BTreeMap::new();
    let mut per_day = BTreeMap::new();
    for row in &selected {
        *by_user
            .entry(row.actor.clone())
            .or_default()
            .entry(row.action.clone())
            .or_default() += 1;
        let day = crate::time::rfc3339(row.at)
            .chars()
            .take(10)
            .collect::<String>();
        *per_day.entry(day).or_default() += 1;
    }
    let pick = |predicate: &dyn Fn(&AuditRow) -> bool| -> Vec<ReviewEvent> {
        selected
            .iter()
            .filter(|row| predicate(row))
            .map(|row| ReviewEvent::from(*row))
            .collect()
    };
    AccessReview {
        tenant_id: tenant_id.to_owned(),
        from: crate::time::rfc3339(from.max(0)),
        to: crate::time::rfc3339(to.min(crate::time::LATEST_RFC3339)),
        total_events: selected.len(),
        by_user: by_user
            .into_iter()
            .map(|(user, actions)| UserActivity { user, actions })
            .collect(),
        denied: pick(&|row| row.outcome == "denied"),
        deletions: pick(&|row| row.action.ends_with(".delete")),
        exports: pick(&|row| row.action.starts_with("export") || row.action == "document.download"),
        per_day,
    }
}

fn csv_field(text: &str) -> String {
    if text.contains([',', '"', '\n']) {
        format!("\"{}\"", text.replace('"', "\"\""))
    } else {
        text.to_owned()
    }
}

/// One line per event in the period.
pub fn to_csv(rows: &[AuditRow], from: i64, to: i64) -> String {
    let mut out = String::from("seq,at,user,action,resource,outcome\n");
    for row in rows.iter().filter(|row| row.at >= from && row.at < to) {
        let _ = writeln!(
            out,
            "{},{},{},{},{},{}",
            row.seq,
            crate::time::rfc3339(row.at),
            csv_field(&row.actor),
            csv_field(&row.action),
            csv_field(&row.resource),
            csv_field(&row.outcome)
        );
    }
    out
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// A readable, self-contained page: summary, a bar chart of activity per day (inline
/// SVG), activity per user, denied attempts, deletions and exports.
pub fn to_html(review: &AccessReview) -> String {
    let mut chart = String::new();
    let max = review.per_day.values().copied().max().unwrap_or(1).max(1);
    let bar_width = 24;
    let width = (review.per_day.len().max(1) * (bar_width + 6) + 40) as u32;
    let _ = write!(
        chart,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="180" role="img" aria-label="events per day">"#
    );
    for (index, (day, count)) in review.per_day.iter().enumerate() {
        let height = (*count as f64 / max as f64 * 120.0).round() as u32;
        let x = 20 + index * (bar_width + 6);
        let _ = write!(
            chart,
            r##"<rect x="{x}" y="{}" width="{bar_width}" height="{height}" fill="#2b6cb0"><title>{}: {count}</title></rect><text x="{}" y="170" font-size="9" text-anchor="middle">{}</text>"##,
            140 - height,
            escape(day),
            x + bar_width / 2,
            escape(&day[5..])
        );
    }
    chart.push_str("</svg>");
    let table = |title: &str, events: &[ReviewEvent]| -> String {
        let mut html = format!("<h2>{} ({})</h2>", escape(title), events.len());
        if events.is_empty() {
            html.push_str("<p>None.</p>");
            return html;
        }
        html.push_str("<table><tr><th>#</th><th>time</th><th>user</th><th>action</th><th>resource</th><th>outcome</th></tr>");
        for event in events {
            let _ = write!(
                html,
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                event.seq,
                escape(&event.at),
                escape(&event.user),
                escape(&event.action),
                escape(&event.resource),
                escape(&event.outcome)
            );
        }
        html.push_str("</table>");
        html
    };
    let mut users = String::from(
        "<h2>Activity by user</h2><table><tr><th>user (pseudonym)</th><th>actions</th></tr>",
    );
    for user in &review.by_user {
        let actions: Vec<String> = user
            .actions
            .iter()
            .map(|(action, count)| format!("{} × {count}", escape(action)))
            .collect();
        let _ = write!(
            users,
            "<tr><td>{}</td><td>{}</td></tr>",
            escape(&user.user),
            actions.join(", ")
        );
    }
    users.push_str("</table>");
    format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>Access review {tenant}</title>\
         <style>body{{font-family:sans-serif;margin:2em;color:#222}}table{{border-collapse:collapse}}td,th{{border:1px solid #ccc;padding:4px 8px;font-size:13px}}</style></head>\
         <body><h1>Access review</h1><p>Tenant <code>{tenant}</code>, {from} to {to}: {total} events.</p>\
         <h2>Activity per day</h2>{chart}{users}{denied}{deletions}{exports}</body></html>",
        tenant = escape(&review.tenant_id),
        from = escape(&review.from),
        to = escape(&review.to),
        total = review.total_events,
        denied = table("Denied attempts", &review.denied),
        deletions = table("Deletions", &review.deletions),
        exports = table("Downloads and exports", &review.exports),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(seq: i64, at: i64, actor: &str, action: &str, outcome: &str) -> AuditRow {
        AuditRow {
            seq,
            at,
            actor: actor.into(),
            action: action.into(),
            resource: "d_1, \"x\"".into(),
            outcome: outcome.into(),
        }
    }

    #[test]
    fn quarters_and_reviews() {
        let (start, end) = quarter_bounds("2026Q4").unwrap();
        assert_eq!(crate::time::rfc3339(start), "2026-10-01T00:00:00Z");
        assert_eq!(crate::time::rfc3339(end), "2027-01-01T00:00:00Z");
        assert!(quarter_bounds("2026Q5").is_none());
        let rows = [
            row(1, start + 10, "u_a", "ask", "ok"),
            row(2, start + 86_400, "u_b", "access.cross_tenant", "denied"),
            row(3, start + 86_500, "u_a", "document.delete", "ok"),
            row(4, end + 5, "u_a", "ask", "ok"),
        ];
        let review = build("t_1", &rows, start, end);
        assert_eq!(review.total_events, 3);
        assert_eq!(review.denied.len(), 1);
        assert_eq!(review.deletions.len(), 1);
        assert_eq!(review.per_day.len(), 2);
        let csv = to_csv(&rows, start, end);
        assert_eq!(csv.lines().count(), 4);
        assert!(csv.contains("\"d_1, \"\"x\"\"\""));
        let html = to_html(&review);
        assert!(html.contains("<svg") && html.contains("<rect"));
        assert!(
            !html.contains("http://") || html.matches("http://").count() == 1,
            "only the SVG namespace"
        );
        assert!(!html.contains("<script") && !html.contains("src="));
    }
}
