//! The include budget of a configuration reader: how many include directives, and
//! files they name, one reading follows, all levels together. Depth alone does not
//! bound the work: a file that includes itself twice, 16 levels deep, would be read
//! 2^16 times. The sshd, sudoers, PAM and nftables readers each keep one budget per
//! reading and count includes where they meet them.

/// Include directives and the files they name that one reading follows.
pub const MAX_INCLUDES: usize = 1024;

/// The budget is spent: the include where it happened, and every one after it, is not
/// read. A reader notes it once, prefixed with where it stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("more than {MAX_INCLUDES} includes; the rest is not read")]
pub struct IncludesExhausted;

/// Includes met so far in one reading, bounded by [`MAX_INCLUDES`].
#[derive(Debug, Clone, Default)]
pub struct IncludeBudget {
    met: usize,
}

impl IncludeBudget {
    /// Counts an include directive met at `source`: true to follow it. The first
    /// directive past the budget adds `source: ` and [`IncludesExhausted`] to `notes`;
    /// the ones after it are skipped quietly.
    pub fn directive(&mut self, source: &str, notes: &mut Vec<String>) -> bool {
        if self.met < MAX_INCLUDES {
            self.met += 1;
            return true;
        }
        if self.met == MAX_INCLUDES {
            notes.push(format!("{source}: {IncludesExhausted}"));
            self.met += 1;
        }
        false
    }

    /// Counts one file that a followed directive names: true to read it, false when
    /// the budget is spent (the next directive says so).
    pub fn file(&mut self) -> bool {
        if self.met >= MAX_INCLUDES {
            return false;
        }
        self.met += 1;
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn directives_and_files_share_one_budget_and_the_end_is_noted_once() {
        let mut b = IncludeBudget::default();
        let mut notes = Vec::new();
        assert!(b.directive("a:1", &mut notes));
        for _ in 1..MAX_INCLUDES {
            assert!(b.file());
        }
        assert!(!b.file(), "the budget is spent");
        assert!(notes.is_empty(), "a file past the budget is not noted");
        assert!(!b.directive("a:2", &mut notes));
        assert!(!b.directive("a:3", &mut notes));
        assert_eq!(
            notes,
            ["a:2: more than 1024 includes; the rest is not read"]
        );
    }
}
