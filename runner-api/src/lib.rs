//! The pipelines runner's REST contract, written once for the runner (`pipelines`), its own
//! client and the trigger client's `pipelines` backend: the bodies it takes and answers, the paths
//! they go to, and where a client finds its token. A leaf crate: serde, chrono and url only.

pub mod gates;
pub mod page;
pub mod paths;
pub mod request;
pub mod run;
pub mod token;

pub use crate::gates::{BudgetSpec, BudgetView, ChainGates, GateReport, GateSpec, GateView};
pub use crate::page::{ChainList, ChainView, ErrorBody, Health, RunPage, StageView};
pub use crate::request::{GateQuery, RunQuery, RunRequest, RunRequestBody};
pub use crate::run::{Run, RunStatus, StageRun, StageStatus, Trigger, UnknownStatus};
pub use crate::token::{TOKEN_ENV, TOKEN_FILE};
