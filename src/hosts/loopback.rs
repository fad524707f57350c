//! A private OpenSSH server on a loopback port, with fresh host and client keys, for the tests
//! and `bench ssh`: the closest real thing to a test host that runs on any Debian machine
//! (openssh-server and openssh-client). Stopped, with every session it forked, when dropped.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::SshTarget;

/// A running private sshd; its files (keys, port, [`SshdFiles::target`]) through `Deref`.
pub struct LoopbackSshd {
    files: SshdFiles,
    child: Child,
}

impl std::ops::Deref for LoopbackSshd {
    type Target = SshdFiles;
    fn deref(&self) -> &SshdFiles {
        &self.files
    }
}

fn keygen(path: &Path) -> Result<(), String> {
    let ok = Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-f"])
        .arg(path)
        .status()
        .map_err(|e| format!("ssh-keygen: {e} (install openssh-client)"))?
        .success();
    ok.then_some(())
        .ok_or_else(|| "ssh-keygen failed".to_string())
}

fn io(e: std::io::Error) -> String {
    e.to_string()
}

/// The files of a private sshd (keys, config, pinned known_hosts) on a chosen free port,
/// not started: [`LoopbackSshd`] starts one, and the stand-in dom0's `xl create` starts one as
/// a guest "booting".
pub struct SshdFiles {
    pub dir: tempfile::TempDir,
    pub port: u16,
    pub user: String,
}

impl SshdFiles {
    /// Writes keys and `sshd_config` (plus `extra` config lines); steps log in as `user`
    /// (default: whoever runs this).
    pub fn prepare(user: Option<&str>, extra: &str) -> Result<SshdFiles, String> {
        // sshd's privilege separation directory.
        let _ = std::fs::create_dir_all("/run/sshd");
        let dir = tempfile::tempdir().map_err(io)?;
        let d = dir.path().to_path_buf();
        keygen(&d.join("host_key"))?;
        keygen(&d.join("other_host_key"))?;
        keygen(&d.join("client_key"))?;
        std::fs::copy(d.join("client_key.pub"), d.join("authorized_keys")).map_err(io)?;
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map_err(io)?
            .port();
        let config = format!(
            "Port {port}\nListenAddress 127.0.0.1\nHostKey {d}/host_key\nPidFile {d}/sshd.pid\n\
             AuthorizedKeysFile {d}/authorized_keys\nStrictModes no\nUsePAM no\n\
             PasswordAuthentication no\nKbdInteractiveAuthentication no\nPermitRootLogin yes\n\
             MaxSessions 64\nMaxStartups 100\nLogLevel ERROR\n{extra}",
            d = d.display()
        );
        std::fs::write(d.join("sshd_config"), config).map_err(io)?;
        let pinned = std::fs::read_to_string(d.join("host_key.pub")).map_err(io)?;
        std::fs::write(
            d.join("known_hosts"),
            format!("[127.0.0.1]:{port} {pinned}"),
        )
        .map_err(io)?;
        let me = Command::new("id").arg("-un").output().map_err(io)?;
        let user = user.map_or_else(
            || String::from_utf8_lossy(&me.stdout).trim().to_string(),
            str::to_string,
        );
        Ok(SshdFiles { dir, port, user })
    }

    pub fn config(&self) -> PathBuf {
        self.dir.path().join("sshd_config")
    }

    /// How to reach it, with its host key pinned.
    pub fn target(&self) -> SshTarget {
        let d = self.dir.path();
        SshTarget {
            address: "127.0.0.1".into(),
            port: self.port,
            user: self.user.clone(),
            key: d.join("client_key"),
            known_hosts: d.join("known_hosts"),
            work_dir: d.join("work").display().to_string(),
            connect_timeout: Duration::from_secs(10),
        }
    }
}

impl LoopbackSshd {
    /// Starts sshd on a free port; steps log in as `user` (default: whoever runs this).
    pub fn start(user: Option<&str>) -> Result<LoopbackSshd, String> {
        Self::start_with(user, "")
    }

    /// The same, with more `sshd_config` lines (`SetEnv PATH=...` for a stand-in dom0).
    pub fn start_with(user: Option<&str>, extra: &str) -> Result<LoopbackSshd, String> {
        let files = SshdFiles::prepare(user, extra)?;
        let child = Command::new("/usr/sbin/sshd")
            .args(["-D", "-e", "-f"])
            .arg(files.config())
            .stdin(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("/usr/sbin/sshd: {e} (install openssh-server)"))?;
        let port = files.port;
        let server = LoopbackSshd { files, child };
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            if Instant::now() > deadline {
                return Err(format!("sshd did not listen on {port}"));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(server)
    }

    /// A known_hosts file that pins another key for this server.
    pub fn changed_known_hosts(&self) -> Result<PathBuf, String> {
        let d = self.dir.path();
        let other = std::fs::read_to_string(d.join("other_host_key.pub")).map_err(io)?;
        let path = d.join("known_hosts_changed");
        std::fs::write(&path, format!("[127.0.0.1]:{} {other}", self.port)).map_err(io)?;
        Ok(path)
    }

    /// Cuts every open connection by killing the per-connection sshd processes.
    pub fn cut_connections(&self) {
        let _ = Command::new("pkill")
            .args(["-KILL", "-P", &self.child.id().to_string()])
            .status();
    }
}

impl Drop for LoopbackSshd {
    fn drop(&mut self) {
        self.cut_connections();
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
