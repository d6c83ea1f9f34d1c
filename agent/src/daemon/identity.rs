//! Where the agent runs: hostname, addresses, cloud provider and instance ID,
//! read from /proc, /sys (DMI) and cloud-init's instance data. Nothing is fetched
//! from metadata services here (`iid` fetches the signed document at enrollment).
//!
//! Provider signatures, as the providers document them:
//! - AWS, Nitro: `sys_vendor`/`bios_vendor` "Amazon EC2", `board_asset_tag` is the
//!   instance ID (`i-…`). AWS, Xen: `product_version`/`bios_version` contain
//!   "amazon" (e.g. "4.11.amazon"), or `sys_vendor` "Xen" with a `product_uuid`
//!   starting "ec2".
//! - Azure: `chassis_asset_tag` 7783-7084-3265-9085-8269-3286-77; `product_uuid` is the
//!   VM ID. (A plain Hyper-V guest, "Microsoft Corporation"/"Virtual Machine", is not Azure.)
//! - GCP: `product_name` "Google Compute Engine" (`sys_vendor`/`bios_vendor` "Google").
//! - VMware vCenter: `sys_vendor` "VMware, Inc."; `product_uuid` is the BIOS UUID.
//! - Proxmox (QEMU/KVM): `sys_vendor` "QEMU", `product_name` "Standard PC (…)";
//!   `product_uuid` is the VM's smbios1 UUID.
//!
//! cloud-init's `/run/cloud-init/instance-data.json` adds `v1.instance_id`, `v1.region`
//! and `v1.cloud_name`/`v1.platform` (aws/ec2, azure, gce, vmware); it wins for the
//! instance ID and region, and names the provider when DMI does not.

use std::collections::BTreeMap;

use crate::facts::Facts;

/// What the agent says about its host in hello.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct HostInfo {
    pub hostname: String,
    pub ip_addresses: Vec<String>,
    pub provider: String,
    pub instance_id: String,
    pub region: String,
    pub os: String,
}

/// The DMI strings the detection reads (`/sys/class/dmi/id/<field>`).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Dmi {
    pub sys_vendor: String,
    pub product_name: String,
    pub product_version: String,
    pub product_uuid: String,
    pub bios_vendor: String,
    pub bios_version: String,
    pub board_asset_tag: String,
    pub chassis_asset_tag: String,
}

/// What cloud-init's instance data says (`v1.*`); empty strings when absent.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CloudInitData {
    pub instance_id: String,
    pub region: String,
    pub cloud_name: String,
    pub platform: String,
}

/// The Azure chassis asset tag, the same on every Azure VM.
pub const AZURE_ASSET_TAG: &str = "7783-7084-3265-9085-8269-3286-77";

/// Longest value kept from DMI or instance data; the rest is cut.
const MAX_VALUE: usize = 256;

/// Trimmed, printable, at most [`MAX_VALUE`] characters: these strings come from
/// files anyone on the host (or the image) may have shaped.
fn clean(s: &str) -> String {
    s.trim()
        .chars()
        .filter(|c| !c.is_control())
        .take(MAX_VALUE)
        .collect()
}

fn read(facts: &Facts, p: &str) -> String {
    facts
        .read(p)
        .ok()
        .flatten()
        .map(|s| clean(&s))
        .unwrap_or_default()
}

impl Dmi {
    /// Reads `/sys/class/dmi/id/*` under `facts`; missing or unreadable files are empty.
    pub fn read(facts: &Facts) -> Dmi {
        let f = |name: &str| read(facts, &format!("/sys/class/dmi/id/{name}"));
        Dmi {
            sys_vendor: f("sys_vendor"),
            product_name: f("product_name"),
            product_version: f("product_version"),
            product_uuid: f("product_uuid"),
            bios_vendor: f("bios_vendor"),
            bios_version: f("bios_version"),
            board_asset_tag: f("board_asset_tag"),
            chassis_asset_tag: f("chassis_asset_tag"),
        }
    }
}

impl CloudInitData {
    /// Parses instance-data.json. `None` when it is not JSON or has no `v1` object;
    /// fields of the wrong type are treated as absent.
    pub fn parse(text: &str) -> Option<CloudInitData> {
        let v: serde_json::Value = serde_json::from_str(text).ok()?;
        let v1 = v.get("v1")?.as_object()?;
        let s = |k: &str| {
            v1.get(k)
                .and_then(|x| x.as_str())
                .map(clean)
                .unwrap_or_default()
        };
        Some(CloudInitData {
            instance_id: s("instance_id"),
            region: s("region"),
            cloud_name: s("cloud_name"),
            platform: s("platform"),
        })
    }

    /// Reads `/run/cloud-init/instance-data.json` under `facts`.
    pub fn read(facts: &Facts) -> Option<CloudInitData> {
        let text = facts.read("/run/cloud-init/instance-data.json").ok()??;
        CloudInitData::parse(&text)
    }

    /// The provider cloud-init names, when it is one of ours.
    pub fn provider(&self) -> Option<&'static str> {
        [&self.cloud_name, &self.platform]
            .into_iter()
            .find_map(|n| match n.to_ascii_lowercase().as_str() {
                "aws" | "ec2" => Some("aws"),
                "azure" => Some("azure"),
                "gce" | "gcp" => Some("gcp"),
                "vmware" => Some("vmware"),
                "proxmox" => Some("proxmox"),
                _ => None,
            })
    }
}

/// Detects the provider from DMI strings: `aws`, `azure`, `gcp`, `vmware`, `proxmox`,
/// otherwise `unknown`.
pub fn provider_from_dmi(d: &Dmi) -> &'static str {
    let has = |s: &str, needle: &str| s.to_ascii_lowercase().contains(needle);
    if d.sys_vendor == "Amazon EC2"
        || d.bios_vendor == "Amazon EC2"
        || has(&d.product_version, "amazon")
        || has(&d.bios_version, "amazon")
        || (d.sys_vendor == "Xen" && d.product_uuid.to_ascii_lowercase().starts_with("ec2"))
    {
        "aws"
    } else if d.chassis_asset_tag == AZURE_ASSET_TAG {
        "azure"
    } else if d.product_name == "Google Compute Engine"
        || d.sys_vendor == "Google"
        || d.bios_vendor == "Google"
    {
        "gcp"
    } else if d.sys_vendor == "VMware, Inc." {
        "vmware"
    } else if d.sys_vendor == "QEMU" && d.product_name.starts_with("Standard PC") {
        "proxmox"
    } else {
        "unknown"
    }
}

/// The instance ID that DMI alone gives for `provider`, when it gives one.
fn instance_id_from_dmi(provider: &str, d: &Dmi) -> String {
    match provider {
        // Nitro: the board asset tag is the instance ID. Xen's UUID is not.
        "aws" if d.board_asset_tag.starts_with("i-") => d.board_asset_tag.clone(),
        // The VM ID (Azure), BIOS UUID (vCenter), smbios1 UUID (Proxmox).
        "azure" | "vmware" | "proxmox" => d.product_uuid.to_ascii_lowercase(),
        // GCP's instance ID is numeric and not in DMI.
        _ => String::new(),
    }
}

/// Provider, instance ID and region from DMI and cloud-init data.
pub fn provider_identity(dmi: &Dmi, ci: Option<&CloudInitData>) -> (String, String, String) {
    let mut provider = provider_from_dmi(dmi);
    if provider == "unknown" {
        if let Some(p) = ci.and_then(|c| c.provider()) {
            provider = p;
        }
    }
    let mut instance_id = ci.map(|c| c.instance_id.clone()).unwrap_or_default();
    // cloud-init's fallback datasource has the literal instance ID "iid-datasource-none".
    if instance_id == "iid-datasource-none" {
        instance_id.clear();
    }
    if instance_id.is_empty() {
        instance_id = instance_id_from_dmi(provider, dmi);
    }
    let region = ci.map(|c| c.region.clone()).unwrap_or_default();
    (provider.to_string(), instance_id, region)
}

/// The identity of the host under `facts` (live).
pub fn detect(facts: &Facts) -> HostInfo {
    let dmi = Dmi::read(facts);
    let ci = CloudInitData::read(facts);
    let (provider, instance_id, region) = provider_identity(&dmi, ci.as_ref());
    let mut id = HostInfo {
        provider,
        instance_id,
        region,
        ..Default::default()
    };
    id.hostname = read(facts, "/proc/sys/kernel/hostname");
    if id.hostname.is_empty() {
        id.hostname = read(facts, "/etc/hostname");
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
    use std::path::Path;

    const NITRO: &[(&str, &str)] = &[
        ("sys_vendor", "Amazon EC2\n"),
        ("product_name", "t3.micro\n"),
        ("product_uuid", "EC2E1916-9099-7CAF-FD21-012345ABCDEF\n"),
        ("bios_vendor", "Amazon EC2\n"),
        ("board_asset_tag", "i-0123456789abcdef0\n"),
        ("chassis_asset_tag", "Amazon EC2\n"),
    ];
    const XEN_EC2: &[(&str, &str)] = &[
        ("sys_vendor", "Xen\n"),
        ("product_name", "HVM domU\n"),
        ("product_version", "4.11.amazon\n"),
        ("product_uuid", "ec2f7c2b-4ad0-0b38-5e9a-0123456789ab\n"),
        ("bios_vendor", "Xen\n"),
        ("bios_version", "4.11.amazon\n"),
    ];
    const AZURE: &[(&str, &str)] = &[
        ("sys_vendor", "Microsoft Corporation\n"),
        ("product_name", "Virtual Machine\n"),
        ("product_version", "7.0\n"),
        ("product_uuid", "8E5B9B3C-1D2A-4F3B-9C4D-5E6F7A8B9C0D\n"),
        ("bios_vendor", "Microsoft Corporation\n"),
        ("chassis_asset_tag", "7783-7084-3265-9085-8269-3286-77\n"),
    ];
    const HYPERV: &[(&str, &str)] = &[
        ("sys_vendor", "Microsoft Corporation\n"),
        ("product_name", "Virtual Machine\n"),
        ("product_uuid", "8E5B9B3C-1D2A-4F3B-9C4D-5E6F7A8B9C0D\n"),
        ("chassis_asset_tag", "0000-0000-0000-0000-0000-0000-00\n"),
    ];
    const GCP: &[(&str, &str)] = &[
        ("sys_vendor", "Google\n"),
        ("product_name", "Google Compute Engine\n"),
        ("product_uuid", "5d3e2a1b-0c9f-4e8d-a7b6-c5d4e3f2a1b0\n"),
        ("bios_vendor", "Google\n"),
        ("chassis_asset_tag", "\n"),
    ];
    const VMWARE: &[(&str, &str)] = &[
        ("sys_vendor", "VMware, Inc.\n"),
        ("product_name", "VMware7,1\n"),
        ("product_uuid", "4211C1A5-7F3E-2B4D-9A8C-0123456789AB\n"),
        ("bios_vendor", "VMware, Inc.\n"),
        ("chassis_asset_tag", "No Asset Tag\n"),
    ];
    const PROXMOX: &[(&str, &str)] = &[
        ("sys_vendor", "QEMU\n"),
        ("product_name", "Standard PC (i440FX + PIIX, 1996)\n"),
        ("product_version", "pc-i440fx-8.1\n"),
        ("product_uuid", "3F2504E0-4F89-11D3-9A0C-0305E82C3301\n"),
        ("bios_vendor", "SeaBIOS\n"),
    ];
    const PROXMOX_Q35: &[(&str, &str)] = &[
        ("sys_vendor", "QEMU\n"),
        ("product_name", "Standard PC (Q35 + ICH9, 2009)\n"),
        ("product_uuid", "3f2504e0-4f89-11d3-9a0c-0305e82c3302\n"),
        ("bios_vendor", "EFI Development Kit II / OVMF\n"),
    ];
    const BARE_METAL: &[(&str, &str)] = &[
        ("sys_vendor", "Dell Inc.\n"),
        ("product_name", "PowerEdge R640\n"),
        ("product_uuid", "4c4c4544-0042-3510-8051-b2c04f4e3732\n"),
        ("bios_vendor", "Dell Inc.\n"),
        ("chassis_asset_tag", "\n"),
    ];

    fn ci(cloud: &str, platform: &str, iid: &str, region: &str) -> String {
        serde_json::json!({
            "v1": {
                "cloud_name": cloud, "platform": platform,
                "instance_id": iid, "region": region,
                "availability_zone": "", "local_hostname": "vm1"
            }
        })
        .to_string()
    }

    /// One fixture tree: a root holding sys/class/dmi/id/* and run/cloud-init/instance-data.json.
    fn tree(dmi: &[(&str, &str)], instance_data: Option<&str>) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        let id = dir.path().join("sys/class/dmi/id");
        std::fs::create_dir_all(&id).unwrap();
        for (name, value) in dmi {
            std::fs::write(id.join(name), value).unwrap();
        }
        if let Some(text) = instance_data {
            let run = dir.path().join("run/cloud-init");
            std::fs::create_dir_all(&run).unwrap();
            std::fs::write(run.join("instance-data.json"), text).unwrap();
        }
        std::fs::create_dir_all(dir.path().join("proc/sys/kernel")).unwrap();
        std::fs::write(dir.path().join("proc/sys/kernel/hostname"), "vm1\n").unwrap();
        dir
    }

    /// (case, DMI files, instance data, provider, instance ID, region)
    type Case<'a> = (
        &'a str,
        &'a [(&'a str, &'a str)],
        Option<&'a str>,
        &'a str,
        &'a str,
        &'a str,
    );

    fn detect_in(root: &Path) -> HostInfo {
        detect(&Facts::new(root, true))
    }

    #[test]
    fn providers_from_fixture_trees() {
        let nitro_ci = ci("aws", "ec2", "i-0123456789abcdef0", "eu-west-1");
        let xen_ci = ci("aws", "ec2", "i-0fedcba9876543210", "us-east-1");
        let azure_ci = ci(
            "azure",
            "azure",
            "8e5b9b3c-1d2a-4f3b-9c4d-5e6f7a8b9c0d",
            "westeurope",
        );
        let gce_ci = ci("gce", "gce", "4520681940389672914", "us-central1");
        let vmware_ci = ci("vmware", "vmware", "vm-1234", "");
        let nocloud_ci = ci("unknown", "nocloud", "d41d8cd98f00b204e9800998ecf8427e", "");
        let none_ci = ci("unknown", "none", "iid-datasource-none", "");
        let aws_only_ci = ci("aws", "ec2", "i-0aaaabbbbccccdddd", "ap-south-1");
        // (case, DMI files, instance data, provider, instance ID, region)
        let cases: Vec<Case> = vec![
            (
                "aws nitro, DMI only",
                NITRO,
                None,
                "aws",
                "i-0123456789abcdef0",
                "",
            ),
            (
                "aws nitro + cloud-init",
                NITRO,
                Some(&nitro_ci),
                "aws",
                "i-0123456789abcdef0",
                "eu-west-1",
            ),
            ("aws xen, DMI only", XEN_EC2, None, "aws", "", ""),
            (
                "aws xen + cloud-init",
                XEN_EC2,
                Some(&xen_ci),
                "aws",
                "i-0fedcba9876543210",
                "us-east-1",
            ),
            (
                "azure, DMI only",
                AZURE,
                None,
                "azure",
                "8e5b9b3c-1d2a-4f3b-9c4d-5e6f7a8b9c0d",
                "",
            ),
            (
                "azure + cloud-init",
                AZURE,
                Some(&azure_ci),
                "azure",
                "8e5b9b3c-1d2a-4f3b-9c4d-5e6f7a8b9c0d",
                "westeurope",
            ),
            ("hyper-v is not azure", HYPERV, None, "unknown", "", ""),
            ("gcp, DMI only", GCP, None, "gcp", "", ""),
            (
                "gcp + cloud-init",
                GCP,
                Some(&gce_ci),
                "gcp",
                "4520681940389672914",
                "us-central1",
            ),
            (
                "vmware, DMI only",
                VMWARE,
                None,
                "vmware",
                "4211c1a5-7f3e-2b4d-9a8c-0123456789ab",
                "",
            ),
            (
                "vmware + cloud-init",
                VMWARE,
                Some(&vmware_ci),
                "vmware",
                "vm-1234",
                "",
            ),
            (
                "proxmox i440fx, DMI only",
                PROXMOX,
                None,
                "proxmox",
                "3f2504e0-4f89-11d3-9a0c-0305e82c3301",
                "",
            ),
            (
                "proxmox + nocloud",
                PROXMOX,
                Some(&nocloud_ci),
                "proxmox",
                "d41d8cd98f00b204e9800998ecf8427e",
                "",
            ),
            (
                "proxmox q35 + datasource none",
                PROXMOX_Q35,
                Some(&none_ci),
                "proxmox",
                "3f2504e0-4f89-11d3-9a0c-0305e82c3302",
                "",
            ),
            ("bare metal", BARE_METAL, None, "unknown", "", ""),
            (
                "bare metal + nocloud",
                BARE_METAL,
                Some(&nocloud_ci),
                "unknown",
                "d41d8cd98f00b204e9800998ecf8427e",
                "",
            ),
            ("no DMI at all", &[], None, "unknown", "", ""),
            (
                "no DMI, cloud-init says aws",
                &[],
                Some(&aws_only_ci),
                "aws",
                "i-0aaaabbbbccccdddd",
                "ap-south-1",
            ),
            (
                "garbage JSON falls back to DMI",
                NITRO,
                Some("{\"v1\": {\"instance_id\": \x00 oops"),
                "aws",
                "i-0123456789abcdef0",
                "",
            ),
            (
                "JSON that is not an object",
                PROXMOX,
                Some("[1, 2, 3]"),
                "proxmox",
                "3f2504e0-4f89-11d3-9a0c-0305e82c3301",
                "",
            ),
            (
                "wrong types are absent",
                VMWARE,
                Some(r#"{"v1": {"instance_id": 42, "region": null, "cloud_name": ["aws"]}}"#),
                "vmware",
                "4211c1a5-7f3e-2b4d-9a8c-0123456789ab",
                "",
            ),
            ("empty file", GCP, Some(""), "gcp", "", ""),
        ];
        for (case, dmi, data, provider, iid, region) in cases {
            let dir = tree(dmi, data);
            let id = detect_in(dir.path());
            assert_eq!(
                (
                    id.provider.as_str(),
                    id.instance_id.as_str(),
                    id.region.as_str()
                ),
                (provider, iid, region),
                "{case}"
            );
            assert_eq!(id.hostname, "vm1", "{case}");
        }
    }

    #[test]
    fn values_are_trimmed_printable_and_bounded() {
        let long = format!("i-{}\n", "a".repeat(5000));
        let dir = tree(
            &[("sys_vendor", "Amazon EC2"), ("board_asset_tag", &long)],
            Some(&ci("aws", "ec2", " i-01\u{7}23 \n", "eu\u{1b}[31m-west-1")),
        );
        let id = detect_in(dir.path());
        assert_eq!(id.instance_id, "i-0123");
        assert_eq!(id.region, "eu[31m-west-1");
        let dir = tree(
            &[("sys_vendor", "Amazon EC2"), ("board_asset_tag", &long)],
            None,
        );
        assert_eq!(detect_in(dir.path()).instance_id.len(), MAX_VALUE);
    }

    #[test]
    fn cloud_init_names_map_to_providers() {
        for (cloud, platform, want) in [
            ("aws", "ec2", Some("aws")),
            ("unknown", "ec2", Some("aws")),
            ("azure", "azure", Some("azure")),
            ("gce", "gce", Some("gcp")),
            ("vmware", "vmware", Some("vmware")),
            ("unknown", "nocloud", None),
            ("openstack", "openstack", None),
        ] {
            let d = CloudInitData::parse(&ci(cloud, platform, "x", "")).unwrap();
            assert_eq!(d.provider(), want, "{cloud}/{platform}");
        }
        assert_eq!(CloudInitData::parse("not json"), None);
        assert_eq!(CloudInitData::parse(r#"{"v2": {}}"#), None);
    }
}
