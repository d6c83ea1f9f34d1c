//! `boot.*` checks. (Family not written yet.)

use serde::Deserialize;

use crate::facts::Facts;
use crate::model::Outcome;

/// The `boot.*` check kinds.
#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "kind", deny_unknown_fields)]
pub enum Check {}

impl Check {
    pub fn eval(&self, _facts: &Facts) -> Outcome {
        match *self {}
    }
}
