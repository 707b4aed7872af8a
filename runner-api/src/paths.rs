//! The REST paths, written once: route templates for the server (axum's `{name}` captures) and
//! URL builders for clients, which percent-encode each segment and keep the base URL's own path
//! (a runner behind a proxy at `https://host/runner/` gets `https://host/runner/api/v1/...`).

use url::Url;

/// `GET`: liveness and the number of chains; no token needed.
pub const HEALTHZ: &str = "/healthz";
/// Prometheus metrics (text format), behind the token like the API.
pub const METRICS: &str = "/metrics";
/// `GET`: the chains the runner loaded ([`ChainList`](crate::ChainList)).
pub const CHAINS: &str = "/api/v1/chains";
/// `POST` a [`RunRequest`](crate::RunRequest): 201 with a new [`Run`](crate::Run), 200 with the
/// run the idempotency key already started, 409 when that key came with another request.
pub const CHAIN_RUNS: &str = "/api/v1/chains/{chain}/runs";
/// `GET`: a page of runs, newest first ([`RunQuery`](crate::RunQuery) →
/// [`RunPage`](crate::RunPage)).
pub const RUNS: &str = "/api/v1/runs";
/// `GET`: one [`Run`](crate::Run).
pub const RUN: &str = "/api/v1/runs/{id}";
/// `POST`: cancels a run; 409 if it already finished.
pub const RUN_CANCEL: &str = "/api/v1/runs/{id}/cancel";
/// `GET`: a stage's log as text, from byte `?offset=N`.
pub const STAGE_LOG: &str = "/api/v1/runs/{id}/stages/{stage}/log";
/// `GET`: every gate's counters and every budget ([`GateReport`](crate::GateReport));
/// `?chain=NAME` for one chain.
pub const GATES: &str = "/api/v1/gates";

/// The segments every API path starts with.
const API: [&str; 2] = ["api", "v1"];

/// The path of run `id` alone (the `Location` of a created run).
pub fn run_path(id: &str) -> String {
    RUN.replace("{id}", id)
}

/// `base` + [`CHAINS`].
pub fn chains(base: &Url) -> Url {
    join(base, &["chains"])
}

/// `base` + [`CHAIN_RUNS`] for `chain`.
pub fn chain_runs(base: &Url, chain: &str) -> Url {
    join(base, &["chains", chain, "runs"])
}

/// `base` + [`RUNS`].
pub fn runs(base: &Url) -> Url {
    join(base, &["runs"])
}

/// `base` + [`RUN`] for `id`.
pub fn run(base: &Url, id: &str) -> Url {
    join(base, &["runs", id])
}

/// `base` + [`RUN_CANCEL`] for `id`.
pub fn run_cancel(base: &Url, id: &str) -> Url {
    join(base, &["runs", id, "cancel"])
}

/// `base` + [`STAGE_LOG`] for `id` and `stage`.
pub fn stage_log(base: &Url, id: &str, stage: &str) -> Url {
    join(base, &["runs", id, "stages", stage, "log"])
}

/// `base` + [`GATES`].
pub fn gates(base: &Url) -> Url {
    join(base, &["gates"])
}

/// `base` with its query dropped and the API segments plus `segments` appended, each encoded.
fn join(base: &Url, segments: &[&str]) -> Url {
    let mut url = base.clone();
    url.set_query(None);
    url.set_fragment(None);
    if let Ok(mut path) = url.path_segments_mut() {
        path.pop_if_empty().extend(API).extend(segments);
    }
    url
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builders_match_the_route_templates() {
        let base = Url::parse("http://127.0.0.1:8731").unwrap();
        let path = |url: Url| url.path().to_owned();
        assert_eq!(path(chains(&base)), CHAINS);
        assert_eq!(path(runs(&base)), RUNS);
        assert_eq!(path(gates(&base)), GATES);
        assert_eq!(
            path(chain_runs(&base, "demo")),
            CHAIN_RUNS.replace("{chain}", "demo")
        );
        assert_eq!(path(run(&base, "r1")), run_path("r1"));
        assert_eq!(
            path(run_cancel(&base, "r1")),
            RUN_CANCEL.replace("{id}", "r1")
        );
        assert_eq!(
            path(stage_log(&base, "r1", "etl")),
            STAGE_LOG.replace("{id}", "r1").replace("{stage}", "etl")
        );
    }

    #[test]
    fn builders_keep_the_base_path_and_encode_segments() {
        let base = Url::parse("https://host/runner/?x=1").unwrap();
        assert_eq!(
            run(&base, "a/b c").as_str(),
            "https://host/runner/api/v1/runs/a%2Fb%20c"
        );
    }
}
