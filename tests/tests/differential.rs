//! Differential tests (issue 18): the agent's effective values against the real
//! programs of a Debian 12 root on generated configurations (see
//! `rampart_tests::differential`). Skipped, with the reason printed, only when
//! `RAMPART_DEBIAN_ROOT` is unset (the rpm half of `packages` needs only the host's
//! rpm and rpmbuild); CI runs a fixed seed, `scripts/differential.sh` runs longer by
//! hand.

use rampart_tests::differential::{
    accounts, debian_root_or_skip, journald, limits, modules, mounts, packages, pam, pwquality,
    shm, sshd, sudo, sysctl, units, Settings,
};

#[test]
fn sysctl_follows_systemd_sysctl() {
    let Some(root) = debian_root_or_skip("sysctl_follows_systemd_sysctl") else {
        return;
    };
    sysctl::run(&root, Settings::from_env(300)).finish();
}

#[test]
fn sshd_follows_sshd_t() {
    let Some(root) = debian_root_or_skip("sshd_follows_sshd_t") else {
        return;
    };
    sshd::run(&root, Settings::from_env(150)).finish();
}

#[test]
fn modules_follow_modprobe() {
    let Some(root) = debian_root_or_skip("modules_follow_modprobe") else {
        return;
    };
    modules::run(&root, Settings::from_env(100)).finish();
}

#[test]
fn account_defaults_follow_the_shadow_tools() {
    let Some(root) = debian_root_or_skip("account_defaults_follow_the_shadow_tools") else {
        return;
    };
    accounts::run(&root, Settings::from_env(150)).finish();
}

#[test]
fn units_follow_systemctl_is_enabled() {
    let Some(root) = debian_root_or_skip("units_follow_systemctl_is_enabled") else {
        return;
    };
    units::run(&root, Settings::from_env(150)).finish();
}

#[test]
fn journald_coredump_timesyncd_follow_systemd() {
    let Some(root) = debian_root_or_skip("journald_coredump_timesyncd_follow_systemd") else {
        return;
    };
    // Each configuration starts journald and timesyncd: about 1 s.
    journald::run(&root, Settings::from_env(30)).finish();
}

#[test]
fn sudo_follows_visudo_and_sudo_l() {
    let Some(root) = debian_root_or_skip("sudo_follows_visudo_and_sudo_l") else {
        return;
    };
    sudo::run(&root, Settings::from_env(80)).finish();
}

#[test]
fn mounts_follow_systemd_fstab_generator() {
    let Some(root) = debian_root_or_skip("mounts_follow_systemd_fstab_generator") else {
        return;
    };
    // About 9.5 s for 100 configurations (a copy sharing /usr, two chroots and one
    // agent run each; systemd --test, 0.2 s, for the three in ten with drop-ins).
    mounts::run(&root, Settings::from_env(100)).finish();
}

#[test]
fn dev_shm_follows_systemd_remount_fs() {
    let Some(root) = debian_root_or_skip("dev_shm_follows_systemd_remount_fs") else {
        return;
    };
    shm::run(&root, Settings::from_env(60)).finish();
}

#[test]
fn core_limit_follows_pam_limits() {
    let Some(root) = debian_root_or_skip("core_limit_follows_pam_limits") else {
        return;
    };
    // About 0.1 s a configuration: one chroot opening ten sessions, one agent run.
    limits::run(&root, Settings::from_env(60)).finish();
}

#[test]
fn pam_rules_follow_libpam() {
    let Some(root) = debian_root_or_skip("pam_rules_follow_libpam") else {
        return;
    };
    // About 0.45 s a configuration (some thirty pamtester runs, 0.2 s, and one agent
    // run, 0.2 s): 40 fit in about 18 s.
    pam::run(&root, Settings::from_env(40)).finish();
}

#[test]
fn pwquality_rules_follow_pam_pwquality() {
    let Some(root) = debian_root_or_skip("pwquality_rules_follow_pam_pwquality") else {
        return;
    };
    // About 0.6 s a configuration (some twelve pamtester runs and one agent run;
    // 0.9 s on a busy machine): 25 fit in about 20 s.
    pwquality::run(&root, Settings::from_env(25)).finish();
}

#[test]
fn packages_follow_dpkg_query() {
    let Some(root) = debian_root_or_skip("packages_follow_dpkg_query") else {
        return;
    };
    // About 0.03 s a configuration (two chroots and one agent run): 800 in about 25 s.
    packages::dpkg::run(&root, Settings::from_env(800)).finish();
}

#[test]
fn packages_follow_rpm() {
    // Needs no Debian root: the host's rpm and rpmbuild write and read the databases.
    // About 0.08 s a configuration (rpm -i into a fresh database, rpm -qa, rpm.vercmp,
    // one agent run; rpmbuild every eighth): 300 in about 25 s.
    packages::rpm::run(Settings::from_env(300)).finish();
}
