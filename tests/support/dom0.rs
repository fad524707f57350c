//! A stand-in Xen dom0 for the tests: a real sshd on loopback whose PATH starts with the
//! stand-in `xl`, `lvcreate`, `lvremove`, `lvs` and `qemu-img` of `tests/standin-dom0/`, and a
//! guest sshd that `xl create` starts and `xl destroy` stops, as a booted guest would answer.

use std::path::{Path, PathBuf};

use pushgate::hosts::{LoopbackSshd, SshdFiles};

pub struct Dom0 {
    pub sshd: LoopbackSshd,
    pub guest: SshdFiles,
    /// The stand-in tools' state: `transcript`, `domains/`, `lvs/VG/`, `fail/`, `hang/`.
    pub state: tempfile::TempDir,
    /// Where guest configs and qcow2 overlays go.
    pub images: PathBuf,
}

impl Dom0 {
    pub fn start() -> Dom0 {
        let standin = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/standin-dom0");
        let state = tempfile::tempdir().unwrap();
        let env = format!(
            "SetEnv PATH={}:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin STANDIN_STATE={}\n",
            standin.display(),
            state.path().display()
        );
        let sshd = LoopbackSshd::start_with(None, &env).expect("the dom0's sshd");
        let guest = SshdFiles::prepare(None, "").expect("the guest's sshd files");
        std::fs::create_dir_all(state.path().join("guest")).unwrap();
        std::fs::copy(guest.config(), state.path().join("guest/sshd_config")).unwrap();
        std::fs::create_dir_all(state.path().join("lvs/vg0")).unwrap();
        std::fs::write(state.path().join("lvs/vg0/debian-12"), "golden\n").unwrap();
        let images = state.path().join("images");
        Dom0 {
            sshd,
            guest,
            state,
            images,
        }
    }

    /// Without a guest to start: `xl create` works but nothing ever answers SSH.
    pub fn no_guest(&self) {
        let _ = std::fs::remove_file(self.state.path().join("guest/sshd_config"));
    }

    /// Makes `TOOL-SUB` (`xl-create`, `lvcreate`) fail, or hang.
    pub fn inject(&self, what: &str, name: &str) {
        let dir = self.state.path().join(what);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join(name), "").unwrap();
    }

    /// Every stand-in call so far, one a line, with the state directory shown as `$STATE`.
    pub fn transcript(&self) -> Vec<String> {
        std::fs::read_to_string(self.state.path().join("transcript"))
            .unwrap_or_default()
            .lines()
            .map(|l| l.replace(&self.state.path().display().to_string(), "$STATE"))
            .collect()
    }

    pub fn clear_transcript(&self) {
        let _ = std::fs::remove_file(self.state.path().join("transcript"));
    }

    /// Domains, logical volumes and files under images/ that exist now.
    pub fn leftovers(&self) -> Vec<String> {
        let mut out = Vec::new();
        let list = |dir: PathBuf| -> Vec<String> {
            let mut v: Vec<String> = std::fs::read_dir(dir)
                .map(|d| {
                    d.flatten()
                        .map(|e| e.file_name().to_string_lossy().into_owned())
                        .collect()
                })
                .unwrap_or_default();
            v.sort();
            v
        };
        for d in list(self.state.path().join("domains")) {
            out.push(format!("domain {d}"));
        }
        for lv in list(self.state.path().join("lvs/vg0")) {
            if lv != "debian-12" {
                out.push(format!("lv {lv}"));
            }
        }
        for f in list(self.images.clone()) {
            if !f.starts_with("golden") {
                out.push(format!("image {f}"));
            }
        }
        out
    }

    /// Whether the guest's sshd answers.
    pub fn guest_up(&self) -> bool {
        std::net::TcpStream::connect(("127.0.0.1", self.guest.port)).is_ok()
    }

    /// A hosts.toml with this dom0 as host `xen-1` (`disk` and extra `[host.xen]` lines given).
    pub fn hosts_toml(&self, xen_extra: &str) -> String {
        let dom0 = self.sshd.target();
        let guest = self.guest.target();
        format!(
            "[[host]]\nname = \"xen-1\"\naddress = \"127.0.0.1\"\nport = {port}\nuser = \"{user}\"\n\
             key = \"{key}\"\nknown_hosts = \"{kh}\"\nprovisioner = \"xen\"\narch = \"x86_64\"\n\
             connect_timeout = \"5s\"\n\
             [host.xen]\nimage_dir = \"{images}\"\n{boot}{xen_extra}\n\
             [host.xen.guest]\naddress = \"127.0.0.1\"\nport = {gport}\nmac = \"00:16:3e:00:00:10\"\n\
             user = \"{guser}\"\nkey = \"{gkey}\"\nknown_hosts = \"{gkh}\"\nwork_dir = \"{gwork}\"\n",
            port = dom0.port,
            user = dom0.user,
            key = dom0.key.display(),
            kh = dom0.known_hosts.display(),
            images = self.images.display(),
            boot = if xen_extra.contains("boot_timeout") {
                ""
            } else {
                "boot_timeout = \"20s\"\n"
            },
            gport = guest.port,
            guser = guest.user,
            gkey = guest.key.display(),
            gkh = guest.known_hosts.display(),
            gwork = guest.work_dir,
        )
    }
}

impl Drop for Dom0 {
    fn drop(&mut self) {
        // A guest left running by a failed test must not outlive it.
        if let Ok(entries) = std::fs::read_dir(self.state.path().join("domains")) {
            for e in entries.flatten() {
                if e.path().extension().is_some_and(|x| x == "pid") {
                    if let Ok(pid) = std::fs::read_to_string(e.path()) {
                        let _ = std::process::Command::new("kill").arg(pid.trim()).status();
                    }
                }
            }
        }
    }
}
