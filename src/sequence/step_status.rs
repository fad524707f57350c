//! How a step of a sequence ended, in the words the store, the pages and the mail use.

/// A step's result.
#[derive(Clone, Copy, Debug, PartialEq, Eq, strum::IntoStaticStr, strum::EnumString)]
#[strum(serialize_all = "lowercase")]
pub enum StepStatus {
    Running,
    Pass,
    Fail,
    /// Ran past its timeout and was killed: the commit's fault as much as a failure is.
    Timeout,
    /// Not run, because a blocker before it failed.
    Blocked,
    /// The host failed while running it, or there was nothing to run.
    Broken,
}

impl StepStatus {
    pub fn as_str(self) -> &'static str {
        self.into()
    }
}
