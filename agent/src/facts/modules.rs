//! Kernel modules: loaded (/proc/modules), available under /lib/modules, built in,
//! and what modprobe configuration says about them (`install`, `blacklist`).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use super::{strip_comment, FactError, Facts};

const MODPROBE_DIRS: [&str; 5] = [
    "/etc/modprobe.d",
    "/run/modprobe.d",
    "/usr/local/lib/modprobe.d",
    "/lib/modprobe.d",
    "/usr/lib/modprobe.d",
];

/// `usb-storage` and `usb_storage` are the same module.
pub fn canonical(name: &str) -> String {
    name.replace('-', "_")
}

/// modprobe configuration: per module, its `install` commands and `blacklist` lines.
#[derive(Debug, Clone, Default)]
pub struct ModprobeConfig {
    /// module → (source, command) of its `install` lines.
    pub install: BTreeMap<String, Vec<(String, String)>>,
    /// module → sources of its `blacklist` lines.
    pub blacklist: BTreeMap<String, Vec<String>>,
}

pub fn modprobe_config(facts: &Facts) -> Arc<Result<ModprobeConfig, FactError>> {
    facts.memo("modprobe-config", || {
        let mut by_name = BTreeMap::new();
        for dir in MODPROBE_DIRS {
            for path in facts.dir_files(dir, ".conf")? {
                let name = path.rsplit('/').next().unwrap_or_default().to_string();
                by_name.entry(name).or_insert(path);
            }
        }
        let mut cfg = ModprobeConfig::default();
        for path in by_name.into_values() {
            let Some(text) = facts.read(&path)? else {
                continue;
            };
            for (n, raw) in text.lines().enumerate() {
                let line = strip_comment(raw);
                let mut words = line.split_whitespace();
                let src = format!("{path}:{}", n + 1);
                match (words.next(), words.next()) {
                    (Some("install"), Some(m)) => {
                        let cmd = words.collect::<Vec<_>>().join(" ");
                        cfg.install
                            .entry(canonical(m))
                            .or_default()
                            .push((src, cmd));
                    }
                    (Some("blacklist"), Some(m)) => {
                        cfg.blacklist.entry(canonical(m)).or_default().push(src)
                    }
                    _ => {}
                }
            }
        }
        Ok(cfg)
    })
}

/// Modules loaded now (live only).
pub fn loaded(facts: &Facts) -> Arc<Result<BTreeSet<String>, FactError>> {
    facts.memo("proc-modules", || {
        let text = facts.read_runtime("/proc/modules")?.unwrap_or_default();
        Ok(text
            .lines()
            .filter_map(|l| l.split_whitespace().next())
            .map(canonical)
            .collect())
    })
}

/// The modules each installed kernel provides, from its modules.dep and modules.builtin.
#[derive(Debug, Clone, Default)]
pub struct KernelModules {
    /// Kernel versions considered (the running one when live, else all installed).
    pub kernels: Vec<String>,
    /// module → path of its object, relative to /lib/modules/<version>.
    pub available: BTreeMap<String, String>,
    /// Modules compiled into the kernel.
    pub builtin: BTreeSet<String>,
}

pub fn kernel_modules(facts: &Facts) -> Arc<Result<KernelModules, FactError>> {
    facts.memo("kernel-modules", || {
        let mut km = KernelModules::default();
        let running = if facts.is_live() {
            facts
                .read_runtime("/proc/sys/kernel/osrelease")
                .ok()
                .flatten()
                .map(|v| v.trim().to_string())
        } else {
            None
        };
        km.kernels = match running {
            Some(v) => vec![v],
            None => facts.list_dir("/lib/modules")?,
        };
        for k in &km.kernels {
            let base = format!("/lib/modules/{k}");
            if let Some(dep) = facts.read(&format!("{base}/modules.dep"))? {
                for line in dep.lines() {
                    let Some((obj, _)) = line.split_once(':') else {
                        continue;
                    };
                    let file = obj.rsplit('/').next().unwrap_or(obj);
                    let name = file.split(".ko").next().unwrap_or(file);
                    km.available.insert(canonical(name), obj.to_string());
                }
            }
            if let Some(b) = facts.read(&format!("{base}/modules.builtin"))? {
                for line in b.lines() {
                    let file = line.rsplit('/').next().unwrap_or(line);
                    km.builtin
                        .insert(canonical(file.split(".ko").next().unwrap_or(file)));
                }
            }
        }
        Ok(km)
    })
}
