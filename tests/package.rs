//! The Debian package, built by `packaging/build-deb` from the binary under test and installed
//! with dpkg into a copy-on-write view of this machine (an overlay over `/`, in private mount
//! and network namespaces), so that the machine itself is left as it was: it makes the
//! `pushgate` user and its state directory, its unit passes `systemd-analyze verify`, and the
//! installed binary, started by hand as that user on the packaged configuration, checks a
//! policy, gates a first push and serves its pages.

mod support;

use std::path::Path;
use std::process::Command;

use support::*;

#[test]
fn the_debian_package_installs_checks_gates_and_serves() {
    let root = tempfile::tempdir().unwrap();
    // The service user reads and pushes to the repository, in the install's view.
    std::fs::set_permissions(
        root.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    let up = Upstream::new(root.path(), &[("README", "hello\n")]);
    let pushed = up.commits(2, None);
    up.push_staging();

    let out = Command::new(Path::new(env!("CARGO_MANIFEST_DIR")).join("packaging/build-deb"))
        .arg(env!("CARGO_BIN_EXE_pushgate"))
        .arg(root.path().join("debian"))
        .env("DEB_COMPRESS", "none")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let deb = String::from_utf8_lossy(&out.stdout).trim().to_string();

    let script = format!(
        r#"set -e
ip link set lo up
dpkg -i {deb} >/dev/null
getent passwd pushgate >/dev/null
test "$(stat -c %U /var/lib/pushgate)" = pushgate
systemd-analyze verify /lib/systemd/system/pushgate.service
test -s /usr/share/bash-completion/completions/pushgate
chown -R pushgate:pushgate {repo}
cat >/etc/pushgate/sequences/smoke.toml <<'SEQ'
[[step]]
name = "files"
command = "test -f README"
SEQ
cat >/etc/pushgate/policies/project.toml <<'POLICY'
repository = "{repo}"
sequences = ["smoke"]
POLICY
echo "== check"
runuser -u pushgate -- pushgate check --config /etc/pushgate/pushgate.toml
echo "== gate"
runuser -u pushgate -- pushgate gate --once --config /etc/pushgate/pushgate.toml
echo "== master $(runuser -u pushgate -- git -C {repo} rev-parse master)"
runuser -u pushgate -- pushgate serve --config /etc/pushgate/pushgate.toml 2>/tmp/serve.log &
serve=$!
for i in $(seq 100); do curl -fsS -o /dev/null http://127.0.0.1:8077/ 2>/dev/null && break; sleep 0.1; done
echo "== page $(curl -sS -o /dev/null -w '%{{http_code}}' http://127.0.0.1:8077/)"
kill $serve
wait $serve || true
"#,
        repo = up.bare.display(),
    );
    let said = in_a_copy_of_this_machine(&script);
    assert!(said.contains("all is well"), "{said}");
    assert!(
        said.contains("project: pass: the tip passed every step"),
        "{said}"
    );
    assert!(said.contains(&format!("== master {}", pushed[1])), "{said}");
    assert!(said.contains("== page 200"), "{said}");
    // The machine itself: nothing installed, no user made.
    assert!(!Path::new("/lib/systemd/system/pushgate.service").exists());
    let user = Command::new("getent")
        .args(["passwd", "pushgate"])
        .output()
        .unwrap();
    assert!(
        !user.status.success(),
        "the pushgate user was made outside the overlay"
    );
}

/// Runs `script` as root in a chroot onto an overlay of `/` whose writes go to a directory
/// dropped afterwards, in new mount and network namespaces; its output, which must succeed.
fn in_a_copy_of_this_machine(script: &str) -> String {
    let layer = tempfile::Builder::new()
        .prefix("pushgate-package-")
        .tempdir_in("/dev/shm")
        .unwrap();
    let l = layer.path().display();
    let setup = format!(
        "mkdir -p {l}/upper {l}/work {l}/merged && \
         mount -t overlay overlay -o lowerdir=/,upperdir={l}/upper,workdir={l}/work {l}/merged && \
         mount --rbind /proc {l}/merged/proc && mount --rbind /dev {l}/merged/dev && \
         mount --rbind /sys {l}/merged/sys && exec chroot {l}/merged sh -c \"$0\""
    );
    let out = Command::new("unshare")
        .args([
            "--mount",
            "--net",
            "--propagation",
            "private",
            "sh",
            "-c",
            &setup,
        ])
        .arg(script)
        .output()
        .unwrap();
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "the install failed:\n{said}");
    said
}
