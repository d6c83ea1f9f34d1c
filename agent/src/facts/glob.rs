//! Glob expansion inside the root ([`Facts::glob`]).

use super::{fnmatch, FactError, Facts, FileKind, MAX_GLOB_DEPTH};

impl Facts {
    /// Paths inside the root matching a glob pattern such as `/etc/ssh/ssh_host_*_key`,
    /// sorted, as glob(3) expands them: `*`, `?` and `[...]` in any component, `**` as
    /// a whole component for any chain of directories (real directories only, at most
    /// [`MAX_GLOB_DEPTH`] levels), names starting with `.` matched only by a pattern
    /// component starting with `.`. Every directory is listed through
    /// [`Facts::resolve`], so a symlinked directory part leads inside the root, never
    /// to the host's own directories. A component without wildcards matches itself
    /// when it exists.
    pub fn glob(&self, pattern: &str) -> Result<Vec<String>, FactError> {
        let parts: Vec<&str> = pattern
            .split('/')
            .filter(|p| !p.is_empty() && *p != ".")
            .collect();
        // Inside paths matched so far; "" is the root itself.
        let mut current: Vec<String> = vec![String::new()];
        for (idx, part) in parts.iter().enumerate() {
            let last = idx + 1 == parts.len();
            let mut next = Vec::new();
            for base in &current {
                if *part == "**" {
                    self.glob_dirs(base, 0, &mut next)?;
                } else if part.contains(['*', '?', '[']) {
                    for name in self.glob_list(base)? {
                        if name.starts_with('.') && !part.starts_with('.') {
                            continue;
                        }
                        if fnmatch(part, &name) {
                            next.push(format!("{base}/{name}"));
                        }
                    }
                } else {
                    let p = format!("{base}/{part}");
                    if !last || self.lstat(&p)?.is_some() {
                        next.push(p);
                    }
                }
            }
            current = next;
        }
        current.retain(|p| !p.is_empty());
        current.sort();
        current.dedup();
        Ok(current)
    }

    /// The names in `dir` (an inside path, "" for the root) if it is a directory.
    fn glob_list(&self, dir: &str) -> Result<Vec<String>, FactError> {
        let dir = if dir.is_empty() { "/" } else { dir };
        match self.stat(dir)? {
            Some(m) if m.kind == FileKind::Dir => self.list_dir(dir),
            _ => Ok(Vec::new()),
        }
    }

    /// `base` and the directories below it, for a `**` component. Symlinks below
    /// `base` are not descended into (no loops), hidden directories are skipped.
    fn glob_dirs(&self, base: &str, depth: usize, out: &mut Vec<String>) -> Result<(), FactError> {
        let dir = if base.is_empty() { "/" } else { base };
        if !matches!(self.stat(dir)?, Some(m) if m.kind == FileKind::Dir) {
            return Ok(());
        }
        out.push(base.to_string());
        if depth >= MAX_GLOB_DEPTH {
            return Ok(());
        }
        for name in self.list_dir(dir)? {
            if name.starts_with('.') {
                continue;
            }
            let child = format!("{base}/{name}");
            if matches!(self.lstat(&child)?, Some(m) if m.kind == FileKind::Dir) {
                self.glob_dirs(&child, depth + 1, out)?;
            }
        }
        Ok(())
    }
}
