//! The configurations of the pwquality family: /etc/security/pwquality.conf and
//! pwquality.conf.d/*.conf (the CIS drop-in half the time, then lines from a pool:
//! every setting the probes tell apart, with good and bad values, names in another
//! case, spaces around `=` or none, `name value`, comments, unknown names, numbers
//! that overflow; drop-ins whose names sort before and after each other, that do not
//! end in `.conf`, that are empty, directories, or links to a file or to nothing),
//! and common-password's pam_pwquality line: its arguments (overriding the files or
//! not), its control, and whether it comes before pam_unix, which takes the new
//! password with `use_authtok` or asks for it again.

use super::super::{Placed, Rng, RootCopy};

const DIR: &str = "/etc/security/pwquality.conf.d";
const MAIN: &str = "/etc/security/pwquality.conf";

/// The CIS drop-in.
const CIS: &str = "minlen = 14\ndifok = 2\nmaxrepeat = 3\nmaxsequence = 3\ndictcheck = 1\nenforcing = 1\nenforce_for_root\n";

const LINES: &[&str] = &[
    "minlen = 14",
    "minlen = 15",
    "minlen = 13",
    "minlen = 8",
    "minlen=14",
    "minlen 14",
    "MinLen = 14",
    "minlen = 14 # CIS",
    "  minlen   =   16  ",
    "minlen = 14x",
    "minlen = 99999999999",
    "minlen = 3",
    "minlen == 14",
    "difok = 2",
    "difok = 1",
    "difok = 0",
    "difok = 5",
    "dcredit = 1",
    "ucredit = 1",
    "lcredit = 2",
    "ocredit = 1",
    "dcredit = -1",
    "ucredit = -1",
    "ocredit = 0",
    "minclass = 4",
    "minclass = 3",
    "maxrepeat = 3",
    "maxrepeat = 2",
    "maxrepeat = 0",
    "maxrepeat = 4",
    "maxrepeat = 1",
    "MAXREPEAT = 3",
    "maxsequence = 3",
    "maxsequence = 0",
    "maxsequence = 5",
    "maxsequence = 1",
    "maxsequence = -1",
    "dictcheck = 0",
    "dictcheck = 1",
    "dictcheck = -1",
    "dictcheck = yes",
    "enforcing = 0",
    "enforcing = 1",
    "enforcing = -1",
    "enforce_for_root",
    "Enforce_For_Root",
    "enforce_for_root = 0",
    "# enforce_for_root",
    "retry = 3",
    "local_users_only",
    "usercheck = 0",
    "bogus = 1",
    "# minlen = 20",
    "",
];

const ARGS: &[&str] = &[
    "retry=3",
    "retry=1",
    "minlen=14",
    "minlen=8",
    "minlen=15",
    "MINLEN=15",
    "minlen=14x",
    "minlen",
    "dcredit=1",
    "ocredit=2",
    "ucredit=-1",
    "difok=2",
    "difok=0",
    "maxrepeat=3",
    "maxrepeat=0",
    "maxsequence=3",
    "maxsequence=0",
    "dictcheck=0",
    "dictcheck=1",
    "enforcing=0",
    "enforcing=1",
    "enforce_for_root",
    "local_users_only",
    "use_authtok",
    "debug",
    "nonsense=1",
];

const CONTROLS: &[&str] = &[
    "requisite",
    "requisite",
    "requisite",
    "requisite",
    "required",
    "required",
    "optional",
    "sufficient",
    "[success=ok default=die]",
    "[default=ignore]",
    "[success=1 default=ignore]",
    "Requisite",
];

const NAMES: &[&str] = &[
    "00-first.conf",
    "50-cis.conf",
    "60-local.conf",
    "99-last.conf",
    "cis.conf",
    "zz.conf.bak",
    "site.conf.conf",
    "UPPER.CONF",
];

/// `least` to `least + more - 1` lines from the pool.
fn lines(rng: &mut Rng, least: usize, more: usize) -> String {
    let n = least + rng.below(more);
    (0..n).map(|_| format!("{}\n", rng.pick(LINES))).collect()
}

/// Builds one configuration in the copy; returns its description.
pub fn generate(rng: &mut Rng, copy: &RootCopy) -> String {
    let mut desc = String::new();
    copy.remove(DIR);
    copy.remove("/etc/security/pwquality-extra");
    // The main file: the package's (all comments), missing, or lines.
    match rng.below(4) {
        0 => {
            copy.remove(MAIN);
            desc += &format!("{MAIN}: (missing)\n");
        }
        1 => {
            copy.write(MAIN, "# the package's file: comments only\n");
            desc += &format!("{MAIN}: (comments)\n");
        }
        _ => {
            let t = lines(rng, 1, 3);
            copy.write(MAIN, &t);
            desc += &format!("{MAIN}:\n{t}");
        }
    }
    if rng.chance(50) {
        let mut t = CIS.to_string();
        t += &lines(rng, 0, 3);
        copy.write(&format!("{DIR}/50-cis.conf"), &t);
        desc += &format!("{DIR}/50-cis.conf:\n{t}");
    }
    for _ in 0..rng.below(3) {
        let name = *rng.pick(NAMES);
        let path = format!("{DIR}/{name}");
        match rng.below(8) {
            0 => desc += &copy.place(&path, Placed::Empty),
            1 => desc += &copy.place(&path, Placed::Dir),
            2 => {
                let t = lines(rng, 1, 2);
                copy.write("/etc/security/pwquality-extra", &t);
                copy.link(&path, "../pwquality-extra");
                desc += &format!("{path} -> ../pwquality-extra:\n{t}");
            }
            3 => {
                copy.link(&path, "/nonexistent.conf");
                desc += &format!("{path} -> /nonexistent.conf (dangling)\n");
            }
            _ => {
                let t = lines(rng, 1, 3);
                desc += &copy.place(&path, Placed::Text(&t));
            }
        }
    }
    // common-password.
    let control = *rng.pick(CONTROLS);
    let mut args: Vec<&str> = Vec::new();
    for _ in 0..rng.below(4) {
        args.push(*rng.pick(ARGS));
    }
    let pwq = format!("password\t{control}\tpam_pwquality.so {}\n", args.join(" "));
    let authtok = if rng.chance(70) { " use_authtok" } else { "" };
    let unix =
        format!("password\t[success=1 default=ignore]\tpam_unix.so{authtok} yescrypt nodelay\n");
    let tail = "password\trequisite\tpam_deny.so\npassword\trequired\tpam_permit.so\n";
    let stack = if rng.chance(90) {
        format!("# generated\n{pwq}{unix}{tail}")
    } else {
        format!("# generated\n{unix}{pwq}{tail}")
    };
    copy.write("/etc/pam.d/common-password", &stack);
    desc += &format!("/etc/pam.d/common-password:\n{stack}");
    desc
}
