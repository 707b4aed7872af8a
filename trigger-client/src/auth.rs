//! Credentials a backend attaches to its calls: none, a static bearer token or basic auth, or
//! a login whose token the transport caches, renews shortly before the `expires_in` the login
//! gave, and refreshes once on a 401; and the hint an auth failure carries about which
//! credentials were refused.

use std::time::Duration;

use tokio::time::Instant;
use url::Url;

use crate::target::Secret;

/// Credentials a backend attaches to its calls.
pub(crate) enum Auth {
    None,
    Bearer(Secret),
    Basic {
        user: String,
        password: Secret,
    },
    /// A token obtained by a login call, cached, and refreshed once when a call gets a 401.
    Login(Login),
}

/// How to obtain a token: a POST whose JSON answer has `access_token`.
pub(crate) struct Login {
    pub url: Url,
    pub form: bool,
    pub fields: Vec<(&'static str, LoginField)>,
    /// Describes the credentials for hints ("user `admin` with the password from env var `X`").
    pub describe: String,
    /// The cached token (the transport fills and refreshes it).
    pub(crate) token: tokio::sync::Mutex<Option<Token>>,
}

/// A token a login returned, and when to stop using it.
#[derive(Clone)]
pub(crate) struct Token {
    pub secret: Secret,
    /// Renew before this instant (`None`: the token does not expire, or did not say).
    pub renew_at: Option<Instant>,
}

impl Token {
    /// A token obtained `now`, valid for `expires_in` (from the login's answer): it is renewed
    /// when a tenth of its lifetime (at most a minute) is left.
    pub(crate) fn new(secret: Secret, now: Instant, expires_in: Option<Duration>) -> Self {
        let renew_at = expires_in
            .map(|lifetime| now + lifetime - (lifetime / 10).min(Duration::from_secs(60)));
        Token { secret, renew_at }
    }

    /// Whether the token should be renewed before it is sent at `now`.
    pub(crate) fn is_stale(&self, now: Instant) -> bool {
        self.renew_at.is_some_and(|at| now >= at)
    }
}

/// One login form/JSON field.
pub(crate) enum LoginField {
    Plain(String),
    Secret(Secret),
}

impl Login {
    pub(crate) fn new(
        url: Url,
        form: bool,
        fields: Vec<(&'static str, LoginField)>,
        describe: String,
    ) -> Self {
        Login {
            url,
            form,
            fields,
            describe,
            token: tokio::sync::Mutex::new(None),
        }
    }
}

impl Auth {
    /// Which credentials a 401 (refused) or 403 (not allowed) answer refused.
    pub(crate) fn hint(&self, status: u16) -> String {
        let what = if status == 403 {
            "are not allowed to do this"
        } else {
            "were refused"
        };
        match self {
            Auth::None => "the server wants credentials; set `token_env` (or `username` and `password_env`) in the target".into(),
            Auth::Bearer(secret) => format!("the token from {} {what}; check or renew it", secret.origin()),
            Auth::Basic { user, password } => format!(
                "user `{user}` with the password from {} {what}",
                password.origin()
            ),
            Auth::Login(login) => format!("{} {what}", login.describe),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_renewed_before_they_expire() {
        let now = Instant::now();
        let secret = || Secret::new("t", "a test");
        let token = Token::new(secret(), now, Some(Duration::from_secs(3600)));
        assert!(!token.is_stale(now + Duration::from_secs(3539)));
        assert!(token.is_stale(now + Duration::from_secs(3540)));
        let short = Token::new(secret(), now, Some(Duration::from_secs(10)));
        assert!(!short.is_stale(now + Duration::from_secs(8)));
        assert!(short.is_stale(now + Duration::from_secs(9)));
        let forever = Token::new(secret(), now, None);
        assert!(!forever.is_stale(now + Duration::from_secs(1 << 30)));
    }
}
