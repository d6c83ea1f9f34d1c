//! The copy's kernel: every module of the rules made loadable, built in or absent.

use std::fs;
use std::path::PathBuf;

use super::super::RootCopy;

/// The object copied for the modules the kernel lacks: a small module without
/// aliases, exported symbols, dependencies or soft dependencies.
const DUMMY: &str = "kernel/drivers/leds/trigger/ledtrig-default-on.ko";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum State {
    Available,
    Builtin,
    Absent,
}

/// One module of the rules and its object in the copy's kernel.
pub(super) struct Module {
    /// As the rules name it (`usb-storage`).
    pub(super) name: String,
    /// Object path under /lib/modules/VERSION.
    object: String,
    /// Where its object is kept while it is built in or absent.
    store: PathBuf,
    pub(super) state: State,
}

/// The copy's only kernel and the rules' modules in it.
pub(super) struct Kernel {
    pub(super) version: String,
    pub(super) modules: Vec<Module>,
    builtin: String,
}

pub(super) fn canonical(name: &str) -> String {
    name.replace('-', "_")
}

impl Kernel {
    /// Makes every module loadable (see the module documentation).
    pub(super) fn new(copy: &RootCopy, names: &[String]) -> Kernel {
        let versions: Vec<String> = fs::read_dir(copy.path("/lib/modules"))
            .expect("list /lib/modules of the copy")
            .map(|e| {
                e.expect("read /lib/modules")
                    .file_name()
                    .to_string_lossy()
                    .into_owned()
            })
            .collect();
        assert_eq!(
            versions.len(),
            1,
            "the Debian root should have one kernel under /lib/modules: {versions:?}"
        );
        let version = versions[0].clone();
        let base = copy.path(&format!("/lib/modules/{version}"));
        let dep = fs::read_to_string(base.join("modules.dep")).expect("read modules.dep");
        let store = copy
            .root
            .parent()
            .expect("the copy's directory")
            .join("objects");
        fs::create_dir_all(&store).expect("make the object store");
        let modules = names
            .iter()
            .map(|name| {
                let known = dep
                    .lines()
                    .filter_map(|l| l.split_once(':'))
                    .find(|(o, _)| {
                        let file = o.rsplit('/').next().unwrap_or(o);
                        canonical(file.split(".ko").next().unwrap_or(file)) == canonical(name)
                    });
                let (object, source) = match known {
                    Some((o, _)) => (o.to_string(), o.to_string()),
                    None => (format!("kernel/rampart/{name}.ko"), DUMMY.to_string()),
                };
                let kept = store.join(format!("{name}.ko"));
                fs::copy(base.join(&source), &kept)
                    .unwrap_or_else(|e| panic!("copy {source} of the root's kernel: {e}"));
                Module {
                    name: name.clone(),
                    object,
                    store: kept,
                    state: State::Absent,
                }
            })
            .collect();
        let builtin = fs::read_to_string(base.join("modules.builtin")).unwrap_or_default();
        let mut k = Kernel {
            version,
            modules,
            builtin,
        };
        k.apply(copy, &vec![State::Available; names.len()]);
        k
    }

    /// Puts each module in its state and has the root's depmod rebuild the indexes.
    pub(super) fn apply(&mut self, copy: &RootCopy, states: &[State]) {
        let base = copy.path(&format!("/lib/modules/{}", self.version));
        let mut builtin = self.builtin.clone();
        for (m, s) in self.modules.iter_mut().zip(states) {
            m.state = *s;
            let object = base.join(&m.object);
            let _ = fs::remove_file(&object);
            match s {
                State::Available => {
                    fs::create_dir_all(object.parent().expect("object directory"))
                        .expect("make the object's directory");
                    fs::copy(&m.store, &object).expect("put a module object in place");
                }
                State::Builtin => builtin += &format!("{}\n", m.object),
                State::Absent => {}
            }
        }
        fs::write(base.join("modules.builtin"), builtin).expect("write modules.builtin");
        let out = copy.chroot(&["depmod", "-a", &self.version]);
        assert!(
            out.status.success(),
            "depmod in the copy failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    pub(super) fn describe(&self) -> String {
        let of = |s: State| {
            self.modules
                .iter()
                .filter(|m| m.state == s)
                .map(|m| m.name.as_str())
                .collect::<Vec<_>>()
                .join(" ")
        };
        let mut d = String::new();
        for (s, label) in [(State::Builtin, "built in"), (State::Absent, "absent")] {
            let names = of(s);
            if !names.is_empty() {
                d += &format!("kernel {}: {label}: {names}\n", self.version);
            }
        }
        d
    }
}
