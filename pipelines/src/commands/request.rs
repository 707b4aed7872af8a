//! How `run`'s flags become a [`RunRequest`]: the `--config` file (YAML or JSON mapping) and the
//! `--param NAME=VALUE` pairs.

use std::collections::BTreeMap;
use std::path::Path;

use crate::cli::RunArgs;
use crate::error::Error;
use runner_api::RunRequest;

/// The request `run` sends (through the API or to the in-process engine).
pub fn run_request(args: &RunArgs) -> Result<RunRequest, Error> {
    Ok(RunRequest {
        config: args.config.as_deref().map(read_config).transpose()?,
        idempotency_key: args.idempotency_key.clone(),
        params: parse_params(&args.params)?,
        force: args.force,
    })
}

/// Reads a YAML or JSON config file into a JSON object.
fn read_config(path: &Path) -> Result<serde_json::Map<String, serde_json::Value>, Error> {
    let text = std::fs::read_to_string(path).map_err(|source| Error::ConfigRead {
        path: path.to_owned(),
        source,
    })?;
    let value: serde_json::Value =
        serde_yaml_ng::from_str(&text).map_err(|source| Error::ConfigParse {
            path: path.to_owned(),
            source,
        })?;
    match value {
        serde_json::Value::Object(map) => Ok(map),
        _ => Err(Error::ConfigNotMapping {
            path: path.to_owned(),
        }),
    }
}

/// Parses `NAME=VALUE` pairs.
pub fn parse_params(given: &[String]) -> Result<BTreeMap<String, String>, Error> {
    given
        .iter()
        .map(|pair| match pair.split_once('=') {
            Some((name, value)) if crate::placeholder::is_param_name(name) => {
                Ok((name.to_owned(), value.to_owned()))
            }
            _ => Err(Error::BadParam {
                given: pair.clone(),
            }),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn params() {
        let parsed = parse_params(&["a=1".into(), "b=x=y".into(), "c=".into()]).unwrap();
        assert_eq!(parsed["a"], "1");
        assert_eq!(parsed["b"], "x=y");
        assert_eq!(parsed["c"], "");
        assert!(parse_params(&["novalue".into()]).is_err());
        assert!(parse_params(&["bad name=1".into()]).is_err());
    }
}
