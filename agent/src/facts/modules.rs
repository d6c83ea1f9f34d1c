//! Kernel module names. The module facts themselves (loaded, available, built in,
//! modprobe configuration in kmod's reading order) live with the `kmod.*` checks.

/// `usb-storage` and `usb_storage` are the same module.
pub fn canonical(name: &str) -> String {
    name.replace('-', "_")
}
