//! A small client of this crate's REST API, for `pipelines run|runs --url` (talking to a runner
//! that holds the state directory). It only builds requests and reads responses.

use serde_json::json;

use crate::run::Run;
use crate::runner::RunRequest;
use crate::state::{RunFilter, RunPage};

/// Errors talking to a runner.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("cannot reach the runner at `{url}`; is `pipelines serve` running there?")]
    Connect {
        url: String,
        #[source]
        source: reqwest::Error,
    },
    #[error("the runner answered {status} for `{url}`: {message}")]
    Status {
        url: String,
        status: u16,
        message: String,
    },
    #[error("the runner's answer for `{url}` is not what this version expects")]
    Decode {
        url: String,
        #[source]
        source: reqwest::Error,
    },
}

/// A REST client bound to one runner and token.
#[derive(Debug, Clone)]
pub struct Client {
    http: reqwest::Client,
    base: String,
    token: String,
}

impl Client {
    /// `base` is the runner's URL, e.g. `http://127.0.0.1:8731`.
    pub fn new(base: &str, token: &str) -> Self {
        Self {
            http: reqwest::Client::new(),
            base: base.trim_end_matches('/').to_owned(),
            token: token.to_owned(),
        }
    }

    /// Starts a run; the flag is `true` if it was created, `false` if the key named it already.
    pub async fn create_run(
        &self,
        chain: &str,
        request: &RunRequest,
    ) -> Result<(Run, bool), ClientError> {
        let url = format!("{}/api/v1/chains/{chain}/runs", self.base);
        let body = json!({
            "config": request.config,
            "idempotency_key": request.idempotency_key,
            "params": request.params,
        });
        let response = self.send(self.http.post(&url).json(&body), &url).await?;
        let created = response.status() == reqwest::StatusCode::CREATED;
        Ok((decode(response, &url).await?, created))
    }

    pub async fn run(&self, id: &str) -> Result<Run, ClientError> {
        let url = format!("{}/api/v1/runs/{id}", self.base);
        let response = self.send(self.http.get(&url), &url).await?;
        decode(response, &url).await
    }

    pub async fn runs(&self, filter: &RunFilter) -> Result<RunPage, ClientError> {
        let url = format!("{}/api/v1/runs", self.base);
        let mut query = vec![("limit", filter.limit.to_string())];
        if let Some(chain) = &filter.chain {
            query.push(("chain", chain.clone()));
        }
        if let Some(status) = filter.status {
            query.push(("status", status.to_string()));
        }
        if let Some(cursor) = &filter.cursor {
            query.push(("cursor", cursor.clone()));
        }
        let response = self.send(self.http.get(&url).query(&query), &url).await?;
        decode(response, &url).await
    }

    async fn send(
        &self,
        request: reqwest::RequestBuilder,
        url: &str,
    ) -> Result<reqwest::Response, ClientError> {
        let response = request
            .bearer_auth(&self.token)
            .send()
            .await
            .map_err(|source| ClientError::Connect {
                url: url.to_owned(),
                source,
            })?;
        let status = response.status();
        if status.is_success() {
            return Ok(response);
        }
        let text = response.text().await.unwrap_or_default();
        let message = serde_json::from_str::<serde_json::Value>(&text)
            .ok()
            .and_then(|value| {
                value
                    .get("error")
                    .and_then(|e| e.as_str())
                    .map(str::to_owned)
            })
            .unwrap_or(text);
        Err(ClientError::Status {
            url: url.to_owned(),
            status: status.as_u16(),
            message,
        })
    }
}

async fn decode<T: serde::de::DeserializeOwned>(
    response: reqwest::Response,
    url: &str,
) -> Result<T, ClientError> {
    response.json().await.map_err(|source| ClientError::Decode {
        url: url.to_owned(),
        source,
    })
}
