//! `boot.*` checks: the boot loader (GRUB password, kernel command line), AppArmor
//! profiles, login banners, and the GNOME display manager (see [`gdm`]).

mod apparmor;
mod banners;
pub mod bls;
pub mod gdm;
mod grub;

use std::collections::BTreeMap;

use serde::Deserialize;

use self::apparmor::apparmor;
use self::banners::{banner, dynamic_motd};
use self::grub::{grub_password, kernel_param};
use crate::facts::grub::GRUB_CFG;
use crate::facts::Facts;
use crate::model::Outcome;

fn default_grub_cfg() -> String {
    GRUB_CFG.to_string()
}

fn default_gdm_package() -> String {
    "gdm3".into()
}

fn default_gdm_files() -> Vec<String> {
    vec![
        "/etc/gdm3/daemon.conf".into(),
        "/etc/gdm3/custom.conf".into(),
    ]
}

/// The `boot.*` check kinds.
#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "kind", deny_unknown_fields)]
pub enum Check {
    /// grub.cfg names superusers (`set superusers=`) and gives at least one of them a
    /// `password_pbkdf2` hash. No grub.cfg: not applicable.
    #[serde(rename = "boot.grub_password")]
    GrubPassword {
        #[serde(default = "default_grub_cfg")]
        config: String,
    },
    /// Every kernel (`linux`) line of grub.cfg carries each of `params`
    /// (`name=value`, the last occurrence on a line counting, or a bare `name`).
    /// memtest86+ entries are not kernels and are skipped.
    /// No grub.cfg: not applicable.
    #[serde(rename = "boot.kernel_param")]
    KernelParam {
        params: Vec<String>,
        #[serde(default = "default_grub_cfg")]
        config: String,
    },
    /// RHEL-family GRUB 2: every boot entry (BLS entries under /boot/loader/entries,
    /// `$variables` expanded from /boot/grub2/grubenv; else the kernel lines of
    /// /boot/grub2/grub.cfg) carries each of `required` (`name=value` or a bare
    /// `name`, the last occurrence counting), has each `min` argument at or above its
    /// bound, and none of `forbidden`; GRUB_CMDLINE_LINUX in /etc/default/grub must
    /// not carry a forbidden argument either. No entries: the running kernel's
    /// /proc/cmdline on a live system, else not applicable.
    #[serde(rename = "boot.kernel_args")]
    KernelArgs {
        #[serde(default)]
        required: Vec<String>,
        #[serde(default)]
        min: BTreeMap<String, u64>,
        #[serde(default)]
        forbidden: Vec<String>,
    },
    /// RHEL-family GRUB 2 asks for a password. The configuration judged is the first
    /// of `configs` that exists and is not a stub handing over to another file with
    /// `configfile` (the EFI partition's grub.cfg on RHEL 9). It sets superusers
    /// with a `password_pbkdf2` hash itself, or reads the hash (`${GRUB2_PASSWORD}`,
    /// RHEL's 01_users) from the user.cfg beside it, which must hold a
    /// `GRUB2_PASSWORD=grub.pbkdf2…` line. No such grub.cfg: not applicable.
    #[serde(rename = "boot.grub2_password")]
    Grub2Password { configs: Vec<String> },
    /// AppArmor profiles are loaded and none is in a mode weaker than complain
    /// (`enforce_only`: weaker than enforce), and no process runs unconfined while a
    /// profile for its executable is loaded. Offline: the profiles under
    /// /etc/apparmor.d that load at boot are judged instead.
    #[serde(rename = "boot.apparmor_profiles")]
    ApparmorProfiles {
        #[serde(default)]
        enforce_only: bool,
    },
    /// A login banner file shows no operating system identification: no `\m \r \s \v`
    /// escapes (any case) and no mention (any case, as a word of its own: not inside
    /// a longer word, digits aside) of the os-release `ID` or of any of `names`. With `require_text` the file must exist and hold text; otherwise a
    /// missing file passes.
    #[serde(rename = "boot.banner")]
    Banner {
        path: String,
        #[serde(default)]
        require_text: bool,
        /// Further operating system names to look for (the benchmark's distribution).
        #[serde(default)]
        names: Vec<String>,
        /// Directories whose files are shown with `path` (pam_motd's /etc/motd.d):
        /// each regular file in them is judged the same way; none need exist.
        #[serde(default)]
        dirs: Vec<String>,
    },
    /// Ubuntu's dynamic message of the day reveals no operating system details.
    /// pam_motd (a `pam_motd.so` line without `noupdate` in /etc/pam.d/login or
    /// sshd) runs the executable scripts of /etc/update-motd.d at every login and
    /// shows their output (/run/motd.dynamic). Scripts that print the distribution,
    /// release or kernel (uname, lsb_release, os-release, lsb-release, /proc/version,
    /// or the os-release `ID` or one of `names` in their text) fail; on a live
    /// system the last generated /run/motd.dynamic is judged too. No pam_motd that
    /// runs the scripts: pass.
    #[serde(rename = "boot.dynamic_motd")]
    DynamicMotd {
        #[serde(default)]
        names: Vec<String>,
    },
    /// A dconf setting as seen through `profile` (`gdm` for the login screen, `user`
    /// for sessions). Not applicable when the display manager's `package` (Debian's
    /// `gdm3`, RHEL's `gdm`) is not installed.
    #[serde(rename = "boot.gdm_setting")]
    GdmSetting {
        profile: String,
        #[serde(default = "default_gdm_package")]
        package: String,
        /// The full key path, e.g. `/org/gnome/login-screen/disable-user-list`.
        key: String,
        /// The value must be exactly this (GVariant text, e.g. `true`).
        equals: Option<String>,
        /// Numeric bounds (inclusive) for integer values such as `uint32 900`.
        min: Option<i64>,
        max: Option<i64>,
        /// The value must be a non-empty string.
        #[serde(default)]
        non_empty: bool,
    },
    /// Each key is locked in a system database of `profile`, so users cannot
    /// override it. Not applicable when `package` is not installed.
    #[serde(rename = "boot.gdm_lock")]
    GdmLock {
        profile: String,
        keys: Vec<String>,
        #[serde(default = "default_gdm_package")]
        package: String,
    },
    /// GDM does not enable XDMCP: no `[xdmcp] Enable=true` in its configuration
    /// `files` (Debian: /etc/gdm3/daemon.conf and custom.conf; RHEL:
    /// /etc/gdm/custom.conf). Not applicable when `package` is not installed.
    #[serde(rename = "boot.gdm_xdmcp")]
    GdmXdmcp {
        #[serde(default = "default_gdm_package")]
        package: String,
        #[serde(default = "default_gdm_files")]
        files: Vec<String>,
    },
}

impl Check {
    pub fn eval(&self, facts: &Facts) -> Outcome {
        let r = match self {
            Check::GrubPassword { config } => grub_password(facts, config),
            Check::KernelParam { params, config } => kernel_param(facts, params, config),
            Check::KernelArgs {
                required,
                min,
                forbidden,
            } => bls::kernel_args(facts, required, min, forbidden),
            Check::Grub2Password { configs } => bls::grub2_password(facts, configs),
            Check::ApparmorProfiles { enforce_only } => apparmor(facts, *enforce_only),
            Check::Banner {
                path,
                require_text,
                names,
                dirs,
            } => banner(facts, path, *require_text, names, dirs),
            Check::DynamicMotd { names } => dynamic_motd(facts, names),
            Check::GdmSetting {
                profile,
                package,
                key,
                equals,
                min,
                max,
                non_empty,
            } => gdm::setting(
                facts,
                package,
                profile,
                key,
                &gdm::Want {
                    equals: equals.clone(),
                    min: *min,
                    max: *max,
                    non_empty: *non_empty,
                },
            ),
            Check::GdmLock {
                profile,
                keys,
                package,
            } => gdm::locks(facts, package, profile, keys),
            Check::GdmXdmcp { package, files } => gdm::xdmcp(facts, package, files),
        };
        r.unwrap_or_else(Outcome::from)
    }
}

#[cfg(test)]
mod tests {
    use super::apparmor::{apparmor_ignored, parse_loaded_profiles, profile_flags};
    use super::banners::{identifying_lines, names_word, run_parts_name};
    use crate::facts::grub::{grub_words, parse_grub};

    #[test]
    fn banner_names_are_whole_words() {
        assert!(names_word("welcome to rhel9", "rhel"));
        assert!(names_word("ubuntu22.04 lts", "ubuntu"));
        assert!(names_word("oracle linux (ol 9)", "ol"));
        assert!(!names_word(
            "see the site policy and access control rules",
            "ol"
        ));
        assert!(names_word("amazon linux 2023 (amzn)", "amzn"));
        assert!(!names_word("anything", ""));
    }

    #[test]
    fn grub_words_and_params() {
        assert_eq!(
            grub_words("linux\t/vmlinuz root='UUID=a b' ro \"x\\\"y\""),
            ["linux", "/vmlinuz", "root=UUID=a b", "ro", "x\"y"]
        );
        let cfg = parse_grub(
            "# linux /old apparmor=0\nmenuentry 'Debian' {\n\tlinux /vmlinuz-6.1 root=/dev/sda1 apparmor=0 ro apparmor=1 quiet\n}\n\
             set superusers=\"root,admin\"\npassword_pbkdf2 root grub.pbkdf2.sha512.10000.AB.CD\npassword admin secret\n",
            "/boot/grub/grub.cfg",
        );
        assert_eq!(cfg.kernels.len(), 1);
        assert_eq!(cfg.kernels[0].param("apparmor"), Some("1"));
        assert_eq!(cfg.kernels[0].param("quiet"), Some(""));
        assert_eq!(cfg.kernels[0].param("security"), None);
        assert_eq!(cfg.superusers.as_ref().unwrap().1, ["root", "admin"]);
        assert_eq!(cfg.passwords.len(), 2);
        assert_eq!(cfg.kernels[0].source, "/boot/grub/grub.cfg:3");
    }

    #[test]
    fn run_parts_names_and_identifying_lines() {
        assert!(run_parts_name("00-header") && run_parts_name("50-landscape-sysinfo"));
        assert!(run_parts_name("_my.site-motd") && run_parts_name("local.d-banner"));
        assert!(!run_parts_name("10-info.sh") && !run_parts_name("README.txt"));
        assert!(!run_parts_name(""));
        assert!(
            !run_parts_name(".hidden") && !run_parts_name("x.dpkg-old") && !run_parts_name("a b")
        );
        let names = vec!["ubuntu".to_string()];
        let bad = identifying_lines(
            "Welcome to Ubuntu 22.04 LTS\nAuthorised use only\n",
            "/m",
            &names,
            false,
        );
        assert_eq!(bad.len(), 1);
        assert!(bad[0].starts_with("/m:1:"));
        assert!(identifying_lines("kernel \\r\n", "/m", &names, false).is_empty());
        assert_eq!(
            identifying_lines("kernel \\r\n", "/m", &names, true).len(),
            1
        );
    }

    #[test]
    fn apparmor_parsers() {
        let p = parse_loaded_profiles(
            "/usr/sbin/cupsd (enforce)\nlsb_release (complain)\nweird name (x) (kill)\n",
        );
        assert_eq!(p[0], ("/usr/sbin/cupsd".into(), "enforce".into()));
        assert_eq!(p[2], ("weird name (x)".into(), "kill".into()));
        let f = profile_flags("profile foo /usr/bin/foo flags = (attach_disconnected, complain) {\n  # flags=(unconfined)\n}\n");
        assert!(
            f.contains("complain")
                && f.contains("attach_disconnected")
                && !f.contains("unconfined")
        );
        assert!(apparmor_ignored("usr.bin.foo.dpkg-old") && !apparmor_ignored("usr.bin.foo"));
    }
}
