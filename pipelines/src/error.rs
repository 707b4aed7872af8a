//! The library's top-level error: what can stop the runner or a CLI command. Errors of one
//! concern live beside it (`ChainErrors`, `StateError`, `SubmitError`, ...) and are wrapped here.

use std::net::SocketAddr;
use std::path::PathBuf;

use crate::chain::ChainErrors;
use crate::client::ClientError;
use crate::engine::OpenError;
use crate::engine::{CancelError, SubmitError};
use crate::state::StateError;
use crate::token::TokenError;

/// Anything that stops the runner or a command.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Chains(#[from] ChainErrors),
    #[error("cannot create the state directory `{path}`; check the path and its permissions")]
    StateDir {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    State(#[from] StateError),
    #[error(transparent)]
    Token(#[from] TokenError),
    #[error("cannot read the listener's local address")]
    ListenerAddr(#[source] std::io::Error),
    #[error(
        "refusing to listen on `{addr}`, which is not a loopback address; pass `--allow-remote` to expose the API (bearer token required) beyond this machine"
    )]
    RemoteListen { addr: SocketAddr },
    #[error(
        "cannot listen on `{addr}`; is another process using the port? choose another with `--listen`"
    )]
    Bind {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("the HTTP server failed")]
    Serve(#[source] std::io::Error),
    #[error(transparent)]
    Submit(#[from] SubmitError),
    #[error(transparent)]
    Cancel(#[from] CancelError),
    #[error(transparent)]
    Client(#[from] ClientError),
    #[error("cannot read config file `{path}`")]
    ConfigRead {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "config file `{path}` is not valid YAML or JSON; expected a mapping such as `parameters: {{...}}`"
    )]
    ConfigParse {
        path: PathBuf,
        #[source]
        source: serde_yaml_ng::Error,
    },
    #[error(
        "config file `{path}` does not hold a mapping at the top level; expected e.g. `parameters: {{user_full_name: ..., links: [...]}}`"
    )]
    ConfigNotMapping { path: PathBuf },
    #[error(
        "bad `--param` `{given}`; expected NAME=VALUE with NAME made of letters, digits, `_` or `-`"
    )]
    BadParam { given: String },
    #[error(
        "no API token: set PIPELINES_TOKEN or pass `--token-file` (the runner prints the file's path at startup)"
    )]
    NoToken,
    #[error("cannot read token file `{path}`")]
    TokenFile {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

impl From<OpenError> for Error {
    fn from(err: OpenError) -> Self {
        match err {
            OpenError::Chains(err) => Self::Chains(err),
            OpenError::StateDir { path, source } => Self::StateDir { path, source },
            OpenError::State(err) => Self::State(err),
        }
    }
}
