//! The loopback sshd the SSH tests run against (the library's, shared with `bench ssh`).

pub struct Sshd(pushgate::hosts::LoopbackSshd);

impl Sshd {
    pub fn start() -> Sshd {
        Sshd(pushgate::hosts::LoopbackSshd::start(None).expect("a loopback sshd"))
    }
}

impl std::ops::Deref for Sshd {
    type Target = pushgate::hosts::LoopbackSshd;
    fn deref(&self) -> &Self::Target {
        &self.0
    }
}
