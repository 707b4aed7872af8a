//! dashboard/html.rs: the building blocks both dashboards (this runner's and the watcher's) put
//! their pages together with: escaping (every piece of text goes through [`esc`], content and
//! attribute values alike), times shown relative and absolute, badges, the POST buttons the
//! page's script wires up, a run's per-stage progress, and the shared stylesheet and script.

use chrono::{DateTime, SecondsFormat, Utc};
use runner_api::{StageRun, StageStatus};

/// The stylesheet both pages link (served at [`STYLE_PATH`]).
pub const STYLE: &str = include_str!("style.css");
/// The script both pages load (served at [`SCRIPT_PATH`]): live refresh and the buttons.
pub const SCRIPT: &str = include_str!("dashboard.js");
pub const STYLE_PATH: &str = "/dashboard/style.css";
pub const SCRIPT_PATH: &str = "/dashboard/app.js";

/// Headers every dashboard response carries: no inline script runs (so text that escaped
/// escaping still could not), no framing (clickjacking), no sniffing, no caching, no referrer to other sites (`same-origin`:
/// with `no-referrer` a browser sends `Origin: null` on the page's own form posts).
pub const SECURITY_HEADERS: [(&str, &str); 5] = [
    (
        "content-security-policy",
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
    ),
    ("x-frame-options", "DENY"),
    ("x-content-type-options", "nosniff"),
    ("cache-control", "no-store"),
    ("referrer-policy", "same-origin"),
];

/// `text` with `& < > " '` escaped: safe in element content and in quoted attribute values.
pub fn esc(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// `pairs` percent-encoded as a query string (for the URLs the buttons POST to).
pub fn query(pairs: &[(&str, &str)]) -> String {
    url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(pairs)
        .finish()
}

/// "3m 10s ago", "in 2h", "now".
pub fn relative(t: DateTime<Utc>, now: DateTime<Utc>) -> String {
    let secs = (t - now).num_seconds();
    let span = |s: i64| {
        humantime::format_duration(std::time::Duration::from_secs(s.unsigned_abs()))
            .to_string()
            .split(' ')
            .take(2)
            .collect::<Vec<_>>()
            .join(" ")
    };
    match secs {
        -1..=1 => "now".into(),
        s if s < 0 => format!("{} ago", span(s)),
        s => format!("in {}", span(s)),
    }
}

/// A time both ways: "3m ago" and the absolute UTC time beside it, in a `<time>` element.
pub fn time(t: DateTime<Utc>, now: DateTime<Utc>) -> String {
    format!(
        r#"<time datetime="{}">{} <small>{}</small></time>"#,
        t.to_rfc3339_opts(SecondsFormat::Secs, true),
        esc(&relative(t, now)),
        t.format("%Y-%m-%d %H:%M:%S UTC")
    )
}

/// [`time`], or `none` (escaped) when there is no time.
pub fn maybe_time(t: Option<DateTime<Utc>>, now: DateTime<Utc>, none: &str) -> String {
    t.map_or_else(|| esc(none), |t| time(t, now))
}

/// A badge; `class` picks its colour: `ok`, `bad`, `warn`, `off`, `run`.
pub fn badge(class: &str, text: &str) -> String {
    format!(r#"<span class="badge {class}">{}</span>"#, esc(text))
}

/// The badge class of a run or stage state name.
pub fn state_class(state: &str) -> &'static str {
    match state {
        "succeeded" => "ok",
        "failed" | "lost" => "bad",
        "cancelled" | "skipped" | "deferred" => "warn",
        "running" | "queued" => "run",
        _ => "off",
    }
}

/// A badge for a run or stage state name.
pub fn state_badge(state: &str) -> String {
    badge(state_class(state), state)
}

/// A button that POSTs to `action` (the page's script adds the anti-cross-site header); with a
/// `confirm` question asked first.
pub fn button(label: &str, action: &str, confirm: Option<&str>) -> String {
    let confirm = confirm
        .map(|q| format!(r#" data-confirm="{}""#, esc(q)))
        .unwrap_or_default();
    format!(
        r#"<button type="button" data-post="{}"{confirm}>{}</button>"#,
        esc(action),
        esc(label)
    )
}

/// A run's stages as a compact list: each stage's state, attempts, exit code and error;
/// `log` gives a stage's log link when the page can show logs.
pub fn stages(stages: &[StageRun], log: &dyn Fn(&str) -> Option<String>) -> String {
    if stages.is_empty() {
        return String::new();
    }
    let done = stages
        .iter()
        .filter(|s| s.status == StageStatus::Succeeded)
        .count();
    let mut out = format!(
        r#"<details class="stages"><summary>{done}/{} stages done</summary><ol>"#,
        stages.len()
    );
    for s in stages {
        out.push_str(&format!(
            "<li>{} {}",
            state_badge(s.status.as_str()),
            esc(&s.name)
        ));
        if s.attempts > 1 {
            out.push_str(&format!(" <small>attempt {}</small>", s.attempts));
        }
        if let Some(code) = s.exit_code.filter(|c| *c != 0) {
            out.push_str(&format!(" <small>exit code {code}</small>"));
        }
        if let Some(e) = &s.error {
            out.push_str(&format!(r#" <span class="err">{}</span>"#, esc(e)));
        }
        if let Some(href) = log(&s.name) {
            out.push_str(&format!(r#" <a href="{}">log</a>"#, esc(&href)));
        }
        out.push_str("</li>");
    }
    out.push_str("</ol></details>");
    out
}

/// The page around `body`: the stylesheet, the script (live refresh of `#live` from `live`,
/// buttons that POST with `header: 1`), and a refresh every 10 s for readers without script.
pub fn document(title: &str, header: &str, live: &str, body: &str) -> String {
    format!(
        r#"<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title}</title>
<link rel="icon" href="data:,">
<link rel="stylesheet" href="{STYLE_PATH}">
<noscript><meta http-equiv="refresh" content="10"></noscript>
<script src="{SCRIPT_PATH}" defer></script>
</head><body data-header="{header}" data-live="{live}">
<noscript><p class="muted">Without JavaScript this page is read-only and reloads every 10 s: its buttons send a header (against other sites' forms) that only its script can add.</p></noscript>
{body}
</body></html>
"#,
        title = esc(title),
        header = esc(header),
        live = esc(live),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_and_attributes_are_escaped() {
        assert_eq!(
            esc(r#"<script>alert("x")</script> & 'y'"#),
            "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; &amp; &#39;y&#39;"
        );
        let b = button("Go <now>", "/retry?batch=a\"b", Some("sure's?"));
        assert!(b.contains(r#"data-post="/retry?batch=a&quot;b""#), "{b}");
        assert!(
            b.contains("sure&#39;s?") && b.contains("Go &lt;now&gt;"),
            "{b}"
        );
    }

    #[test]
    fn times_read_both_ways() {
        let now = DateTime::parse_from_rfc3339("2026-12-01T22:00:00Z")
            .unwrap()
            .to_utc();
        assert_eq!(
            time(now - chrono::Duration::seconds(190), now),
            r#"<time datetime="2026-12-01T21:56:50Z">3m 10s ago <small>2026-12-01 21:56:50 UTC</small></time>"#
        );
        assert_eq!(
            relative(now + chrono::Duration::seconds(7200), now),
            "in 2h"
        );
        assert_eq!(relative(now, now), "now");
    }

    #[test]
    fn stage_errors_and_names_are_escaped() {
        let mut stage = StageRun::queued("<b>etl</b>");
        stage.status = StageStatus::Failed;
        stage.exit_code = Some(2);
        stage.error = Some("<img src=x onerror=alert(1)>".into());
        let shown = stages(&[stage], &|name| Some(format!("/log?stage={name}")));
        assert!(!shown.contains("<img") && !shown.contains("<b>"), "{shown}");
        assert!(
            shown.contains("exit code 2") && shown.contains("0/1 stages done"),
            "{shown}"
        );
    }
}
