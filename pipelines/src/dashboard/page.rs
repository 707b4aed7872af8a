//! dashboard/page.rs: the runner's page as HTML, pure functions of what the engine says: the
//! login form, the "Start a chain" form, the runs (newest first) and one run's stages with their
//! logs and a Cancel button. Chain files and run records are local, but stage errors and logs may
//! quote anything, so every piece of text goes through [`esc`].

use chrono::{DateTime, Utc};
use runner_api::Run;

use super::html::{badge, button, esc, maybe_time, query, stages, state_badge, time};
use crate::chain::Chains;

/// The header every POST of the page carries.
pub const HEADER: &str = "x-pipelines-dashboard";

/// Where the script fetches `#live` from (`?run=ID` adds that run's stages).
pub const LIVE_PATH: &str = "/dashboard/live";

/// The login page (`failed`: the last token was wrong).
pub fn login(failed: bool) -> String {
    let note = if failed {
        r#"<p class="err">That is not the runner's token.</p>"#
    } else {
        ""
    };
    let body = format!(
        r#"<header><h1>Pipelines runner</h1></header>
<section><h2>Log in</h2>{note}
<p>Paste the API token: <code>PIPELINES_TOKEN</code>, or the token file <code>serve</code> printed at startup. It is exchanged for a session cookie (HttpOnly, SameSite=Strict, 12 hours).</p>
<form method="post" action="/dashboard/login" class="inline">
<label>token <input type="password" name="token" autocomplete="current-password" required></label>
<button type="submit" class="primary">Log in</button></form></section>"#
    );
    super::html::document("Pipelines runner: log in", HEADER, "", &body)
}

/// The whole page: header, the start form, and `#live` (runs, and run `selected`'s stages).
pub fn page(
    chains: &Chains,
    key: &str,
    runs: &[Run],
    selected: Option<&Run>,
    now: DateTime<Utc>,
) -> String {
    let live_path = match selected {
        Some(run) => format!("{LIVE_PATH}?{}", query(&[("run", &run.id)])),
        None => LIVE_PATH.to_owned(),
    };
    let body = format!(
        r#"<header><h1>Pipelines runner</h1><span>{n} chain(s)</span>
<form method="post" action="/dashboard/logout"><button type="submit">Log out</button></form></header>
<section id="start"><h2>Start a chain</h2>{form}<div id="flash" role="status"></div></section>
<div id="live">{live}</div>"#,
        n = chains.len(),
        form = start_form(chains, key),
        live = live(runs, selected, now),
    );
    super::html::document("Pipelines runner", HEADER, &live_path, &body)
}

fn start_form(chains: &Chains, key: &str) -> String {
    let mut options = String::new();
    let mut names: Vec<_> = chains.iter().collect();
    names.sort_by_key(|c| c.name());
    for c in names {
        let default = c
            .default_config()
            .map(|p| format!(" (default_config {})", p.display()))
            .unwrap_or_else(|| " (no default_config: paste one)".into());
        options.push_str(&format!(
            r#"<option value="{n}">{n}{d}</option>"#,
            n = esc(c.name()),
            d = esc(&default)
        ));
    }
    format!(
        r#"<form id="start-form" data-post="/dashboard/start" method="post" action="/dashboard/start">
<p class="inline"><label>chain <select name="chain">{options}</select></label>
<button type="submit" class="primary">Start</button>
<small class="muted">a double click starts one run: the form's key is the run's idempotency key</small></p>
<label>config (YAML or JSON mapping; empty: the chain's default_config)<br>
<textarea name="config" rows="4" cols="80" spellcheck="false"></textarea></label>
<input type="hidden" name="key" value="{key}"></form>"#,
        key = esc(key)
    )
}

/// The part the script refreshes.
pub fn live(runs: &[Run], selected: Option<&Run>, now: DateTime<Utc>) -> String {
    let mut out = format!(r#"<p class="muted">updated {}</p>"#, time(now, now));
    if let Some(run) = selected {
        out.push_str(&run_detail(run, now));
    }
    let mut rows = String::new();
    for run in runs {
        let open = format!("/?{}", query(&[("run", &run.id)]));
        let done = run
            .stages
            .iter()
            .filter(|s| s.status == runner_api::StageStatus::Succeeded)
            .count();
        rows.push_str(&format!(
            r#"<tr class="{row}" data-run="{id}"><td><a href="{open}"><code>{id}</code></a></td><td>{chain}</td><td>{trigger}</td><td>{created}</td><td>{state} <small>{done}/{total} stages</small></td><td>{ended}</td></tr>"#,
            row = if run.status == runner_api::RunStatus::Failed { "bad" } else { "" },
            id = esc(&run.id),
            open = esc(&open),
            chain = esc(&run.chain),
            trigger = esc(&run.trigger.to_string()),
            created = time(run.created_at, now),
            state = state_badge(run.status.as_str()),
            total = run.stages.len(),
            ended = maybe_time(run.finished_at, now, "-"),
        ));
    }
    if rows.is_empty() {
        rows = r#"<tr><td colspan="6" class="muted">no runs yet</td></tr>"#.into();
    }
    out.push_str(&format!(
        r#"<section id="runs"><h2>Runs</h2><table><thead><tr><th>run</th><th>chain</th><th>trigger</th><th>created</th><th>state</th><th>ended</th></tr></thead><tbody>{rows}</tbody></table></section>"#
    ));
    out
}

fn run_detail(run: &Run, now: DateTime<Utc>) -> String {
    let id = query(&[("id", &run.id)]);
    let log = |stage: &str| {
        Some(format!(
            "/dashboard/log?{}",
            query(&[("id", &run.id), ("stage", stage)])
        ))
    };
    let cancel = if run.status.is_finished() {
        String::new()
    } else {
        button(
            "Cancel",
            &format!("/dashboard/cancel?{id}"),
            Some("Cancel this run? Running stages are stopped."),
        )
    };
    let error = run
        .error
        .as_deref()
        .map(|e| format!(r#"<p class="err">{}</p>"#, esc(e)))
        .unwrap_or_default();
    let key = run
        .idempotency_key
        .as_deref()
        .map(|k| format!(" · key <code>{}</code>", esc(k)))
        .unwrap_or_default();
    let stage_list = stages(&run.stages, &log).replacen("<details", "<details open", 1);
    format!(
        r#"<section id="run"><h2>Run <code>{rid}</code> of {chain} {state} {cancel}</h2>
<p>{trigger}, created {created}, started {started}, ended {ended}{key}<br><small class="muted">{dir}</small></p>{error}{stage_list}</section>"#,
        rid = esc(&run.id),
        chain = esc(&run.chain),
        state = state_badge(run.status.as_str()),
        trigger = badge("off", &run.trigger.to_string()),
        created = time(run.created_at, now),
        started = maybe_time(run.started_at, now, "-"),
        ended = maybe_time(run.finished_at, now, "-"),
        dir = esc(&run.run_dir.display().to_string()),
    )
}
