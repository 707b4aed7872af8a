//! dashboard/page.rs: the watcher's dashboard as HTML, a pure function of a [`View`] (what the
//! status report, the held items, the outbox and the engine say at one moment). The page is the
//! header, the "Run now" form and the `#live` part, which the script refreshes on its own.
//! Everything from the network (titles, URLs, errors, run messages) goes through
//! [`html::net`]/[`html::link`], everything else through [`html::esc`].

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use pipelines::dashboard::html::stages;

use super::html::{badge, button, esc, link, maybe_time, net, query, state_badge, time};
use super::manual::{ConfigOptions, DEFAULT, ManualRun};
use super::runs::RunView;
use crate::delivery::{Phase, RunFollow};
use crate::hold::HeldSource;
use crate::status::{DeliveryStatus, SourceStatus, StatusReport};

/// The anti-cross-site header the buttons send (see `control/guard.rs`).
const HEADER: &str = crate::control::HEADER;

/// Where the script fetches `#live` from.
pub const LIVE_PATH: &str = "/dashboard/live";

/// How many links of a batch the page lists (the config has them all).
pub const LINKS_SHOWN: usize = 5;

/// Everything one rendering shows.
pub struct View {
    pub now: DateTime<Utc>,
    pub status: StatusReport,
    pub held: Vec<HeldSource>,
    /// Batch id → its first [`LINKS_SHOWN`] article URLs.
    pub links: HashMap<String, Vec<String>>,
    /// Run handle (as `status` shows it) → what the engine says now.
    pub runs: HashMap<String, RunView>,
    pub manual: Vec<ManualRun>,
    /// "the `demo` chain on the embedded runner", as the header says it.
    pub target: String,
}

/// The "Run now" form: its one-time key and the configs it offers.
pub struct Form {
    pub key: String,
    pub options: ConfigOptions,
}

/// The whole page.
pub fn page(view: &View, form: &Form) -> String {
    let s = &view.status;
    let body = format!(
        r#"<header><h1>Article watcher</h1>
<span>{sources} source(s) · {pending} pending · {failed} failed · {done} done · {staged} waiting for the batch window</span>
<span class="muted">starts {target}</span></header>
<section id="run-now"><h2>Run now</h2>{form}<div id="flash" role="status"></div></section>
<div id="live">{live}</div>"#,
        sources = s.sources.len(),
        pending = s.pending,
        failed = s.failed,
        done = s.done,
        staged = s.staged,
        target = esc(&view.target),
        form = run_form(form),
        live = live(view),
    );
    pipelines::dashboard::html::document("Article watcher", HEADER, LIVE_PATH, &body)
}

fn run_form(form: &Form) -> String {
    let mut options = String::new();
    for (i, name) in form.options.generated.iter().enumerate() {
        let latest = if i == 0 { " (latest generated)" } else { "" };
        options.push_str(&format!(
            r#"<option value="{v}"{sel}>{v}{latest}</option>"#,
            v = esc(name),
            sel = if i == 0 { " selected" } else { "" },
        ));
    }
    if let Some(label) = &form.options.default {
        let sel = if form.options.generated.is_empty() {
            " selected"
        } else {
            ""
        };
        options.push_str(&format!(
            r#"<option value="{DEFAULT}"{sel}>{}</option>"#,
            esc(label)
        ));
    }
    if options.is_empty() {
        return r#"<p class="muted">No config to start with yet: no generated config, and the chain has no <code>default_config</code>.</p>"#.into();
    }
    format!(
        r#"<form class="inline" id="run-form" data-post="/dashboard/run" method="post" action="/dashboard/run">
<label>config <select name="config">{options}</select></label>
<input type="hidden" name="key" value="{key}">
<button type="submit" class="primary">Run now</button>
<small class="muted">a double click starts one run: the form's key is the run's idempotency key</small>
</form>"#,
        key = esc(&form.key)
    )
}

/// The part the script refreshes: manual runs, sources, held items, batches.
pub fn live(view: &View) -> String {
    let mut out = String::new();
    out.push_str(&format!(
        r#"<p class="muted">updated {}</p>"#,
        time(view.now, view.now)
    ));
    out.push_str(&manual_runs(view));
    out.push_str(&sources(view));
    out.push_str(&held(view));
    out.push_str(&batches(view));
    if !view.status.unreadable.is_empty() {
        out.push_str(&format!(
            r#"<section><h2>Unreadable store records</h2><p class="err">{} record(s) skipped: {}. They block nothing; the log has each error.</p></section>"#,
            view.status.unreadable.len(),
            esc(&view.status.unreadable.iter().take(10).cloned().collect::<Vec<_>>().join(", "))
        ));
    }
    out
}

fn manual_runs(view: &View) -> String {
    if view.manual.is_empty() {
        return String::new();
    }
    let mut rows = String::new();
    for m in &view.manual {
        let handle = m.handle.to_string();
        rows.push_str(&format!(
            r#"<tr data-run="{h}"><td>{started}</td><td>{config}</td><td><code>{h}</code></td><td>{state}</td></tr>"#,
            h = net(&handle),
            started = time(m.started_at, view.now),
            config = esc(&m.config),
            state = run_state(view.runs.get(&handle), None),
        ));
    }
    format!(
        r#"<section id="manual"><h2>Runs started here</h2><table><thead><tr><th>started</th><th>config</th><th>run</th><th>state</th></tr></thead><tbody>{rows}</tbody></table></section>"#
    )
}

/// A run's state: the engine's answer now (with stages on the pipelines runner), else what the
/// watcher last stored.
fn run_state(live: Option<&RunView>, stored: Option<&DeliveryStatus>) -> String {
    let mut out = String::new();
    match live {
        Some(v) if v.state.is_some() => {
            out.push_str(&format!(
                r#"<span class="run-state">{}</span>"#,
                state_badge(v.state.as_deref().unwrap_or_default())
            ));
            if let Some(m) = &v.message {
                out.push_str(&format!(r#" <span class="err">{}</span>"#, net(m)));
            }
            out.push_str(&stages(&v.stages, &|_| None));
        }
        _ => {
            if let Some(d) = stored {
                if let Some(state) = d.run_state.as_deref() {
                    out.push_str(&format!(
                        r#"<span class="run-state">{}</span>"#,
                        state_badge(state)
                    ));
                }
                if let Some(m) = &d.run_message {
                    out.push_str(&format!(r#" <span class="err">{}</span>"#, net(m)));
                }
            } else {
                out.push_str(&badge("off", "not asked yet"));
            }
            if let Some(e) = live.and_then(|v| v.error.as_deref()) {
                out.push_str(&format!(
                    r#" <small class="muted">engine: {}</small>"#,
                    net(e)
                ));
            }
        }
    }
    out
}

fn source_flags(s: &SourceStatus) -> (String, &'static str) {
    let mut flags = Vec::new();
    let mut row = "";
    if s.gone {
        flags.push(badge("bad", "GONE (410)"));
        row = "bad";
    }
    if s.failing {
        flags.push(badge("bad", "FAILING"));
        row = "bad";
    }
    if s.held > 0 {
        flags.push(badge("warn", &format!("HELD {}", s.held)));
        if row.is_empty() {
            row = "warn";
        }
    }
    if flags.is_empty() {
        flags.push(badge("ok", "ok"));
    }
    if let Some(push) = &s.push {
        let (class, text) = push.badge();
        flags.push(badge(class, text));
    }
    (flags.join(" "), row)
}

fn sources(view: &View) -> String {
    let mut rows = String::new();
    for s in &view.status.sources {
        let (flags, row) = source_flags(s);
        let mut url = link(&s.url);
        if let Some(moved) = &s.current_url {
            url.push_str(&format!("<br><small>moved to {}</small>", link(moved)));
        }
        if let Some(found) = &s.discovered_feed {
            url.push_str(&format!("<br><small>feed found: {}</small>", link(found)));
        }
        let poll = format!(
            "/dashboard/poll?{}",
            query(&[("source", &s.url), ("author", &s.author)])
        );
        let mut failures = s.consecutive_failures.to_string();
        if s.links_refused > 0 {
            failures.push_str(&format!(
                "<br><small>{} link(s) refused (private network)</small>",
                s.links_refused
            ));
        }
        rows.push_str(&format!(
            r#"<tr class="{row}" data-source="{src}"><td>{author}</td><td>{url}</td><td>{flags}</td><td>{last}<br><small>{result}</small></td><td>{known}</td><td>{failures}</td><td>{next}<br><small>{why}</small></td><td>{button}</td></tr>"#,
            src = esc(&s.url),
            author = esc(&s.author),
            last = maybe_time(s.last_poll, view.now, "never"),
            result = s.last_result.as_deref().map(net).unwrap_or_default(),
            known = s.items_known,
            next = maybe_time(s.next_due, view.now, "-"),
            why = s.next_due_reason.as_deref().map(esc).unwrap_or_default(),
            button = button("Poll now", &poll, None),
        ));
    }
    format!(
        r#"<section id="sources"><h2>Sources ({n})</h2><table><thead><tr><th>author</th><th>URL</th><th>state</th><th>last poll and result</th><th>items known</th><th>failures</th><th>next poll and why</th><th></th></tr></thead><tbody>{rows}</tbody></table></section>"#,
        n = view.status.sources.len()
    )
}

fn held(view: &View) -> String {
    if view.held.is_empty() {
        return String::new();
    }
    let mut out = String::from(
        r#"<section id="held"><h2>Held items</h2><p class="muted">A poll found so many new items that starting runs for them waited for you: release them to deliver them once, or discard them for good (they stay known).</p>"#,
    );
    for h in &view.held {
        let q = query(&[("source", &h.url), ("author", &h.author)]);
        out.push_str(&format!(
            r#"<h3>{author} · {url} · {n} item(s) {release} {discard}</h3><ul>"#,
            author = esc(&h.author),
            url = link(&h.url),
            n = h.items.len(),
            release = button(
                "Release",
                &format!("/release?{q}"),
                Some("Deliver these held items (one batch run)?")
            ),
            discard = button(
                "Discard",
                &format!("/discard?{q}"),
                Some("Drop these held items for good?")
            ),
        ));
        for item in h.items.iter().take(20) {
            out.push_str(&format!(
                "<li>{} {} <small>found {}</small></li>",
                item.title
                    .as_deref()
                    .map(net)
                    .unwrap_or_else(|| "(no title)".into()),
                item.url.as_deref().map(link).unwrap_or_default(),
                time(item.found_at, view.now)
            ));
        }
        if h.items.len() > 20 {
            out.push_str(&format!(
                "<li class=\"muted\">and {} more</li>",
                h.items.len() - 20
            ));
        }
        out.push_str("</ul>");
    }
    out.push_str("</section>");
    out
}

fn batches(view: &View) -> String {
    let mut rows = String::new();
    for d in view.status.deliveries.iter().rev() {
        rows.push_str(&batch_row(view, d));
    }
    if rows.is_empty() {
        rows = r#"<tr><td colspan="6" class="muted">no batches yet</td></tr>"#.into();
    }
    format!(
        r#"<section id="batches"><h2>Batches</h2><table><thead><tr><th>batch</th><th>articles</th><th>delivery</th><th>run</th><th>run state</th><th></th></tr></thead><tbody>{rows}</tbody></table></section>"#
    )
}

fn batch_row(view: &View, d: &DeliveryStatus) -> String {
    let follow = d.run_follow();
    let row = match (d.state, follow.ended_badly()) {
        (Phase::Failed, _) | (_, true) => "bad",
        _ => "",
    };
    let mut articles = format!("{} link(s) for {}", d.links, esc(&d.authors.join(", ")));
    if d.revision > 0 {
        articles.push_str(&format!(
            " <small>updated content, revision {}</small>",
            d.revision
        ));
    }
    articles.push_str("<ul>");
    for url in view.links.get(&d.batch_id).into_iter().flatten() {
        articles.push_str(&format!("<li>{}</li>", link(url)));
    }
    if d.links > LINKS_SHOWN {
        articles.push_str(&format!(
            "<li class=\"muted\">and {} more</li>",
            d.links - LINKS_SHOWN
        ));
    }
    let config = format!("/dashboard/config?{}", query(&[("batch", &d.batch_id)]));
    articles.push_str(&format!(
        r#"</ul><a href="{}">config</a> <small class="muted">{}</small>"#,
        esc(&config),
        esc(&d.config_path)
    ));
    let state = match d.state {
        Phase::Pending => badge("run", "pending"),
        Phase::Failed => badge("bad", "FAILED"),
        Phase::Done => badge("ok", "delivered"),
    };
    let mut delivery = format!("{state} attempts {}", d.attempts);
    if let Some(next) = d.next_attempt_at {
        delivery.push_str(&format!(
            "<br><small>next attempt {}</small>",
            time(next, view.now)
        ));
    }
    if let Some(e) = &d.last_error {
        delivery.push_str(&format!(r#"<br><span class="err">{}</span>"#, net(e)));
    }
    let run = d
        .run
        .as_deref()
        .map(|r| format!("<code>{}</code>", net(r)))
        .unwrap_or_default();
    let live = d.run.as_deref().and_then(|r| view.runs.get(r));
    let run_state = if d.run.is_some() {
        run_state(live, Some(d))
    } else {
        String::new()
    };
    let batch = query(&[("batch", &d.batch_id)]);
    let mut actions = String::new();
    if d.state == Phase::Failed {
        actions.push_str(&button("Retry", &format!("/retry?{batch}"), None));
    }
    if follow == RunFollow::Lost {
        actions.push_str(&button(
            "Redeliver anyway",
            &format!("/redeliver?{batch}&force=true"),
            Some("The engine may still be running this batch. Start it again all the same?"),
        ));
    } else if follow.ended_badly() {
        actions.push_str(&button("Redeliver", &format!("/redeliver?{batch}"), None));
    }
    format!(
        r#"<tr class="{row}" data-batch="{id}"><td><code>{id}</code><br>{created}</td><td>{articles}</td><td>{delivery}</td><td>{run}</td><td>{run_state}</td><td>{actions}</td></tr>"#,
        id = esc(&d.batch_id),
        created = time(d.created_at, view.now),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hold::HeldItem;

    const HOSTILE: &str = r#"<script>alert("x")</script><img src=x onerror=alert(1)>"#;

    fn hostile_view() -> View {
        let now = Utc::now();
        let source = SourceStatus {
            author: "Ruben".into(),
            url: "https://example.com/feed".into(),
            last_poll: Some(now),
            last_result: Some(format!("failed: server said {HOSTILE}")),
            items_known: 3,
            consecutive_failures: 5,
            failing: true,
            next_due: Some(now),
            next_due_reason: Some("backoff".into()),
            current_url: Some(format!("javascript:alert(1)//{HOSTILE}")),
            discovered_feed: None,
            held: 1,
            push: None,
            links_refused: 0,
            gone: true,
        };
        let delivery = DeliveryStatus {
            batch_id: "b1".into(),
            state: Phase::Done,
            authors: vec!["Ruben".into()],
            links: 1,
            created_at: now,
            attempts: 1,
            next_attempt_at: None,
            last_error: Some(HOSTILE.into()),
            run: Some("pipelines:r1".into()),
            run_state: Some("lost".into()),
            run_message: Some(HOSTILE.into()),
            config_path: "/x/b1.yaml".into(),
            revision: 0,
        };
        View {
            now,
            status: StatusReport {
                sources: vec![source],
                staged: 0,
                pending: 0,
                failed: 0,
                done: 1,
                deliveries: vec![delivery],
                unreadable: vec![],
                push_on: false,
            },
            held: vec![HeldSource {
                author: "Ruben".into(),
                url: "https://example.com/feed".into(),
                items: vec![HeldItem {
                    url: Some("javascript:alert(document.cookie)".into()),
                    title: Some(HOSTILE.into()),
                    found_at: now,
                }],
            }],
            links: HashMap::from([(
                "b1".into(),
                vec![format!("https://example.com/a?q={HOSTILE}")],
            )]),
            runs: HashMap::new(),
            manual: vec![],
            target: "the `demo` chain".into(),
        }
    }

    #[test]
    fn network_text_is_escaped_and_only_web_urls_are_links() {
        let form = Form {
            key: "manual-0123456789abcdef".into(),
            options: ConfigOptions {
                generated: vec![],
                default: Some("default_config".into()),
            },
        };
        let html = page(&hostile_view(), &form);
        assert!(
            !html.contains("<script>alert") && !html.contains("<img src=x"),
            "{html}"
        );
        assert!(!html.contains(r#"href="javascript:"#), "{html}");
        assert!(
            html.contains("&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;"),
            "{html}"
        );
        // The highlights and the lost run's button.
        for want in [
            "GONE (410)",
            "FAILING",
            "HELD 1",
            ">Redeliver anyway</button>",
            ">Release</button>",
            ">Discard</button>",
        ] {
            assert!(html.contains(want), "{want}: {html}");
        }
    }
}
