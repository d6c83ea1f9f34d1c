//! Lines whose modules' results are not modelled: each is tried as success,
//! PAM_AUTH_ERR and PAM_IGNORE, every combination walked, and a rule takes the worst.

use super::{result_name, AUTH_ERR, IGNORE, SUCCESS};
use crate::facts::pam::{Call, Handler, PamLine, Stack};

/// The most lines calling modules of unknown behaviour whose results are combined.
pub const MAX_UNKNOWN: usize = 6;

const CHOICES: [u8; 3] = [SUCCESS, AUTH_ERR, IGNORE];

/// Why a chain with `n` lines of unmodelled modules is not walked.
pub(super) fn too_many(kind: &str, n: usize) -> String {
    format!("{n} {kind} lines call modules whose results are not modelled (at most {MAX_UNKNOWN} are combined)")
}

/// The places in `chain` (a chain of `st`) of the module lines that `modelled`
/// does not know.
pub(super) fn unmodelled(
    st: &Stack,
    chain: &[&Handler],
    modelled: impl Fn(&PamLine) -> bool,
) -> Vec<usize> {
    chain
        .iter()
        .enumerate()
        .filter(|(_, h)| matches!(h.call, Call::Module(i) if !modelled(&st.lines[i])))
        .map(|(i, _)| i)
        .collect()
}

/// Every assignment of results to the lines `idx`.
pub(super) fn assignments(idx: &[usize]) -> Vec<Vec<(usize, u8)>> {
    let mut out: Vec<Vec<(usize, u8)>> = vec![Vec::new()];
    for &i in idx {
        out = out
            .into_iter()
            .flat_map(|a| {
                CHOICES.iter().map(move |&c| {
                    let mut b = a.clone();
                    b.push((i, c));
                    b
                })
            })
            .collect();
    }
    out
}

/// The assignment `a` in words, for evidence (empty when there is none).
pub(super) fn assuming(st: &Stack, chain: &[&Handler], a: &[(usize, u8)]) -> String {
    let parts: Vec<String> = a
        .iter()
        .map(|(i, r)| {
            let m = match chain[*i].call {
                Call::Module(l) => st.lines[l].module_name().to_string(),
                _ => String::new(),
            };
            format!("{} {m} returning {}", chain[*i].source, result_name(*r))
        })
        .collect();
    if parts.is_empty() {
        String::new()
    } else {
        format!(" (with {})", parts.join(", "))
    }
}
