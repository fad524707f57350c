//! The lab: every test host pushgate may use (`hosts.toml`, beside the policies), how to reach
//! it, how runs get a clean machine on it, and the properties sequences and policies ask for.
//!
//! ```toml
//! admin = "Lab admins <lab@example.org>"   # told when a host is taken out of service
//!
//! [defaults]                     # any host key, for every host that does not set it
//! user = "root"
//! key = "keys/pushgate"          # relative paths are relative to this file
//! known_hosts = "known_hosts"    # the pinned host keys, OpenSSH's format
//!
//! [[host]]
//! name = "xen-1"
//! address = "192.0.2.10"
//! provisioner = "xen"            # local | ssh | xen
//! arch = "x86_64"
//! cpu = "intel"
//! memory_gb = 64
//! tags = ["iommu"]
//!
//! [host.xen]
//! disk = "lvm"                   # lvm (a snapshot of an LV) | qcow2 (an overlay of an image)
//! volume_group = "vg0"
//! golden = "debian-12"           # the LV (lvm) or the image path (qcow2)
//! restore = "/srv/debian-12.save" # optional: `xl restore` a saved guest instead of booting one
//! [host.xen.guest]               # how the guest answers once started
//! address = "192.0.2.110"
//! mac = "00:16:3e:00:00:10"
//! ```

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use toml::Spanned;

use super::ssh::SshTarget;
use crate::file_error::{parse_duration, FileError, Source};

/// The host every installation has when it has no `hosts.toml`: this machine.
pub const LOCAL_HOST: &str = "local";

#[derive(Clone, Debug)]
pub struct Inventory {
    pub file: PathBuf,
    pub hosts: Vec<HostSpec>,
    /// Who hears of a host taken out of service.
    pub admin: Option<String>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct HostSpec {
    pub name: String,
    /// How many runs it takes at once (a local host or a big machine can take several).
    pub slots: u32,
    pub provisioner: ProvisionerSpec,
    pub properties: Properties,
    /// `broken` runs in a row before the host is taken out of service.
    pub max_broken: u32,
}

/// What sequences and policies may ask of a host.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Properties {
    pub arch: Option<String>,
    pub cpu: Option<String>,
    pub memory_gb: Option<u64>,
    pub tags: BTreeSet<String>,
}

#[derive(Clone, Debug, PartialEq)]
pub enum ProvisionerSpec {
    /// Worktrees on this machine, under the state directory.
    Local,
    /// A static machine: a work directory cleaned before and after each run.
    Ssh(SshTarget),
    /// A dom0: each run gets a fresh guest on a copy-on-write disk.
    Xen { dom0: SshTarget, xen: Box<XenSpec> },
}

impl ProvisionerSpec {
    pub fn kind(&self) -> &'static str {
        match self {
            ProvisionerSpec::Local => "local",
            ProvisionerSpec::Ssh(_) => "ssh",
            ProvisionerSpec::Xen { .. } => "xen",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DiskKind {
    /// `lvcreate -s` of the golden LV; `lvremove` afterwards.
    Lvm,
    /// `qemu-img create -b golden -F qcow2` in `image_dir`; removed afterwards.
    Qcow2,
}

#[derive(Clone, Debug, PartialEq)]
pub struct XenSpec {
    pub disk: DiskKind,
    pub volume_group: Option<String>,
    pub golden: String,
    pub snapshot_size: String,
    /// Where guest configs (and qcow2 overlays) are written on the dom0.
    pub image_dir: String,
    /// A saved guest to `xl restore`, much faster than a boot.
    pub restore: Option<String>,
    pub guest_type: String,
    pub memory_mb: u32,
    pub vcpus: u32,
    pub bridge: String,
    pub bootloader: Option<String>,
    pub kernel: Option<String>,
    /// How long the guest may take to answer SSH.
    pub boot_timeout: Duration,
    pub guest: SshTarget,
    pub mac: String,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct File {
    admin: Option<Spanned<String>>,
    #[serde(default)]
    defaults: Common,
    #[serde(default)]
    host: Vec<HostFile>,
}

/// Keys a host may set or inherit from `[defaults]`.
#[derive(Deserialize, Default, Clone)]
#[serde(deny_unknown_fields)]
struct Common {
    port: Option<Spanned<u16>>,
    user: Option<Spanned<String>>,
    key: Option<Spanned<String>>,
    known_hosts: Option<Spanned<String>>,
    work_dir: Option<Spanned<String>>,
    connect_timeout: Option<Spanned<String>>,
    max_broken: Option<Spanned<u32>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct HostFile {
    name: Spanned<String>,
    address: Option<Spanned<String>>,
    #[serde(default = "default_provisioner")]
    provisioner: Spanned<String>,
    slots: Option<Spanned<u32>>,
    arch: Option<String>,
    cpu: Option<String>,
    memory_gb: Option<u64>,
    #[serde(default)]
    tags: Vec<String>,
    port: Option<Spanned<u16>>,
    user: Option<Spanned<String>>,
    key: Option<Spanned<String>>,
    known_hosts: Option<Spanned<String>>,
    work_dir: Option<Spanned<String>>,
    connect_timeout: Option<Spanned<String>>,
    max_broken: Option<Spanned<u32>>,
    xen: Option<Spanned<XenFile>>,
}

fn default_provisioner() -> Spanned<String> {
    Spanned::new(0..0, "ssh".to_string())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct XenFile {
    disk: Spanned<String>,
    volume_group: Option<Spanned<String>>,
    golden: Spanned<String>,
    snapshot_size: Option<Spanned<String>>,
    image_dir: Option<Spanned<String>>,
    restore: Option<Spanned<String>>,
    #[serde(rename = "type")]
    guest_type: Option<Spanned<String>>,
    memory: Option<Spanned<u32>>,
    vcpus: Option<Spanned<u32>>,
    bridge: Option<Spanned<String>>,
    bootloader: Option<Spanned<String>>,
    kernel: Option<Spanned<String>>,
    boot_timeout: Option<Spanned<String>>,
    guest: Spanned<GuestFile>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct GuestFile {
    address: Spanned<String>,
    mac: Spanned<String>,
    port: Option<Spanned<u16>>,
    user: Option<Spanned<String>>,
    key: Option<Spanned<String>>,
    known_hosts: Option<Spanned<String>>,
    work_dir: Option<Spanned<String>>,
    connect_timeout: Option<Spanned<String>>,
    max_broken: Option<Spanned<u32>>,
}

/// The keys every table that says how to log in shares. (Spelt out in each table: toml's
/// `Spanned` does not survive serde's `flatten`.)
macro_rules! common_of {
    ($t:expr) => {
        Common {
            port: $t.port.clone(),
            user: $t.user.clone(),
            key: $t.key.clone(),
            known_hosts: $t.known_hosts.clone(),
            work_dir: $t.work_dir.clone(),
            connect_timeout: $t.connect_timeout.clone(),
            max_broken: $t.max_broken.clone(),
        }
    };
}

impl Inventory {
    /// The inventory of an installation without `hosts.toml`: this machine, with room for
    /// several runs at once as before there was a lab.
    pub fn local_only() -> Inventory {
        Inventory {
            file: PathBuf::from("(no hosts file)"),
            hosts: vec![HostSpec {
                name: LOCAL_HOST.to_string(),
                slots: 8,
                provisioner: ProvisionerSpec::Local,
                properties: Properties {
                    arch: Some(std::env::consts::ARCH.to_string()),
                    ..Default::default()
                },
                max_broken: 3,
            }],
            admin: None,
        }
    }

    /// Reads `path`; a missing file is the local-only lab.
    pub fn load(path: &Path) -> Result<Inventory, FileError> {
        if !path.exists() {
            return Ok(Self::local_only());
        }
        let text = Source::read(path)?;
        Self::parse(path, &text)
    }

    /// Reads a hosts file: defaults, then each host with its provisioner's section.
    pub fn parse(path: &Path, text: &str) -> Result<Inventory, FileError> {
        let src = Source { path, text };
        let base = path.parent().unwrap_or(Path::new("."));
        let file: File = src.parse()?;
        let admin = match file.admin {
            None => None,
            Some(a) => {
                a.get_ref()
                    .parse::<lettre::message::Mailbox>()
                    .map_err(|e| {
                        src.error(a.span(), "admin", format!("not a mail address: {e}"))
                    })?;
                Some(a.into_inner())
            }
        };
        let mut hosts = Vec::new();
        let mut seen = BTreeSet::new();
        for (i, h) in file.host.into_iter().enumerate() {
            let at = |field: &str| format!("host[{i}].{field}");
            let name = h.name.get_ref().clone();
            if !valid_name(&name) {
                return Err(src.error(
                    h.name.span(),
                    &at("name"),
                    format!("`{name}` is not a host name: use letters, digits, `.`, `_` and `-`"),
                ));
            }
            if !seen.insert(name.clone()) {
                return Err(src.error(
                    h.name.span(),
                    &at("name"),
                    format!("`{name}` is listed twice"),
                ));
            }
            let common = common_of!(h).or(&file.defaults);
            let slots = match &h.slots {
                Some(s) if *s.get_ref() == 0 => {
                    return Err(src.error(s.span(), &at("slots"), "a host needs at least one slot"))
                }
                Some(s) => *s.get_ref(),
                None => 1,
            };
            let provisioner = match h.provisioner.get_ref().as_str() {
                "local" => {
                    if let Some(a) = &h.address {
                        return Err(src.error(
                            a.span(),
                            &at("address"),
                            "a local host runs on this machine: remove `address` or use `ssh`",
                        ));
                    }
                    ProvisionerSpec::Local
                }
                "ssh" | "xen" => {
                    let address = h.address.as_ref().ok_or_else(|| {
                        src.error(
                            h.name.span(),
                            &at("address"),
                            format!("host `{name}` needs an `address` to reach it over SSH"),
                        )
                    })?;
                    let ssh = ssh_spec(&src, base, &at(""), address, &common, "/var/tmp/pushgate")?;
                    if h.provisioner.get_ref() == "ssh" {
                        ProvisionerSpec::Ssh(ssh)
                    } else {
                        let xen = h.xen.as_ref().ok_or_else(|| {
                            src.error(
                                h.provisioner.span(),
                                &at("xen"),
                                format!("host `{name}` is a xen host: it needs a [host.xen] table"),
                            )
                        })?;
                        let xen = xen_spec(&src, base, &at("xen."), xen, &common)?;
                        if let Some(s) = h.slots.as_ref().filter(|s| *s.get_ref() != 1) {
                            return Err(src.error(
                                s.span(),
                                &at("slots"),
                                "a xen host has one guest address, so one slot",
                            ));
                        }
                        ProvisionerSpec::Xen {
                            dom0: ssh,
                            xen: Box::new(xen),
                        }
                    }
                }
                other => {
                    return Err(src.error(
                        h.provisioner.span(),
                        &at("provisioner"),
                        format!("`{other}` is not a provisioner: use local, ssh or xen"),
                    ))
                }
            };
            if let (Some(x), false) = (&h.xen, matches!(provisioner, ProvisionerSpec::Xen { .. })) {
                return Err(src.error(
                    x.span(),
                    &at("xen"),
                    "[host.xen] is only for `provisioner = \"xen\"`",
                ));
            }
            hosts.push(HostSpec {
                name,
                slots,
                provisioner,
                properties: Properties {
                    arch: h.arch,
                    cpu: h.cpu,
                    memory_gb: h.memory_gb,
                    tags: h.tags.into_iter().collect(),
                },
                max_broken: common.max_broken.map_or(3, |m| *m.get_ref()).max(1),
            });
        }
        if hosts.is_empty() {
            return Err(src.whole("host", "the lab has no [[host]]"));
        }
        Ok(Inventory {
            file: path.to_path_buf(),
            hosts,
            admin,
        })
    }

    pub fn get(&self, name: &str) -> Option<&HostSpec> {
        self.hosts.iter().find(|h| h.name == name)
    }
}

impl Common {
    /// This host's keys, falling back to the defaults'.
    fn or(&self, defaults: &Common) -> Common {
        Common {
            port: self.port.clone().or_else(|| defaults.port.clone()),
            user: self.user.clone().or_else(|| defaults.user.clone()),
            key: self.key.clone().or_else(|| defaults.key.clone()),
            known_hosts: self
                .known_hosts
                .clone()
                .or_else(|| defaults.known_hosts.clone()),
            work_dir: self.work_dir.clone().or_else(|| defaults.work_dir.clone()),
            connect_timeout: self
                .connect_timeout
                .clone()
                .or_else(|| defaults.connect_timeout.clone()),
            max_broken: self
                .max_broken
                .clone()
                .or_else(|| defaults.max_broken.clone()),
        }
    }
}

fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
}

fn relative(base: &Path, p: &str) -> PathBuf {
    let p = Path::new(p);
    if p.is_absolute() {
        p.to_path_buf()
    } else {
        base.join(p)
    }
}

/// How to log in to `address`, from the host's keys and the defaults.
fn ssh_spec(
    src: &Source,
    base: &Path,
    at: &str,
    address: &Spanned<String>,
    common: &Common,
    default_work_dir: &str,
) -> Result<SshTarget, FileError> {
    let key = common.key.as_ref().ok_or_else(|| {
        src.error(
            address.span(),
            &format!("{at}key"),
            "no SSH `key` for this host (set it here or in [defaults])",
        )
    })?;
    let key_path = relative(base, key.get_ref());
    if !key_path.is_file() {
        return Err(src.error(
            key.span(),
            &format!("{at}key"),
            format!("{} is not a readable key file", key_path.display()),
        ));
    }
    let known_hosts = common.known_hosts.as_ref().map_or_else(
        || {
            std::env::var_os("HOME")
                .map(|h| PathBuf::from(h).join(".ssh/known_hosts"))
                .unwrap_or_else(|| PathBuf::from("/etc/ssh/ssh_known_hosts"))
        },
        |k| relative(base, k.get_ref()),
    );
    let connect_timeout = match &common.connect_timeout {
        None => Duration::from_secs(30),
        Some(t) => parse_duration(t.get_ref())
            .map_err(|m| src.error(t.span(), &format!("{at}connect_timeout"), m))?,
    };
    let work_dir = common
        .work_dir
        .as_ref()
        .map_or(default_work_dir.to_string(), |w| w.get_ref().clone());
    if !work_dir.starts_with('/') {
        let span = common.work_dir.as_ref().map_or(0..0, |w| w.span());
        return Err(src.error(
            span,
            &format!("{at}work_dir"),
            format!("`{work_dir}` must be an absolute path on the host"),
        ));
    }
    Ok(SshTarget {
        address: address.get_ref().clone(),
        port: common.port.as_ref().map_or(22, |p| *p.get_ref()),
        user: common
            .user
            .as_ref()
            .map_or("root".to_string(), |u| u.get_ref().clone()),
        key: key_path,
        known_hosts,
        work_dir,
        connect_timeout,
    })
}

fn xen_spec(
    src: &Source,
    base: &Path,
    at: &str,
    xen: &Spanned<XenFile>,
    host: &Common,
) -> Result<XenSpec, FileError> {
    let x = xen.get_ref();
    let field = |f: &str| format!("{at}{f}");
    let word = |s: &Spanned<String>, f: &str| -> Result<String, FileError> {
        // Every value lands in a shell command or an xl config line on the dom0.
        let v = s.get_ref();
        if v.is_empty()
            || !v
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '/' | '.' | '_' | '-' | ':'))
        {
            return Err(src.error(
                s.span(),
                &field(f),
                format!("`{v}` may hold only letters, digits and / . _ - :"),
            ));
        }
        Ok(v.clone())
    };
    let disk = match x.disk.get_ref().as_str() {
        "lvm" => DiskKind::Lvm,
        "qcow2" => DiskKind::Qcow2,
        other => {
            return Err(src.error(
                x.disk.span(),
                &field("disk"),
                format!("`{other}` is not a disk kind: use lvm or qcow2"),
            ))
        }
    };
    let volume_group = x
        .volume_group
        .as_ref()
        .map(|v| word(v, "volume_group"))
        .transpose()?;
    if disk == DiskKind::Lvm && volume_group.is_none() {
        return Err(src.error(
            x.disk.span(),
            &field("volume_group"),
            "an lvm disk needs the `volume_group` that holds the golden LV",
        ));
    }
    let golden = word(&x.golden, "golden")?;
    if disk == DiskKind::Qcow2 && !golden.starts_with('/') {
        return Err(src.error(
            x.golden.span(),
            &field("golden"),
            "a qcow2 golden image is an absolute path on the dom0",
        ));
    }
    let opt = |v: &Option<Spanned<String>>, f: &str| v.as_ref().map(|s| word(s, f)).transpose();
    let mac = x.guest.get_ref().mac.get_ref().clone();
    let hex_pairs = mac.split(':').collect::<Vec<_>>();
    if hex_pairs.len() != 6
        || !hex_pairs
            .iter()
            .all(|p| p.len() == 2 && p.chars().all(|c| c.is_ascii_hexdigit()))
    {
        return Err(src.error(
            x.guest.get_ref().mac.span(),
            &field("guest.mac"),
            format!("`{mac}` is not a MAC address like 00:16:3e:00:00:10"),
        ));
    }
    let guest_common = common_of!(x.guest.get_ref()).or(host);
    let guest = ssh_spec(
        src,
        base,
        &field("guest."),
        &x.guest.get_ref().address,
        &guest_common,
        "/root",
    )?;
    let boot_timeout = match &x.boot_timeout {
        None => Duration::from_secs(300),
        Some(t) => parse_duration(t.get_ref())
            .map_err(|m| src.error(t.span(), &field("boot_timeout"), m))?,
    };
    let guest_type = opt(&x.guest_type, "type")?.unwrap_or_else(|| "pvh".into());
    if !matches!(guest_type.as_str(), "pv" | "pvh" | "hvm") {
        let span = x.guest_type.as_ref().map_or(0..0, |t| t.span());
        return Err(src.error(span, &field("type"), "the guest type is pv, pvh or hvm"));
    }
    Ok(XenSpec {
        disk,
        volume_group,
        golden,
        snapshot_size: opt(&x.snapshot_size, "snapshot_size")?.unwrap_or_else(|| "8G".into()),
        image_dir: opt(&x.image_dir, "image_dir")?.unwrap_or_else(|| "/var/lib/pushgate".into()),
        restore: opt(&x.restore, "restore")?,
        guest_type,
        memory_mb: x.memory.as_ref().map_or(2048, |m| *m.get_ref()),
        vcpus: x.vcpus.as_ref().map_or(2, |m| *m.get_ref()),
        bridge: opt(&x.bridge, "bridge")?.unwrap_or_else(|| "xenbr0".into()),
        bootloader: opt(&x.bootloader, "bootloader")?,
        kernel: opt(&x.kernel, "kernel")?,
        boot_timeout,
        guest,
        mac: mac.to_ascii_lowercase(),
    })
}

/// What a run asks of its host: from its sequence's `needs` (and the policy's), or the host a
/// person named.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Needs {
    pub host: Option<String>,
    pub provisioner: Option<String>,
    pub arch: Option<String>,
    pub cpu: Option<String>,
    pub memory_gb: Option<u64>,
    pub tags: BTreeSet<String>,
    /// The run is untrusted code (a mailed series): a test host only, never pushgate's own
    /// machine (the local provisioner), where it could read the store and the credentials.
    pub untrusted: bool,
}

impl Needs {
    /// Reads a `needs` table; unknown keys are refused so that a typo does not match any host.
    pub fn parse(map: &BTreeMap<String, String>) -> Result<Needs, String> {
        let mut needs = Needs::default();
        for (key, value) in map {
            match key.as_str() {
                "host" => needs.host = Some(value.clone()),
                "provisioner" => needs.provisioner = Some(value.clone()),
                "arch" => needs.arch = Some(value.clone()),
                "cpu" => needs.cpu = Some(value.clone()),
                "memory_gb" => {
                    needs.memory_gb = Some(value.trim().parse().map_err(|_| {
                        format!("needs.memory_gb: `{value}` is not a number of GiB")
                    })?)
                }
                "tags" | "tag" => needs.tags.extend(
                    value
                        .split([',', ' '])
                        .filter(|t| !t.is_empty())
                        .map(str::to_string),
                ),
                other => {
                    return Err(format!(
                        "needs.{other}: hosts are matched on host, provisioner, arch, cpu, \
                         memory_gb and tags"
                    ))
                }
            }
        }
        Ok(needs)
    }

    /// Adds `other`'s demands; `other` wins where both name a value.
    pub fn and(mut self, other: &Needs) -> Needs {
        self.host = other.host.clone().or(self.host);
        self.provisioner = other.provisioner.clone().or(self.provisioner);
        self.arch = other.arch.clone().or(self.arch);
        self.cpu = other.cpu.clone().or(self.cpu);
        self.memory_gb = other.memory_gb.max(self.memory_gb);
        self.tags.extend(other.tags.iter().cloned());
        self.untrusted |= other.untrusted;
        self
    }

    pub fn matches(&self, host: &HostSpec) -> bool {
        let p = &host.properties;
        let same = |need: &Option<String>, have: Option<&str>| {
            need.as_deref().is_none_or(|n| have == Some(n))
        };
        same(&self.host, Some(&host.name))
            && same(&self.provisioner, Some(host.provisioner.kind()))
            && same(&self.arch, p.arch.as_deref())
            && same(&self.cpu, p.cpu.as_deref())
            && self
                .memory_gb
                .is_none_or(|m| p.memory_gb.is_some_and(|have| have >= m))
            && self.tags.is_subset(&p.tags)
            && !(self.untrusted && matches!(host.provisioner, ProvisionerSpec::Local))
    }
}

impl std::fmt::Display for Needs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut parts = Vec::new();
        for (k, v) in [
            ("host", &self.host),
            ("provisioner", &self.provisioner),
            ("arch", &self.arch),
            ("cpu", &self.cpu),
        ] {
            if let Some(v) = v {
                parts.push(format!("{k}={v}"));
            }
        }
        if let Some(m) = self.memory_gb {
            parts.push(format!("memory_gb>={m}"));
        }
        if !self.tags.is_empty() {
            parts.push(format!(
                "tags={}",
                self.tags.iter().cloned().collect::<Vec<_>>().join(",")
            ));
        }
        if self.untrusted {
            parts.push("a test host (not local)".to_string());
        }
        if parts.is_empty() {
            write!(f, "any host")
        } else {
            write!(f, "{}", parts.join(" "))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn untrusted_runs_never_match_the_local_machine() {
        let local = Inventory::local_only().hosts.remove(0);
        let lab = lab(XEN).unwrap();
        let untrusted = Needs {
            untrusted: true,
            ..Needs::default()
        };
        assert!(Needs::default().matches(&local));
        assert!(!untrusted.matches(&local));
        assert!(
            lab.hosts.iter().all(|h| untrusted.matches(h)),
            "xen and ssh hosts"
        );
        assert!(Needs::default().and(&untrusted).untrusted);
        assert_eq!(untrusted.to_string(), "a test host (not local)");
    }

    fn lab(text: &str) -> Result<Inventory, FileError> {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("id"), "key").unwrap();
        let path = dir.path().join("hosts.toml");
        Inventory::parse(&path, text)
    }

    const XEN: &str = r#"
admin = "Lab <lab@example.org>"
[defaults]
key = "id"
known_hosts = "kh"
[[host]]
name = "xen-1"
address = "192.0.2.10"
provisioner = "xen"
arch = "x86_64"
memory_gb = 64
tags = ["iommu", "nested"]
[host.xen]
disk = "lvm"
volume_group = "vg0"
golden = "debian-12"
restore = "/srv/debian.save"
[host.xen.guest]
address = "192.0.2.110"
mac = "00:16:3E:00:00:10"
user = "tester"
[[host]]
name = "box"
address = "192.0.2.11"
port = 2222
slots = 2
"#;

    #[test]
    fn reads_a_lab() {
        let inv = lab(XEN).unwrap();
        assert_eq!(inv.hosts.len(), 2);
        let ProvisionerSpec::Xen { dom0, xen } = &inv.hosts[0].provisioner else {
            panic!("xen-1 is a xen host")
        };
        assert_eq!((dom0.user.as_str(), dom0.port), ("root", 22));
        assert_eq!(xen.guest.user, "tester");
        assert_eq!(xen.guest.work_dir, "/root");
        assert_eq!(xen.mac, "00:16:3e:00:00:10");
        assert_eq!(xen.restore.as_deref(), Some("/srv/debian.save"));
        assert!(dom0.key.ends_with("id"));
        let ProvisionerSpec::Ssh(ssh) = &inv.hosts[1].provisioner else {
            panic!("box is an ssh host")
        };
        assert_eq!((ssh.port, inv.hosts[1].slots), (2222, 2));
        assert_eq!(inv.admin.as_deref(), Some("Lab <lab@example.org>"));
    }

    #[test]
    fn bad_labs_are_located() {
        for (change, line, field) in [
            (("name = \"box\"", "name = \"xen-1\""), 23, "host[1].name"),
            (("name = \"box\"", "name = \"a b\""), 23, "host[1].name"),
            (("disk = \"lvm\"", "disk = \"zfs\""), 14, "host[0].xen.disk"),
            (
                ("mac = \"00:16:3E:00:00:10\"", "mac = \"00:16\""),
                20,
                "host[0].xen.guest.mac",
            ),
            (
                ("golden = \"debian-12\"", "golden = \"a;rm -rf /\""),
                16,
                "host[0].xen.golden",
            ),
            (("slots = 2", "slots = 0"), 26, "host[1].slots"),
            (("port = 2222", "port = 99999"), 25, "port"),
            (("key = \"id\"", "key = \"missing\""), 4, "host[0].key"),
            (("arch = \"x86_64\"", "colour = \"red\""), 10, "colour"),
            (
                ("provisioner = \"xen\"", "provisioner = \"kvm\""),
                9,
                "host[0].provisioner",
            ),
        ] {
            let text = XEN.replacen(change.0, change.1, 1);
            let e = lab(&text).unwrap_err();
            assert_eq!((e.line, e.field.as_str()), (line, field), "{change:?}: {e}");
        }
        let e = lab("admin = \"x@y\"\n").unwrap_err();
        assert_eq!(e.field, "host", "{e}");
        let e = lab(&XEN.replace("[host.xen]", "[host.xenx]")).unwrap_err();
        assert!(e.message.contains("xenx"), "{e}");
    }

    #[test]
    fn needs_match_properties() {
        let inv = lab(XEN).unwrap();
        let need = |pairs: &[(&str, &str)]| {
            Needs::parse(
                &pairs
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect(),
            )
            .unwrap()
        };
        let (xen, plain) = (&inv.hosts[0], &inv.hosts[1]);
        assert!(need(&[]).matches(plain));
        assert!(need(&[("arch", "x86_64"), ("memory_gb", "32")]).matches(xen));
        assert!(!need(&[("memory_gb", "128")]).matches(xen));
        assert!(!need(&[("arch", "x86_64")]).matches(plain));
        assert!(need(&[("tags", "iommu, nested")]).matches(xen));
        assert!(!need(&[("tags", "iommu,sriov")]).matches(xen));
        assert!(need(&[("provisioner", "ssh")]).matches(plain));
        assert!(need(&[("host", "box")]).matches(plain) && !need(&[("host", "box")]).matches(xen));
        assert!(Needs::parse(&[("colour".to_string(), "red".to_string())].into()).is_err());
        assert!(Needs::parse(&[("memory_gb".to_string(), "lots".to_string())].into()).is_err());
        assert_eq!(
            need(&[("arch", "arm64"), ("tags", "a,b")]).to_string(),
            "arch=arm64 tags=a,b"
        );
    }

    #[test]
    fn mangled_labs_never_panic() {
        // Every byte of the sample dropped, or replaced by a character TOML cares about.
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("id"), "key").unwrap();
        let path = dir.path().join("hosts.toml");
        let bytes = XEN.as_bytes();
        for i in 0..bytes.len() {
            for replacement in [None, Some(b'"'), Some(b'['), Some(b'='), Some(b'0')] {
                let mut m = bytes.to_vec();
                match replacement {
                    None => {
                        m.remove(i);
                    }
                    Some(b) => m[i] = b,
                }
                if let Ok(s) = std::str::from_utf8(&m) {
                    if let Err(e) = Inventory::parse(&path, s) {
                        assert!(e.to_string().starts_with(&path.display().to_string()));
                    }
                }
            }
        }
    }

    #[test]
    fn no_file_is_this_machine() {
        let inv = Inventory::load(Path::new("/nonexistent/hosts.toml")).unwrap();
        assert_eq!(inv.hosts[0].name, LOCAL_HOST);
        assert_eq!(inv.hosts[0].provisioner, ProvisionerSpec::Local);
    }
}
