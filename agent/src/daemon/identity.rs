//! Where the agent runs: hostname, addresses, cloud provider and instance ID,
//! read from /proc, /sys (DMI) and cloud-init's instance data. Nothing is fetched
//! from metadata services.

use std::collections::BTreeMap;

use crate::facts::Facts;

/// What the agent says about its host in hello.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Identity {
    pub hostname: String,
    pub ip_addresses: Vec<String>,
    pub provider: String,
    pub instance_id: String,
    pub region: String,
    pub os: String,
}

fn read(facts: &Facts, p: &str) -> String {
    facts
        .read(p)
        .ok()
        .flatten()
        .map(|s| s.trim().to_string())
        .unwrap_or_default()
}

/// Detects the provider from DMI strings: AWS, Azure, GCP, VMware, Proxmox (QEMU/KVM).
pub fn provider_from_dmi(
    vendor: &str,
    product: &str,
    bios: &str,
    chassis_tag: &str,
    board: &str,
) -> &'static str {
    let all = format!("{vendor} {product} {bios} {board}").to_ascii_lowercase();
    if all.contains("amazon")
        || bios.to_ascii_lowercase().contains("amazon")
        || product.starts_with("EC2")
    {
        "aws"
    } else if chassis_tag == "7783-7084-3265-9085-8269-3286-77"
        || (vendor.contains("Microsoft") && product.contains("Virtual Machine"))
    {
        "azure"
    } else if all.contains("google") {
        "gcp"
    } else if all.contains("vmware") {
        "vmware"
    } else if all.contains("qemu") || all.contains("proxmox") {
        "proxmox"
    } else {
        "unknown"
    }
}

/// The identity of the host under `facts` (live).
pub fn detect(facts: &Facts) -> Identity {
    let dmi = |f: &str| read(facts, &format!("/sys/class/dmi/id/{f}"));
    let provider = provider_from_dmi(
        &dmi("sys_vendor"),
        &dmi("product_name"),
        &dmi("bios_vendor"),
        &dmi("chassis_asset_tag"),
        &dmi("board_vendor"),
    );
    let mut id = Identity {
        provider: provider.to_string(),
        ..Default::default()
    };
    id.hostname = read(facts, "/proc/sys/kernel/hostname");
    if id.hostname.is_empty() {
        id.hostname = read(facts, "/etc/hostname");
    }
    // cloud-init's instance data, when present, names the instance and region.
    if let Ok(Some(text)) = facts.read("/run/cloud-init/instance-data.json") {
        if let Ok(v) = serde_json::from_str::<serde_json::Value>(&text) {
            let v1 = &v["v1"];
            id.instance_id = v1["instance_id"].as_str().unwrap_or_default().to_string();
            id.region = v1["region"].as_str().unwrap_or_default().to_string();
        }
    }
    if id.instance_id.is_empty() {
        id.instance_id = match provider {
            "aws" | "gcp" | "azure" | "vmware" | "proxmox" => {
                dmi("product_uuid").to_ascii_lowercase()
            }
            _ => String::new(),
        };
    }
    if let Some((_, _, pretty, _)) = crate::engine::os_release(facts) {
        id.os = pretty;
    }
    id.ip_addresses = addresses(facts);
    id
}

/// Non-loopback IPv4 addresses from /proc/net/fib_trie (local host routes).
fn addresses(facts: &Facts) -> Vec<String> {
    let Ok(Some(text)) = facts.read("/proc/net/fib_trie") else {
        return vec![];
    };
    let mut out = BTreeMap::new();
    let mut last = "";
    for line in text.lines() {
        let t = line.trim();
        if let Some(ip) = t.strip_prefix("|-- ") {
            last = ip;
        } else if t.contains("/32 host LOCAL") && !last.starts_with("127.") {
            out.insert(last.to_string(), ());
        }
    }
    out.into_keys().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn providers_from_dmi() {
        for (v, p, b, tag, want) in [
            ("Amazon EC2", "t3.micro", "Amazon EC2", "", "aws"),
            (
                "Microsoft Corporation",
                "Virtual Machine",
                "American Megatrends",
                "7783-7084-3265-9085-8269-3286-77",
                "azure",
            ),
            ("Google", "Google Compute Engine", "Google", "", "gcp"),
            (
                "VMware, Inc.",
                "VMware Virtual Platform",
                "Phoenix",
                "",
                "vmware",
            ),
            (
                "QEMU",
                "Standard PC (i440FX + PIIX, 1996)",
                "SeaBIOS",
                "",
                "proxmox",
            ),
            ("Dell Inc.", "PowerEdge R640", "Dell", "", "unknown"),
        ] {
            assert_eq!(provider_from_dmi(v, p, b, tag, ""), want, "{v}");
        }
    }
}
