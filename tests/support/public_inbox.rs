//! A real public-inbox (Debian's public-inbox, as lore runs it): a v2 archive made with
//! `public-inbox-init -V2`, mail delivered through `public-inbox-mda`, and
//! `public-inbox-httpd` on a free loopback port, stopped by PID.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

pub struct PublicInbox {
    /// HOME and PI_CONFIG live here, so nothing touches the user's own.
    home: tempfile::TempDir,
    pub dir: PathBuf,
    pub name: String,
    pub address: String,
    httpd: Option<Child>,
    pub port: u16,
}

impl PublicInbox {
    pub fn new(name: &str) -> PublicInbox {
        let home = tempfile::tempdir().unwrap();
        let dir = home.path().join(name);
        let address = format!("{name}@lists.example.org");
        let inbox = PublicInbox {
            dir,
            name: name.to_string(),
            address,
            home,
            httpd: None,
            port: 0,
        };
        let out = inbox
            .command("public-inbox-init")
            .args(["-V2", &inbox.name])
            .arg(&inbox.dir)
            .args([
                &format!("http://lists.example.org/{}", inbox.name),
                &inbox.address,
            ])
            .output()
            .expect("public-inbox-init runs (the test script installs public-inbox)");
        assert!(
            out.status.success(),
            "public-inbox-init: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        // No SpamAssassin here.
        let out = Command::new("git")
            .args(["config", "-f"])
            .arg(inbox.config())
            .args(["publicinboxmda.spamcheck", "none"])
            .output()
            .unwrap();
        assert!(out.status.success());
        inbox
    }

    fn config(&self) -> PathBuf {
        self.home.path().join("config")
    }

    fn command(&self, program: &str) -> Command {
        let mut c = Command::new(program);
        c.env("HOME", self.home.path())
            .env("PI_CONFIG", self.config())
            .env("ORIGINAL_RECIPIENT", &self.address);
        c
    }

    /// Delivers one message as the MTA would; it must carry the list in To: or Cc:.
    pub fn deliver(&self, raw: &[u8]) {
        let mut child = self
            .command("public-inbox-mda")
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        child.stdin.take().unwrap().write_all(raw).unwrap();
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "public-inbox-mda: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// Starts public-inbox-httpd; the inbox is then at [`PublicInbox::url`].
    pub fn serve(&mut self) {
        let port = super::free_port();
        let log = std::fs::File::create(self.home.path().join("httpd.log")).unwrap();
        let child = self
            .command("public-inbox-httpd")
            .arg("-l")
            .arg(format!("http://127.0.0.1:{port}"))
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("public-inbox-httpd runs");
        self.httpd = Some(child);
        self.port = port;
        super::wait_for_port(port, "public-inbox-httpd");
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}/{}", self.port, self.name)
    }

    pub fn path(&self) -> &Path {
        &self.dir
    }
}

impl Drop for PublicInbox {
    fn drop(&mut self) {
        if let Some(mut child) = self.httpd.take() {
            // SAFETY: kill(2) on the PID of a child this struct started.
            unsafe {
                libc::kill(child.id() as i32, libc::SIGTERM);
            }
            let _ = child.wait();
        }
    }
}
