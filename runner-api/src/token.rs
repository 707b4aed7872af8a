//! How clients authenticate: `Authorization: Bearer <token>` on every `/api` call, the token taken
//! from [`TOKEN_ENV`] or, when the runner generated it, from [`TOKEN_FILE`] in its state directory.

/// The environment variable holding the runner's token, read by the runner and its clients.
pub const TOKEN_ENV: &str = "PIPELINES_TOKEN";

/// The file inside the runner's state directory the runner generates its token into (mode 0600)
/// when [`TOKEN_ENV`] is not set.
pub const TOKEN_FILE: &str = "api-token";
