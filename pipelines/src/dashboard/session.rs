//! dashboard/session.rs: the page's login: the API token, typed once into the login form, is
//! exchanged for a random session id in an `HttpOnly; SameSite=Strict` cookie, so no script on the
//! page can read it and no other site's page can send it. Sessions live in memory (a restart logs
//! everyone out), expire after [`TTL`], and at most [`MAX`] are kept (the oldest goes first).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use axum::http::{HeaderMap, header};
use rand::Rng;
use sha2::{Digest, Sha256};

/// The cookie's name.
pub const COOKIE: &str = "pipelines_session";
/// How long a login lasts.
pub const TTL: Duration = Duration::from_secs(12 * 3600);
/// Sessions kept at once.
const MAX: usize = 64;

/// The logged-in sessions, by the SHA-256 of their id (a lookup reveals nothing about an id).
#[derive(Default)]
pub struct Sessions {
    live: Mutex<HashMap<[u8; 32], Instant>>,
}

fn digest(id: &str) -> [u8; 32] {
    Sha256::digest(id.as_bytes()).into()
}

impl Sessions {
    /// A new session; returns its id (the cookie's value).
    pub fn open(&self) -> String {
        let id = hex::encode(rand::rng().random::<[u8; 32]>());
        let now = Instant::now();
        let mut live = self.live.lock().expect("the sessions are not poisoned");
        live.retain(|_, expires| *expires > now);
        if live.len() >= MAX
            && let Some(oldest) = live.iter().min_by_key(|(_, e)| **e).map(|(k, _)| *k)
        {
            live.remove(&oldest);
        }
        live.insert(digest(&id), now + TTL);
        id
    }

    /// Whether `headers` carry the cookie of a live session.
    pub fn valid(&self, headers: &HeaderMap) -> bool {
        let Some(id) = cookie(headers) else {
            return false;
        };
        let live = self.live.lock().expect("the sessions are not poisoned");
        live.get(&digest(id)).is_some_and(|e| *e > Instant::now())
    }

    /// Ends the session `headers` carry.
    pub fn close(&self, headers: &HeaderMap) {
        if let Some(id) = cookie(headers) {
            self.live
                .lock()
                .expect("the sessions are not poisoned")
                .remove(&digest(id));
        }
    }
}

/// The session id in the request's `Cookie` headers.
fn cookie(headers: &HeaderMap) -> Option<&str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == COOKIE)
        .map(|(_, value)| value)
}

/// The `Set-Cookie` value that logs in with session `id`.
pub fn set_cookie(id: &str) -> String {
    format!(
        "{COOKIE}={id}; HttpOnly; SameSite=Strict; Path=/; Max-Age={}",
        TTL.as_secs()
    )
}

/// The `Set-Cookie` value that logs out.
pub fn clear_cookie() -> String {
    format!("{COOKIE}=; HttpOnly; SameSite=Strict; Path=/; Max-Age=0")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with_cookie(value: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(header::COOKIE, value.parse().unwrap());
        h
    }

    #[test]
    fn a_session_is_valid_until_closed() {
        let s = Sessions::default();
        let id = s.open();
        let h = with_cookie(&format!("other=1; {COOKIE}={id}"));
        assert!(s.valid(&h));
        assert!(!s.valid(&with_cookie(&format!("{COOKIE}=not-{id}"))));
        assert!(!s.valid(&HeaderMap::new()));
        s.close(&h);
        assert!(!s.valid(&h));
    }

    #[test]
    fn the_cookie_is_http_only_and_strict() {
        let c = set_cookie("abc");
        assert!(
            c.contains("HttpOnly") && c.contains("SameSite=Strict"),
            "{c}"
        );
    }

    #[test]
    fn sessions_are_bounded() {
        let s = Sessions::default();
        let first = s.open();
        for _ in 0..MAX {
            s.open();
        }
        assert!(!s.valid(&with_cookie(&format!("{COOKIE}={first}"))));
        assert_eq!(s.live.lock().unwrap().len(), MAX);
    }
}
