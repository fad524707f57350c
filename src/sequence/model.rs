//! The one model that every sequence form (our TOML, XenRT's `.seq` XML) loads into, and that
//! the executor runs.
//!
//! A sequence is a tree: serial and parallel blocks of testcases, each block with an optional
//! `finally` part that always runs. A testcase is what the file names (an id, args); it becomes
//! runnable once it has a [`Step`]: the command it runs, written inline (TOML) or found in the
//! testcase bindings (`sequences/testcases.toml`).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use serde::Serialize;

/// A named tree of testcases, with what it needs from its hosts.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Sequence {
    pub name: String,
    pub description: String,
    /// The file it came from.
    pub source: PathBuf,
    /// `${NAME}` values: XenRT `<default>`s (and `<variables>`); handed to binding templates.
    pub variables: BTreeMap<String, String>,
    pub prepare: Prepare,
    /// The test sequence proper: a serial block.
    pub body: Block,
    /// What the file says that pushgate keeps but does not act on; `sequence check` lists it.
    pub kept: Vec<Kept>,
}

/// Something a sequence file says that pushgate records without acting on it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Kept {
    /// `element <semaphores>` or `attribute sku of <testcase>`.
    pub what: String,
    pub line: usize,
    pub column: usize,
    /// The text of the element or attribute, so that nothing is lost.
    pub value: String,
}

/// What must exist before the first testcase runs. A failure here blocks everything.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Prepare {
    pub pools: Vec<Pool>,
    /// Hosts outside any pool.
    pub hosts: Vec<HostNeed>,
    pub vms: Vec<Vm>,
    pub storage: Vec<Storage>,
    pub bridges: Vec<String>,
    /// Host properties the scheduler must match (`arch = "x86_64"`, tags).
    pub needs: BTreeMap<String, String>,
    /// Commands run first (building the checkout, say), each a blocker of everything after.
    pub steps: Vec<Testcase>,
}

impl Prepare {
    /// How many hosts the sequence asks for (at least one: a sequence runs somewhere).
    pub fn host_count(&self) -> usize {
        let pooled: usize = self.pools.iter().map(|p| p.hosts.len().max(1)).sum();
        (pooled + self.hosts.len()).max(1)
    }
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Pool {
    pub id: Option<String>,
    pub name: Option<String>,
    /// The id or alias of the pool's master host.
    pub master: Option<String>,
    pub hosts: Vec<HostNeed>,
    pub vms: Vec<Vm>,
    pub storage: Vec<Storage>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct HostNeed {
    pub id: Option<String>,
    pub alias: Option<String>,
    /// The other attributes XenRT knew (`installsr`, `license`, `productVersion`, ...).
    pub attributes: BTreeMap<String, String>,
    pub vms: Vec<Vm>,
    pub storage: Vec<Storage>,
    pub bridges: Vec<String>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Vm {
    pub name: Option<String>,
    pub distro: Option<String>,
    pub memory: Option<String>,
    pub vcpus: Option<String>,
    pub arch: Option<String>,
    /// One map of attributes per `<network>` (device, bridge, ip).
    pub networks: Vec<BTreeMap<String, String>>,
    /// One map of attributes per `<disk>` (device, size, format).
    pub disks: Vec<BTreeMap<String, String>>,
    /// `<postinstall action>`s in order.
    pub postinstall: Vec<String>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Storage {
    pub kind: String,
    pub name: Option<String>,
    pub attributes: BTreeMap<String, String>,
}

/// A serial or parallel group of testcases.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Block {
    pub kind: BlockKind,
    /// A failing blocker block stops the rest of the serial block around it.
    pub blocker: bool,
    pub group: Option<String>,
    pub nodes: Vec<Node>,
    /// Runs after the nodes whatever happened to them (cleanup).
    pub finally: Vec<Node>,
    pub line: usize,
}

impl Block {
    pub fn serial(nodes: Vec<Node>) -> Block {
        Block {
            kind: BlockKind::Serial,
            blocker: false,
            group: None,
            nodes,
            finally: Vec::new(),
            line: 0,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase", tag = "kind")]
pub enum BlockKind {
    Serial,
    /// At most `workers` nodes at once; all at once when unset.
    Parallel {
        workers: Option<usize>,
    },
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
// Testcases far outnumber blocks; boxing them would cost an allocation each for nothing.
#[allow(clippy::large_enum_variant)]
pub enum Node {
    Test(Testcase),
    Block(Block),
}

/// One testcase as the sequence names it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Testcase {
    /// XenRT's class path (`xenserver.tc.smoketest.TCSmokeTest`) or a native testcase id; the
    /// key into the bindings.
    pub id: String,
    /// Unique within the sequence: how results, logs and mail name it.
    pub name: String,
    /// XenRT's testcase tracker id (`TC-12345`).
    pub tc: Option<String>,
    /// A failing blocker marks the rest of its serial block `blocked`.
    pub blocker: bool,
    pub group: Option<String>,
    pub prio: Option<u32>,
    /// Which of the prepared hosts or guests it acts on.
    pub host: Option<String>,
    pub guest: Option<String>,
    pub args: Vec<String>,
    /// What it runs; `None` when no binding matches its id (it is then `broken` at run time).
    pub step: Option<Step>,
    pub line: usize,
}

/// A command to run on the host, with everything the executor needs.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Step {
    pub name: String,
    /// Run by `sh -c` in the checkout of the commit under test.
    pub command: String,
    /// The whole process group is killed when it runs longer.
    #[serde(with = "humantime_serde_secs")]
    pub timeout: Duration,
    /// Relative to the checkout's root.
    pub workdir: Option<PathBuf>,
    pub env: BTreeMap<String, String>,
    /// Result files the step leaves, parsed into per-test results.
    pub results: Option<ResultFiles>,
    /// How long what the step starts in the background may outlive it.
    pub background: Background,
}

/// Until when the processes a step leaves running (a daemon it starts, `make &`) may run.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Background {
    /// They end when the step ends.
    #[default]
    Step,
    /// They are services the next steps use, and end when the run ends.
    Run,
}

/// Where a step leaves per-test results, and in which format.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ResultFiles {
    pub format: ResultFormat,
    /// A glob relative to the step's working directory (`out/*.xml`).
    pub path: String,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ResultFormat {
    Junit,
    Tap,
    Subunit,
}

impl ResultFormat {
    pub fn parse(text: &str) -> Option<ResultFormat> {
        match text {
            "junit" => Some(ResultFormat::Junit),
            "tap" => Some(ResultFormat::Tap),
            "subunit" => Some(ResultFormat::Subunit),
            _ => None,
        }
    }
}

/// Serializes a duration as whole seconds, the way `sequence check --json` prints it.
mod humantime_serde_secs {
    pub fn serialize<S: serde::Serializer>(
        d: &std::time::Duration,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        s.serialize_u64(d.as_secs())
    }
}

impl Sequence {
    /// Every testcase in run order: prepare steps, then the body (each block's `finally` after
    /// its nodes).
    pub fn testcases(&self) -> Vec<&Testcase> {
        let mut out: Vec<&Testcase> = self.prepare.steps.iter().collect();
        collect(&self.body, &mut out);
        out
    }

    /// Every testcase, mutably, in the same order as [`Sequence::testcases`].
    pub fn testcases_mut(&mut self) -> Vec<&mut Testcase> {
        let mut out: Vec<&mut Testcase> = self.prepare.steps.iter_mut().collect();
        collect_mut(&mut self.body, &mut out);
        out
    }

    /// The ids of testcases that have nothing to run, each once, in order.
    pub fn unbound(&self) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        for t in self.testcases() {
            if t.step.is_none() && !out.contains(&t.id) {
                out.push(t.id.clone());
            }
        }
        out
    }
}

fn collect<'a>(block: &'a Block, out: &mut Vec<&'a Testcase>) {
    for node in block.nodes.iter().chain(&block.finally) {
        match node {
            Node::Test(t) => out.push(t),
            Node::Block(b) => collect(b, out),
        }
    }
}

fn collect_mut<'a>(block: &'a mut Block, out: &mut Vec<&'a mut Testcase>) {
    for node in block.nodes.iter_mut().chain(block.finally.iter_mut()) {
        match node {
            Node::Test(t) => out.push(t),
            Node::Block(b) => collect_mut(b, out),
        }
    }
}

/// Gives every testcase a name no other testcase of the sequence has, by numbering repeats
/// (`TCShutdown`, `TCShutdown#2`): results and logs are keyed by name.
pub fn make_names_unique(sequence: &mut Sequence) {
    let mut seen: BTreeMap<String, usize> = BTreeMap::new();
    for t in sequence.testcases_mut() {
        let n = seen.entry(t.name.clone()).or_insert(0);
        *n += 1;
        if *n > 1 {
            t.name = format!("{}#{}", t.name, n);
        }
        if let Some(step) = &mut t.step {
            step.name = t.name.clone();
        }
    }
}
