//! websub.rs: the `[websub]` table: where hubs reach the callback server (`callback_url`, the
//! public base, e.g. behind a reverse proxy), where it listens, the lease asked of hubs, the
//! safety poll of push-live sources, the push coalescing window and the callback server's
//! connection cap. Without the table, push is off.

use std::net::SocketAddr;
use std::time::Duration;

use serde::Deserialize;
use url::Url;

use super::ConfigProblem;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebsubSettings {
    /// The public base URL hubs can reach; callbacks are `<callback_url>/websub/<id>`.
    pub callback_url: Url,
    /// The callback server's address (meant to be reachable, unlike `[watcher] listen`).
    pub listen: SocketAddr,
    /// The lease asked of hubs (the one the hub grants is the one used).
    #[serde(default = "default_lease", with = "humantime_serde")]
    pub lease: Duration,
    /// While push is live, a source is still polled at least this often.
    #[serde(default = "default_safety_interval", with = "humantime_serde")]
    pub safety_interval: Duration,
    /// Pushes for one source within this window of the last push-triggered fetch fold into one
    /// more fetch.
    #[serde(default = "default_coalesce", with = "humantime_serde")]
    pub coalesce: Duration,
    /// Connections the callback server serves at once.
    #[serde(default = "default_max_connections")]
    pub max_connections: usize,
}

fn default_lease() -> Duration {
    Duration::from_secs(10 * 24 * 3600)
}

fn default_safety_interval() -> Duration {
    Duration::from_secs(6 * 3600)
}

fn default_coalesce() -> Duration {
    Duration::from_secs(1)
}

fn default_max_connections() -> usize {
    64
}

impl WebsubSettings {
    /// The problems of the table, each with its key.
    pub fn check(&self, problems: &mut Vec<ConfigProblem>) {
        if !matches!(self.callback_url.scheme(), "http" | "https")
            || self.callback_url.host_str().is_none()
        {
            problems.push(ConfigProblem::new(
                "websub.callback_url",
                "expected an http(s) URL hubs can reach, e.g. \"https://watcher.example.com\"",
            ));
        }
        if self.callback_url.query().is_some() || self.callback_url.fragment().is_some() {
            problems.push(ConfigProblem::new(
                "websub.callback_url",
                "expected a base URL without query or fragment",
            ));
        }
        if self.lease < Duration::from_secs(1) || self.lease > Duration::from_secs(365 * 24 * 3600)
        {
            problems.push(ConfigProblem::new(
                "websub.lease",
                "expected between 1s and 365 days",
            ));
        }
        if self.safety_interval < Duration::from_secs(60) {
            problems.push(ConfigProblem::new(
                "websub.safety_interval",
                "expected at least 1m: push-live sources are still polled this often",
            ));
        }
        if self.coalesce > Duration::from_secs(1) {
            problems.push(ConfigProblem::new(
                "websub.coalesce",
                "expected at most 1s: a push should reach a fetch within a second",
            ));
        }
        if !(1..=10_000).contains(&self.max_connections) {
            problems.push(ConfigProblem::new(
                "websub.max_connections",
                "expected between 1 and 10000",
            ));
        }
    }

    /// The callback URL of subscription `id`.
    pub fn callback(&self, id: &str) -> Url {
        let mut url = self.callback_url.clone();
        {
            let mut path = url
                .path_segments_mut()
                .expect("check: an http(s) URL has a path");
            path.pop_if_empty().push("websub").push(id);
        }
        url
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(base: &str) -> WebsubSettings {
        WebsubSettings {
            callback_url: Url::parse(base).unwrap(),
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            lease: default_lease(),
            safety_interval: default_safety_interval(),
            coalesce: default_coalesce(),
            max_connections: 64,
        }
    }

    #[test]
    fn callbacks_sit_under_the_base_path() {
        assert_eq!(
            settings("https://w.example").callback("ab12").as_str(),
            "https://w.example/websub/ab12"
        );
        assert_eq!(
            settings("https://w.example/push/")
                .callback("ab12")
                .as_str(),
            "https://w.example/push/websub/ab12"
        );
    }

    #[test]
    fn bad_values_are_named() {
        let mut s = settings("ftp://w.example/?x=1");
        s.coalesce = Duration::from_secs(5);
        let mut problems = Vec::new();
        s.check(&mut problems);
        let keys: Vec<_> = problems.iter().map(|p| p.key.as_str()).collect();
        assert_eq!(
            keys,
            [
                "websub.callback_url",
                "websub.callback_url",
                "websub.coalesce"
            ]
        );
    }
}
