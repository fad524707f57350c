//! A real OpenSSH server on a loopback port with its own host and client keys, for the tests
//! of the SSH host. Stopped (with every session it forked) when dropped.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use pushgate::hosts::SshTarget;

pub struct Sshd {
    pub dir: tempfile::TempDir,
    pub port: u16,
    child: Child,
}

fn keygen(path: &Path) {
    let ok = Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-f"])
        .arg(path)
        .status()
        .expect("ssh-keygen (openssh-client)")
        .success();
    assert!(ok, "ssh-keygen failed");
}

impl Sshd {
    pub fn start() -> Sshd {
        // sshd's privilege separation directory.
        let _ = std::fs::create_dir_all("/run/sshd");
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        keygen(&d.join("host_key"));
        keygen(&d.join("other_host_key"));
        keygen(&d.join("client_key"));
        std::fs::copy(d.join("client_key.pub"), d.join("authorized_keys")).unwrap();
        let port = super::free_port();
        let config = format!(
            "Port {port}\nListenAddress 127.0.0.1\nHostKey {d}/host_key\nPidFile {d}/sshd.pid\n\
             AuthorizedKeysFile {d}/authorized_keys\nStrictModes no\nUsePAM no\n\
             PasswordAuthentication no\nKbdInteractiveAuthentication no\nPermitRootLogin yes\n\
             MaxSessions 64\nMaxStartups 64\nLogLevel ERROR\n",
            d = d.display()
        );
        std::fs::write(d.join("sshd_config"), config).unwrap();
        let child = Command::new("/usr/sbin/sshd")
            .args(["-D", "-e", "-f"])
            .arg(d.join("sshd_config"))
            .stdin(Stdio::null())
            .spawn()
            .expect("/usr/sbin/sshd (openssh-server)");
        super::wait_for_port(port, "sshd");
        let pinned = std::fs::read_to_string(d.join("host_key.pub")).unwrap();
        std::fs::write(
            d.join("known_hosts"),
            format!("[127.0.0.1]:{port} {pinned}"),
        )
        .unwrap();
        Sshd { dir, port, child }
    }

    pub fn target(&self) -> SshTarget {
        let d = self.dir.path();
        SshTarget {
            address: "127.0.0.1".into(),
            port: self.port,
            user: whoami(),
            key: d.join("client_key"),
            known_hosts: d.join("known_hosts"),
            work_dir: d.join("work").display().to_string(),
            connect_timeout: std::time::Duration::from_secs(10),
        }
    }

    /// A known_hosts file that pins another key for this server.
    pub fn changed_known_hosts(&self) -> PathBuf {
        let d = self.dir.path();
        let other = std::fs::read_to_string(d.join("other_host_key.pub")).unwrap();
        let path = d.join("known_hosts_changed");
        std::fs::write(&path, format!("[127.0.0.1]:{} {other}", self.port)).unwrap();
        path
    }

    /// Cuts every open connection by killing the per-connection sshd processes.
    pub fn cut_connections(&self) {
        let _ = Command::new("pkill")
            .args(["-KILL", "-P", &self.child.id().to_string()])
            .status();
    }
}

pub fn whoami() -> String {
    let out = Command::new("id").arg("-un").output().unwrap();
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

impl Drop for Sshd {
    fn drop(&mut self) {
        self.cut_connections();
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
