//! Credentials a backend attaches to its calls: none, a static bearer token or basic auth, or
//! a login whose token the transport caches and refreshes once on a 401; and the hint an
//! auth failure carries about which credentials were refused.

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
    pub(crate) token: tokio::sync::Mutex<Option<Secret>>,
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
