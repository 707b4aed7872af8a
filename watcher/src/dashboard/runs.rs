//! dashboard/runs.rs: what the page shows of a run right now: the engine's state, and on the
//! pipelines runner (embedded or separate) each stage's progress. Runs that ended are remembered
//! (they no longer change); open ones are asked each time, a bounded number at once, each
//! within [`ASK_TIMEOUT`], so a slow engine slows the page by seconds at most.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use pipelines::StageRun;
use trigger_client::RunHandle;

use crate::deliver::Deliverer;

/// How long one question to the engine may take.
const ASK_TIMEOUT: Duration = Duration::from_secs(3);

/// Open runs asked about per rendering (the newest first); the others show the stored state.
const ASK_AT_MOST: usize = 20;

/// Ended runs remembered.
const REMEMBER: usize = 500;

/// A run as the engine reports it now.
#[derive(Debug, Clone, Default)]
pub struct RunView {
    /// The state's name (`queued`, `running`, `succeeded`, ...); `None` when the engine did not
    /// answer.
    pub state: Option<String>,
    /// The engine's message (a run's error).
    pub message: Option<String>,
    /// Each stage, on the pipelines runner.
    pub stages: Vec<StageRun>,
    /// Why the engine could not be asked.
    pub error: Option<String>,
    finished: bool,
}

/// Ended runs, by handle.
#[derive(Default)]
pub struct Runs {
    ended: Mutex<HashMap<String, RunView>>,
}

impl Runs {
    /// The views of `handles` (at most [`ASK_AT_MOST`] asked), keyed by the handle's text.
    pub async fn views(
        &self,
        deliverer: &Deliverer,
        handles: Vec<RunHandle>,
    ) -> HashMap<String, RunView> {
        let mut out = HashMap::new();
        let mut ask = Vec::new();
        {
            let ended = self.ended.lock().expect("the run cache is not poisoned");
            for h in handles {
                let key = h.to_string();
                match ended.get(&key) {
                    Some(v) => {
                        out.insert(key, v.clone());
                    }
                    None if ask.len() < ASK_AT_MOST => ask.push(h),
                    None => {}
                }
            }
        }
        let asked = futures_util::future::join_all(ask.into_iter().map(|h| async move {
            let view = match tokio::time::timeout(ASK_TIMEOUT, view(deliverer, &h)).await {
                Ok(v) => v,
                Err(_) => RunView {
                    error: Some(format!("no answer within {ASK_TIMEOUT:?}")),
                    ..RunView::default()
                },
            };
            (h.to_string(), view)
        }))
        .await;
        let mut ended = self.ended.lock().expect("the run cache is not poisoned");
        for (key, v) in asked {
            if v.finished && ended.len() < REMEMBER {
                ended.insert(key.clone(), v.clone());
            }
            out.insert(key, v);
        }
        out
    }
}

async fn view(deliverer: &Deliverer, run: &RunHandle) -> RunView {
    match deliverer.runner_run(run).await {
        Ok(Some(r)) => {
            return RunView {
                state: Some(r.status.as_str().to_owned()),
                message: r.error,
                finished: r.status.is_finished(),
                stages: r.stages,
                error: None,
            };
        }
        Ok(None) => {}
        Err(e) => return failed(&e),
    }
    match deliverer.status(run).await {
        Ok(Some(s)) => RunView {
            state: Some(s.state.as_str().to_owned()),
            message: s.message,
            finished: s.state.is_terminal(),
            ..RunView::default()
        },
        Ok(None) => RunView {
            error: Some("the engine does not report runs".into()),
            finished: true,
            ..RunView::default()
        },
        Err(e) => failed(&e),
    }
}

fn failed(e: &trigger_client::Error) -> RunView {
    RunView {
        error: Some(crate::causes::one_line(e)),
        ..RunView::default()
    }
}
