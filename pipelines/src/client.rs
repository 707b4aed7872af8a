//! A small client of this crate's REST API, for `pipelines run|runs --url` (talking to a runner
//! that holds the state directory). It only builds requests and reads responses; the paths and
//! bodies are `runner_api`'s.

use runner_api::{ErrorBody, GateQuery, GateReport, Run, RunPage, RunQuery, RunRequest, paths};
use url::Url;

use crate::state::RunFilter;

/// Errors talking to a runner.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("cannot reach the runner at `{url}`; is `pipelines serve` running there?")]
    Connect {
        url: Url,
        #[source]
        source: reqwest::Error,
    },
    #[error("the runner answered {status} for `{url}`: {message}")]
    Status {
        url: Url,
        status: u16,
        message: String,
    },
    #[error("the runner's answer for `{url}` is not what this version expects")]
    Decode {
        url: Url,
        #[source]
        source: reqwest::Error,
    },
}

/// A REST client bound to one runner and token.
#[derive(Debug, Clone)]
pub struct Client {
    http: reqwest::Client,
    base: Url,
    token: String,
}

impl Client {
    /// `base` is the runner's URL, e.g. `http://127.0.0.1:8731`.
    pub fn new(base: Url, token: &str) -> Self {
        Self {
            http: reqwest::Client::new(),
            base,
            token: token.to_owned(),
        }
    }

    /// Starts a run; the flag is `true` if it was created, `false` if the key named it already.
    pub async fn create_run(
        &self,
        chain: &str,
        request: &RunRequest,
    ) -> Result<(Run, bool), ClientError> {
        let url = paths::chain_runs(&self.base, chain);
        let response = self
            .send(self.http.post(url.clone()).json(request), &url)
            .await?;
        let created = response.status() == reqwest::StatusCode::CREATED;
        Ok((decode(response, &url).await?, created))
    }

    pub async fn run(&self, id: &str) -> Result<Run, ClientError> {
        let url = paths::run(&self.base, id);
        let response = self.send(self.http.get(url.clone()), &url).await?;
        decode(response, &url).await
    }

    pub async fn runs(&self, filter: &RunFilter) -> Result<RunPage, ClientError> {
        let url = paths::runs(&self.base);
        let query = RunQuery {
            chain: filter.chain.clone(),
            status: filter.status.map(|status| status.to_string()),
            limit: Some(filter.limit.to_string()),
            cursor: filter.cursor.clone(),
        };
        let response = self
            .send(self.http.get(url.clone()).query(&query), &url)
            .await?;
        decode(response, &url).await
    }

    /// The gates and budgets of `chain`, or of every chain.
    pub async fn gates(&self, chain: Option<&str>) -> Result<GateReport, ClientError> {
        let url = paths::gates(&self.base);
        let query = GateQuery {
            chain: chain.map(str::to_owned),
        };
        let response = self
            .send(self.http.get(url.clone()).query(&query), &url)
            .await?;
        decode(response, &url).await
    }

    async fn send(
        &self,
        request: reqwest::RequestBuilder,
        url: &Url,
    ) -> Result<reqwest::Response, ClientError> {
        let response = request
            .bearer_auth(&self.token)
            .send()
            .await
            .map_err(|source| ClientError::Connect {
                url: url.clone(),
                source,
            })?;
        let status = response.status();
        if status.is_success() {
            return Ok(response);
        }
        let text = response.text().await.unwrap_or_default();
        let message = serde_json::from_str::<ErrorBody>(&text)
            .map(|body| body.error)
            .unwrap_or(text);
        Err(ClientError::Status {
            url: url.clone(),
            status: status.as_u16(),
            message,
        })
    }
}

async fn decode<T: serde::de::DeserializeOwned>(
    response: reqwest::Response,
    url: &Url,
) -> Result<T, ClientError> {
    response.json().await.map_err(|source| ClientError::Decode {
        url: url.clone(),
        source,
    })
}
