//! Kernel modules: the root's own kmod 30 (`modprobe` of Debian's kmod
//! 30+20221128-1) reads generated modprobe.d configurations, chrooted in a private
//! mount namespace, for the root's kernel (`-S VERSION`: the host runs another one);
//! the agent (`rampart-agent facts modules`) must agree, for every module the kmod
//! rules name:
//!
//! - blacklisted or not: a `blacklist NAME` line in `modprobe --showconfig` (kmod's
//!   own parse of every file it read; `blacklist` compares names exactly);
//! - the modules `modprobe -R NAME` finds (configuration aliases first);
//! - what `modprobe -n -v NAME` does with the module itself when the name finds it:
//!   the `install` command it would run with the options it passes, the object it
//!   would insmod, or nothing (built in). The module's own line is the one that
//!   insmods its object or else the last one (dependencies and `pre:` soft
//!   dependencies come first; with soft dependencies modprobe insmods the module);
//! - the rule's verdict, recomputed from those answers: built in fails, absent
//!   passes, otherwise the module passes only when modprobe would run an install
//!   command that does nothing (`/bin/false`, `/bin/true`, … as /bin/sh reads it)
//!   and it is blacklisted.
//!
//! Every module is made loadable in the copy's kernel: the ones its kernel lacks get
//! an object copied from a small module without aliases or exported symbols, and the
//! root's own `depmod` rebuilds the indexes. Now and then modules are made built in
//! (listed in modules.builtin) or absent instead.
//!
//! What the oracle cannot see: a module whose name a configuration alias takes
//! elsewhere and which is blacklisted (modprobe never reaches its install command by
//! name or by alias; the verdict is then not compared, and counted); the kernel
//! command line (`modprobe.blacklist=`: no /proc in the chroot); loaded modules
//! (offline root); several kernels (the root has one); modprobe actually running an
//! install command (only dry runs). Left out of the generator: a module found only
//! through an install line that also has soft dependencies prints nothing of its own,
//! so no softdep lines while a module is absent; and a link that leads nowhere hides
//! the same name in a later directory or not depending on uninitialised memory in
//! kmod 30 (`fstatat`'s result is not checked; kmod 34 never hides), so such a link
//! becomes an empty file when a later directory has its name.
//!
//! Every benchmark's kmod rules run the same `kmod.disabled` check, whose only
//! parameter is the module, and the modules compared are every benchmark's, so the
//! verdicts recomputed here are every benchmark's.

mod generator;
mod kernel;
mod oracle;

use std::fs;

use super::{agent_facts, Rng, RootCopy, Settings, Tally};
use generator::{generate, DEBIAN_FILES};
use kernel::{canonical, Kernel, State};
use oracle::{expected, oracle};

/// Runs the modules family: generate, ask modprobe, compare.
pub fn run(original: &std::path::Path, settings: Settings) -> Tally {
    let copy = RootCopy::new(original);
    let mut tally = Tally::new("modules", settings);
    let names: Vec<String> = match agent_facts("modules", &copy.root, &[]) {
        Ok(v) => v["modules"]
            .as_object()
            .map(|o| o.keys().cloned().collect())
            .unwrap_or_default(),
        Err(e) => {
            tally.differ("(the Debian root as it is)", &e);
            return tally;
        }
    };
    assert!(
        names.iter().any(|n| n == "usb-storage"),
        "the agent's kmod rules should name usb-storage: {names:?}"
    );
    let debian: Vec<(String, String)> = DEBIAN_FILES
        .iter()
        .map(|n| {
            let t = fs::read_to_string(copy.path(&format!("/usr/lib/modprobe.d/{n}")))
                .unwrap_or_else(|e| panic!("read Debian's /usr/lib/modprobe.d/{n}: {e}"));
            (n.to_string(), t)
        })
        .collect();
    // Named on the command line, the agent need not parse its content each time.
    let module_args: Vec<String> = names
        .iter()
        .flat_map(|n| ["--module".to_string(), n.clone()])
        .collect();
    let mut kernel = Kernel::new(&copy, &names);
    let mut rng = Rng::new(settings.seed ^ 0x004d_4f44_554c_4553);
    // Module verdicts compared, how many of them pass, and how many cannot be decided.
    let (mut verdicts, mut passes, mut unseen) = (0, 0, 0);
    while tally.more() {
        if rng.chance(12) {
            let states: Vec<State> = if rng.chance(40) {
                vec![State::Available; names.len()]
            } else {
                names
                    .iter()
                    .map(|_| match rng.below(100) {
                        0..=69 => State::Available,
                        70..=84 => State::Builtin,
                        _ => State::Absent,
                    })
                    .collect()
            };
            kernel.apply(&copy, &states);
        }
        let desc = generate(&mut rng, &copy, &kernel, &debian);
        let truth = match oracle(&copy, &kernel) {
            Ok(t) => t,
            Err(e) => {
                tally.differ(&desc, &e);
                tally.compared += 1;
                continue;
            }
        };
        let agent = match agent_facts("modules", &copy.root, &module_args) {
            Ok(v) => v,
            Err(e) => {
                tally.differ(&desc, &e);
                tally.compared += 1;
                continue;
            }
        };
        let mut what = String::new();
        for m in &kernel.modules {
            let a = &agent["modules"][&m.name];
            let t = &truth.modules[&m.name];
            let k = &a["kernels"][&kernel.version];
            let blacklisted = truth.blacklist.contains(&canonical(&m.name));
            if blacklisted != a["blacklist"].is_string() {
                what += &format!(
                    "  {}: modprobe --showconfig {} it, the agent says {}\n",
                    m.name,
                    if blacklisted {
                        "blacklists"
                    } else {
                        "does not blacklist"
                    },
                    a["blacklist"]
                );
            }
            let mut ours: Vec<String> = k["lookup"]
                .as_array()
                .map(|l| {
                    l.iter()
                        .filter_map(|s| s.as_str().map(String::from))
                        .collect()
                })
                .unwrap_or_default();
            let mut theirs = t.lookup.clone().unwrap_or_default();
            ours.sort();
            theirs.sort();
            if ours != theirs {
                what += &format!(
                    "  {}: modprobe -R finds {theirs:?}, the agent {ours:?} (via {})\n",
                    m.name, k["via"]
                );
            }
            if t.lookup.as_deref() == Some(&[canonical(&m.name)]) {
                let line = t.by_name.as_deref().unwrap_or("(not found)");
                if k["by_name"].as_str() != Some(line) {
                    what += &format!(
                        "  {}: modprobe -n -v does {line:?} (all: {:?}), the agent says {}\n",
                        m.name, t.output, k["by_name"]
                    );
                }
            }
            match expected(m, t, blacklisted) {
                Some(pass) => {
                    verdicts += 1;
                    passes += usize::from(pass);
                    let verdict = if pass { "pass" } else { "fail" };
                    if a["verdict"] != verdict {
                        what += &format!(
                            "  {}: modprobe's answers make it {verdict}, the agent says {} ({})\n",
                            m.name, a["verdict"], a["evidence"]
                        );
                    }
                }
                None => unseen += 1,
            }
        }
        if !what.is_empty() {
            tally.differ(&desc, &what);
        }
        tally.compared += 1;
    }
    println!(
        "differential modules: {verdicts} module verdicts compared ({passes} pass), {unseen} that modprobe's answers cannot decide"
    );
    tally
}
