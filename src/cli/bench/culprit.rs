//! `pushgate bench culprit`: the culprit finder on seeded synthetic histories, cell by cell,
//! beside the information-theoretic bounds and, for one host, beside the real `git bisect run`
//! on generated repositories of the same shape with the same culprits and flake draws.

use std::fmt::Write as _;
use std::path::Path;
use std::process::Command;
use std::sync::Mutex;
use std::time::Duration;

use git2::{Oid, Repository, Signature, Time};
use serde::Serialize;

use super::{fail, two_regressions, BenchError, Report};
use pushgate::culprit::synthetic::{self, draw, Judgement, Reused, Shape, World};
use pushgate::culprit::Found;
use pushgate::culprit::{rounds_bound, z_channel_capacity, History, Settings, MAX_COMMITS};

/// Which cells to run and how often.
#[derive(Clone, Debug)]
pub struct Options {
    pub trials: usize,
    /// Trials of `git bisect run` per one-host cell; 0 leaves git out.
    pub git_trials: usize,
    pub shapes: Vec<Shape>,
    pub sizes: Vec<usize>,
    pub hosts: Vec<usize>,
    pub flake_rates: Vec<f64>,
    pub untestable_rates: Vec<f64>,
    /// Whether the finder is told the flake rate, or infers it.
    pub modes: Vec<Mode>,
    pub worlds: Vec<WorldKind>,
    pub seed: u64,
    pub threads: usize,
}

/// Whether a search is told the flake rate.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Mode {
    Told,
    /// Never told: the finder infers the rate with the culprit, from a weak prior.
    Unknown,
}

/// What the range holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum WorldKind {
    /// One culprit; every commit after it fails.
    Plain,
    /// An earlier bug, blamed by an earlier flight and fixed since (a revert or a later fix),
    /// below a new culprit: the search is a gate's second flight, and the last flight that
    /// blamed the bug ran just before the fix was pushed.
    FixedBug,
    /// The same with the last blaming flight anywhere from the bug's first commit up to the
    /// fix, as after a long stop of the gate: a stress world, with no target.
    FixedLate,
    /// One culprit, blamed by the last flight and not fixed since: the next flight's search,
    /// whose culprit is the blamed commit again.
    StillBroken,
    /// Two steps regressed by two different commits of a linear range, searched by the gate's
    /// decision (one search per regression, sharing runs), not by one finder.
    TwoSteps,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            trials: 200,
            git_trials: 20,
            shapes: Shape::ALL.to_vec(),
            sizes: vec![8, 64, 512, 4096],
            hosts: vec![1, 4, 16],
            flake_rates: vec![0.0, 0.01, 0.05, 0.10, 0.20],
            untestable_rates: vec![0.0, 0.10],
            modes: vec![Mode::Told, Mode::Unknown],
            worlds: vec![WorldKind::Plain],
            seed: 1,
            threads: std::thread::available_parallelism().map_or(2, |n| n.get()),
        }
    }
}

/// One cell of the table.
#[derive(Clone, Debug, Serialize)]
pub struct Cell {
    pub mode: Mode,
    pub world: WorldKind,
    pub shape: Shape,
    pub n: usize,
    pub k: usize,
    pub f: f64,
    pub u: f64,
    pub trials: usize,
    /// The exact culprit named.
    pub accuracy: f64,
    /// The answer holds the culprit (the exact commit, or a set that untestable commits forced).
    pub contains: f64,
    /// Among trials whose culprit untestable commits do not hide, the exact commit named.
    pub exact_when_visible: f64,
    /// A good commit named (alone or in the set).
    pub false_blame: f64,
    /// No answer: the search gave up or called the results inconsistent.
    pub no_answer: f64,
    pub rounds_mean: f64,
    pub rounds_p90: f64,
    pub executions_mean: f64,
    pub executions_p90: f64,
    pub confirmations_mean: f64,
    /// ceil(log_{k+1} N).
    pub rounds_bound: usize,
    /// log2(N) / C(f).
    pub executions_bound: f64,
    /// Two-step worlds: how often master moved to the newest commit passing both steps.
    pub pushed_newest_passing: Option<f64>,
    /// The mean and slowest single decision of the finder, in microseconds.
    pub mean_decision_us: f64,
    pub slowest_decision_us: f64,
    pub git: Option<GitCell>,
}

/// `git bisect run` on the same cell (one host).
#[derive(Clone, Debug, Serialize)]
pub struct GitCell {
    pub trials: usize,
    pub accuracy: f64,
    pub contains: f64,
    pub false_blame: f64,
    pub executions_mean: f64,
    pub executions_p90: f64,
}

#[derive(Debug, Serialize)]
pub struct CulpritReport {
    pub cells: Vec<Cell>,
    /// Searches that named an answer without being told the flake rate, by the probability
    /// they stated, against how often they were right.
    pub calibration: Vec<Bin>,
}

/// One bin of stated probabilities.
#[derive(Clone, Debug, Serialize)]
pub struct Bin {
    pub from: f64,
    pub to: f64,
    pub searches: usize,
    pub stated_mean: f64,
    pub right: f64,
}

/// The bins' edges: answers are stated at 0.995 and above.
const BINS: [f64; 6] = [0.0, 0.99, 0.995, 0.999, 0.9999, 1.0000001];

/// An answer's stated probability and whether it held the culprit.
type Stated = (f64, bool);

fn calibration(stated: &[Stated]) -> Vec<Bin> {
    BINS.windows(2)
        .map(|w| {
            let inside: Vec<&Stated> = stated
                .iter()
                .filter(|s| s.0 >= w[0] && s.0 < w[1])
                .collect();
            let n = inside.len();
            Bin {
                from: w[0],
                to: w[1].min(1.0),
                searches: n,
                stated_mean: mean(&inside.iter().map(|s| s.0).collect::<Vec<_>>()),
                right: if n == 0 {
                    0.0
                } else {
                    inside.iter().filter(|s| s.1).count() as f64 / n as f64
                },
            }
        })
        .filter(|b| b.searches > 0)
        .collect()
}

fn mean(xs: &[f64]) -> f64 {
    if xs.is_empty() {
        0.0
    } else {
        xs.iter().sum::<f64>() / xs.len() as f64
    }
}

fn p90(xs: &[f64]) -> f64 {
    let mut s = xs.to_vec();
    s.sort_by(f64::total_cmp);
    s.get(((s.len().max(1) - 1) as f64 * 0.9).round() as usize)
        .copied()
        .unwrap_or(0.0)
}

fn structure_seed(seed: u64, shape: Shape, n: usize) -> u64 {
    seed.wrapping_mul(1_000_003) ^ (n as u64) << 8 ^ shape as u64
}

fn world_seed(seed: u64, trial: usize) -> u64 {
    seed.wrapping_mul(0x9E37_79B9) ^ (trial as u64).wrapping_mul(0x85EB_CA6B) ^ 0xA5A5
}

/// Runs every cell; `progress` hears of each one as it ends.
#[derive(clap::Args)]
pub struct Args {
    /// Searches per cell.
    #[arg(long, default_value_t = 200)]
    trials: usize,
    /// Runs of the real `git bisect run` per one-host cell (0: leave git out).
    #[arg(long, default_value_t = 20)]
    git_trials: usize,
    /// Candidate counts, comma-separated.
    #[arg(long, value_delimiter = ',', default_values_t = [8, 64, 512, 4096])]
    sizes: Vec<usize>,
    /// Host counts, comma-separated.
    #[arg(long, value_delimiter = ',', default_values_t = [1, 4, 16])]
    hosts: Vec<usize>,
    /// Flake rates, comma-separated (in `unknown` mode, the true rates searches face).
    #[arg(long, value_delimiter = ',', default_values_t = [0.0, 0.01, 0.05, 0.1, 0.2])]
    flake_rates: Vec<f64>,
    /// Whether the finder is `told` the flake rate or infers it (`unknown`), comma-separated.
    #[arg(long, value_delimiter = ',', default_values_t = ["told".to_string(), "unknown".to_string()])]
    modes: Vec<String>,
    /// What ranges hold: `plain` (one culprit), `fixed-bug` (an earlier culprit, blamed
    /// before and fixed since, below a new one), `fixed-late` (the same, blamed long before
    /// the fix), `still-broken` (one culprit, blamed before and not fixed) or `two-steps` (two
    /// steps broken by two commits, linear ranges only), comma-separated.
    #[arg(long, value_delimiter = ',', default_values_t = ["plain".to_string()])]
    worlds: Vec<String>,
    /// Untestable rates, comma-separated.
    #[arg(long, value_delimiter = ',', default_values_t = [0.0, 0.1])]
    untestable_rates: Vec<f64>,
    /// History shapes: linear, merge-train, stale-base.
    #[arg(long, value_delimiter = ',', default_values_t = ["linear".to_string(), "merge-train".to_string(), "stale-base".to_string()])]
    shapes: Vec<String>,
    /// Seed of the random worlds (the same seed gives the same worlds).
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,
}

/// Checks the arguments, then runs every cell, saying each on stderr as it ends.
pub fn measure(args: &Args) -> anyhow::Result<CulpritReport> {
    let shapes = args
        .shapes
        .iter()
        .map(|s| {
            Shape::parse(s).ok_or_else(|| {
                anyhow::anyhow!("--shapes: unknown shape `{s}` (linear, merge-train, stale-base)")
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    if let Some(bad) = args.sizes.iter().find(|&&n| n == 0 || n > MAX_COMMITS) {
        anyhow::bail!("--sizes: {bad} is not between 1 and {MAX_COMMITS}");
    }
    if let Some(bad) = args
        .flake_rates
        .iter()
        .chain(&args.untestable_rates)
        .find(|r| !(0.0..0.5).contains(*r))
    {
        anyhow::bail!("--flake-rates/--untestable-rates: {bad} is not in [0, 0.5)");
    }
    let modes = args
        .modes
        .iter()
        .map(|m| match m.as_str() {
            "told" => Ok(Mode::Told),
            "unknown" => Ok(Mode::Unknown),
            other => Err(anyhow::anyhow!(
                "--modes: unknown mode `{other}` (told, unknown)"
            )),
        })
        .collect::<Result<Vec<_>, _>>()?;
    let worlds = args
        .worlds
        .iter()
        .map(|w| match w.as_str() {
            "plain" => Ok(WorldKind::Plain),
            "fixed-bug" => Ok(WorldKind::FixedBug),
            "fixed-late" => Ok(WorldKind::FixedLate),
            "still-broken" => Ok(WorldKind::StillBroken),
            "two-steps" => Ok(WorldKind::TwoSteps),
            other => Err(anyhow::anyhow!(
                "--worlds: unknown world `{other}` (plain, fixed-bug, fixed-late, still-broken, two-steps)"
            )),
        })
        .collect::<Result<Vec<_>, _>>()?;
    let options = Options {
        modes,
        worlds,
        trials: args.trials.max(1),
        git_trials: args.git_trials,
        shapes,
        sizes: args.sizes.clone(),
        hosts: args.hosts.iter().map(|&k| k.max(1)).collect(),
        flake_rates: args.flake_rates.clone(),
        untestable_rates: args.untestable_rates.clone(),
        seed: args.seed,
        ..Default::default()
    };
    let report = run(&options, &|c| {
        eprintln!(
            "{:?} {:?} {} N={} k={} f={} u={}: exact {:.3}, rounds {:.1}, runs {:.1}",
            c.mode,
            c.world,
            c.shape.as_str(),
            c.n,
            c.k,
            c.f,
            c.u,
            c.accuracy,
            c.rounds_mean,
            c.executions_mean
        )
    })?;
    Ok(report)
}

fn run(options: &Options, progress: &(dyn Fn(&Cell) + Sync)) -> Result<CulpritReport, BenchError> {
    let mut groups: Vec<(Shape, usize)> = Vec::new();
    for &shape in &options.shapes {
        for &n in &options.sizes {
            groups.push((shape, n));
        }
    }
    let next = Mutex::new(0usize);
    let cells = Mutex::new(Vec::new());
    let stated: Mutex<Vec<Stated>> = Mutex::new(Vec::new());
    let error = Mutex::new(None);
    std::thread::scope(|scope| {
        for _ in 0..options.threads.max(1) {
            scope.spawn(|| loop {
                let group = {
                    let Ok(mut next) = next.lock() else { return };
                    let g = groups.get(*next).copied();
                    *next += 1;
                    g
                };
                let Some((shape, n)) = group else { return };
                match run_group(options, shape, n, progress) {
                    Ok((mut done, mut answers)) => {
                        if let Ok(mut cells) = cells.lock() {
                            cells.append(&mut done);
                        }
                        if let Ok(mut stated) = stated.lock() {
                            stated.append(&mut answers);
                        }
                    }
                    Err(e) => {
                        if let Ok(mut error) = error.lock() {
                            *error = Some(e);
                        }
                        return;
                    }
                }
            });
        }
    });
    if let Some(e) = error.into_inner().map_err(fail)? {
        return Err(e);
    }
    let mut cells = cells.into_inner().map_err(fail)?;
    cells.sort_by(|a, b| {
        (a.world, a.shape as u8, a.n, a.k)
            .cmp(&(b.world, b.shape as u8, b.n, b.k))
            .then(a.f.total_cmp(&b.f))
            .then(a.u.total_cmp(&b.u))
            .then(a.mode.cmp(&b.mode))
    });
    let stated = stated.into_inner().map_err(fail)?;
    Ok(CulpritReport {
        cells,
        calibration: calibration(&stated),
    })
}

/// All cells of one shape and size: they share the history (and the git repository).
fn run_group(
    options: &Options,
    shape: Shape,
    n: usize,
    progress: &(dyn Fn(&Cell) + Sync),
) -> Result<(Vec<Cell>, Vec<Stated>), BenchError> {
    let parents = synthetic::git_parents(shape, n, structure_seed(options.seed, shape, n));
    let history = History::new(
        parents
            .iter()
            .map(|ps| ps.iter().flatten().copied().collect())
            .collect(),
    )
    .map_err(fail)?;
    let repo = if options.git_trials > 0 && options.hosts.contains(&1) {
        Some(GitRepo::build(&parents)?)
    } else {
        None
    };
    let mut cells = Vec::new();
    let mut stated = Vec::new();
    for &world in &options.worlds {
        // An earlier bug leaves no room for untestable commits in the simulation.
        let untestable: &[f64] = match world {
            WorldKind::Plain => &options.untestable_rates,
            WorldKind::FixedBug | WorldKind::FixedLate => &[0.0],
            // The gate's own case: its range is the first-parent line.
            WorldKind::StillBroken if shape != Shape::Linear => continue,
            WorldKind::StillBroken => &[0.0],
            // A gate's range is its first-parent line: other shapes do not reach `decide`.
            WorldKind::TwoSteps if shape != Shape::Linear || n < 2 => continue,
            WorldKind::TwoSteps => &[0.0],
        };
        for &f in &options.flake_rates {
            for &u in untestable {
                for &k in &options.hosts {
                    for &mode in &options.modes {
                        let kind = Kind { mode, world };
                        let (mut cell, answers) =
                            simulate_cell(options, &history, shape, kind, k, f, u);
                        if k == 1 && mode == Mode::Told && world == WorldKind::Plain {
                            if let Some(repo) = &repo {
                                cell.git = Some(repo.cell(options, &history, f, u)?);
                            }
                        }
                        if mode == Mode::Unknown {
                            stated.extend(answers);
                        }
                        progress(&cell);
                        cells.push(cell);
                    }
                }
            }
        }
    }
    Ok((cells, stated))
}

/// How a cell's searches are set up.
#[derive(Clone, Copy)]
struct Kind {
    mode: Mode,
    world: WorldKind,
}

fn simulate_cell(
    options: &Options,
    history: &History,
    shape: Shape,
    kind: Kind,
    k: usize,
    f: f64,
    u: f64,
) -> (Cell, Vec<Stated>) {
    if kind.world == WorldKind::TwoSteps {
        return two_steps_cell(options, history.len(), kind.mode, k, f);
    }
    let settings = Settings {
        flake_rate: (kind.mode == Mode::Told).then_some(f),
        ..Settings::default()
    };
    let mut stated = Vec::new();
    let mut ran = 0usize;
    let (mut exact, mut contains, mut blame, mut none) = (0, 0, 0, 0);
    let (mut visible, mut exact_visible) = (0, 0);
    let (mut rounds, mut execs, mut confirms) = (Vec::new(), Vec::new(), Vec::new());
    let mut slowest = Duration::ZERO;
    let (mut total, mut calls) = (Duration::ZERO, 0);
    for trial in 0..options.trials {
        let seed = world_seed(options.seed, trial);
        let (world, reused) = match kind.world {
            WorldKind::Plain => (World::new(history, f, u, seed), Reused::default()),
            WorldKind::StillBroken => {
                let w = World::new(history, f, 0.0, seed);
                let reused = Reused::still_broken(history, &w);
                (w, reused)
            }
            WorldKind::FixedBug | WorldKind::FixedLate => {
                match World::with_fixed_bug(history, f, seed) {
                    Some(w) if kind.world == WorldKind::FixedBug => {
                        let reused = Reused::blamed_fix(history, &w);
                        (w, reused)
                    }
                    Some(w) => {
                        let reused = Reused::blamed_long_before_fix(history, &w);
                        (w, reused)
                    }
                    None => continue,
                }
            }
            WorldKind::TwoSteps => unreachable!("two-step worlds are simulated apart"),
        };
        ran += 1;
        let t = synthetic::simulate_reusing(history, &world, settings, k, reused);
        let judged = world.judge(&t.found);
        match &t.found {
            Found::Culprit { probability, .. } | Found::OneOf { probability, .. } => stated.push((
                *probability,
                matches!(judged, Judgement::Exact | Judgement::Contains),
            )),
            _ => {}
        }
        match judged {
            Judgement::Exact => {
                exact += 1;
                contains += 1
            }
            Judgement::Contains => contains += 1,
            Judgement::FalseBlame => blame += 1,
            Judgement::NoAnswer => none += 1,
        }
        if !world.hidden(history) {
            visible += 1;
            exact_visible += usize::from(judged == Judgement::Exact);
        }
        rounds.push(t.rounds as f64);
        execs.push(t.executions as f64);
        confirms.push(t.confirmations as f64);
        slowest = slowest.max(t.slowest_decision);
        total += t.decision_time;
        calls += t.decisions;
    }
    let trials = ran.max(1) as f64;
    let n = history.len();
    let cell = Cell {
        mode: kind.mode,
        world: kind.world,
        shape,
        n,
        k,
        f,
        u,
        trials: ran,
        accuracy: exact as f64 / trials,
        contains: contains as f64 / trials,
        exact_when_visible: if visible == 0 {
            1.0
        } else {
            exact_visible as f64 / visible as f64
        },
        false_blame: blame as f64 / trials,
        no_answer: none as f64 / trials,
        rounds_mean: mean(&rounds),
        rounds_p90: p90(&rounds),
        executions_mean: mean(&execs),
        executions_p90: p90(&execs),
        confirmations_mean: mean(&confirms),
        rounds_bound: rounds_bound(n, k),
        executions_bound: (n as f64).log2() / z_channel_capacity(f),
        pushed_newest_passing: None,
        mean_decision_us: total.as_secs_f64() * 1e6 / calls.max(1) as f64,
        slowest_decision_us: slowest.as_secs_f64() * 1e6,
        git: None,
    };
    (cell, stated)
}

/// A cell of the two-step world: flights driven by the gate's decision.
fn two_steps_cell(
    options: &Options,
    n: usize,
    mode: Mode,
    k: usize,
    f: f64,
) -> (Cell, Vec<Stated>) {
    let mut stated = Vec::new();
    let (mut exact, mut blame, mut pushed) = (0, 0, 0);
    let (mut rounds, mut execs) = (Vec::new(), Vec::new());
    let mut slowest = Duration::ZERO;
    let (mut total, mut calls) = (Duration::ZERO, 0);
    for trial in 0..options.trials {
        let seed = world_seed(options.seed, trial);
        let t = two_regressions::trial(n, k, f, mode == Mode::Told, seed);
        exact += usize::from(t.exact());
        blame += usize::from(t.false_blame());
        pushed += usize::from(t.pushed_newest_passing());
        for &(commit, probability) in &t.named {
            stated.push((probability, t.truth.contains(&commit)));
        }
        rounds.push(t.rounds as f64);
        execs.push(t.executions as f64);
        slowest = slowest.max(t.slowest_decision);
        total += t.decision_time;
        calls += t.decisions;
    }
    let trials = options.trials.max(1) as f64;
    let accuracy = exact as f64 / trials;
    let cell = Cell {
        mode,
        world: WorldKind::TwoSteps,
        shape: Shape::Linear,
        n,
        k,
        f,
        u: 0.0,
        trials: options.trials,
        accuracy,
        contains: accuracy,
        exact_when_visible: accuracy,
        false_blame: blame as f64 / trials,
        no_answer: 1.0 - accuracy - blame as f64 / trials,
        rounds_mean: mean(&rounds),
        rounds_p90: p90(&rounds),
        executions_mean: mean(&execs),
        executions_p90: p90(&execs),
        confirmations_mean: 0.0,
        // Two searches share the hosts: the bound is one search's.
        rounds_bound: rounds_bound(n, k),
        executions_bound: (n as f64).log2() / z_channel_capacity(f),
        pushed_newest_passing: Some(pushed as f64 / trials),
        mean_decision_us: total.as_secs_f64() * 1e6 / calls.max(1) as f64,
        slowest_decision_us: slowest.as_secs_f64() * 1e6,
        git: None,
    };
    (cell, stated)
}

/// A generated repository of one history: a base commit, then one commit per index.
struct GitRepo {
    dir: tempfile::TempDir,
    base: Oid,
    commits: Vec<Oid>,
}

/// What the test script does in each `git bisect run` step: the culprit and untestable
/// commits and the flake draws come from files the bench writes per trial.
const SCRIPT: &str = r#"d="$PUSHGATE_BENCH_DIR"
id=$(git rev-parse HEAD)
echo "$id" >> "$d/runs"
grep -qx "$id" "$d/untestable" && exit 125
n=$(cat "$d/attempts/$id" 2>/dev/null || echo 0)
echo $((n + 1)) > "$d/attempts/$id"
git merge-base --is-ancestor "$(cat "$d/culprit")" "$id" && exit 1
bit=$(grep "^$id " "$d/flakes" | cut -d' ' -f2 | cut -c$((n + 1)))
[ "$bit" = 1 ] && exit 1
exit 0
"#;

/// Flake draws written per commit; a commit run more often than this is taken as passing.
const DRAWS: u32 = 64;

impl GitRepo {
    fn build(parents: &[Vec<Option<usize>>]) -> Result<GitRepo, BenchError> {
        let dir = tempfile::tempdir().map_err(fail)?;
        let repo = Repository::init(dir.path().join("repo")).map_err(fail)?;
        let sig = Signature::new("bench", "bench@example.org", &Time::new(1_700_000_000, 0))
            .map_err(fail)?;
        let commit = |label: &str, parents: &[Oid]| -> Result<Oid, git2::Error> {
            let blob = repo.blob(label.as_bytes())?;
            let mut tree = repo.treebuilder(None)?;
            tree.insert("commit", blob, 0o100644)?;
            let tree = repo.find_tree(tree.write()?)?;
            let parents: Vec<git2::Commit> = parents
                .iter()
                .map(|p| repo.find_commit(*p))
                .collect::<Result<_, _>>()?;
            let refs: Vec<&git2::Commit> = parents.iter().collect();
            repo.commit(None, &sig, &sig, label, &tree, &refs)
        };
        let base = commit("base", &[]).map_err(fail)?;
        let mut commits: Vec<Oid> = Vec::with_capacity(parents.len());
        for (i, ps) in parents.iter().enumerate() {
            let ps: Vec<Oid> = ps.iter().map(|p| p.map_or(base, |p| commits[p])).collect();
            commits.push(commit(&format!("commit {i}"), &ps).map_err(fail)?);
        }
        let tip = *commits.last().ok_or_else(|| fail("empty history"))?;
        repo.reference("refs/heads/main", tip, true, "bench")
            .map_err(fail)?;
        repo.set_head("refs/heads/main").map_err(fail)?;
        repo.checkout_head(Some(git2::build::CheckoutBuilder::new().force()))
            .map_err(fail)?;
        std::fs::write(dir.path().join("test.sh"), SCRIPT).map_err(fail)?;
        Ok(GitRepo { dir, base, commits })
    }

    fn repo(&self) -> std::path::PathBuf {
        self.dir.path().join("repo")
    }

    fn git(&self, args: &[&str], trial_dir: &Path) -> Result<String, BenchError> {
        let out = Command::new("git")
            .arg("-C")
            .arg(self.repo())
            .args(args)
            .env("PUSHGATE_BENCH_DIR", trial_dir)
            .output()
            .map_err(|e| fail(format!("cannot run git: {e}")))?;
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    fn cell(
        &self,
        options: &Options,
        history: &History,
        f: f64,
        u: f64,
    ) -> Result<GitCell, BenchError> {
        let (mut exact, mut contains, mut blame) = (0, 0, 0);
        let mut execs = Vec::new();
        let trials = options.git_trials.min(options.trials).max(1);
        for trial in 0..trials {
            let world = World::new(history, f, u, world_seed(options.seed, trial));
            let (named, runs) = self.bisect(&world)?;
            let culprit = self.commits[world.culprit];
            match named.as_slice() {
                [one] if *one == culprit => {
                    exact += 1;
                    contains += 1
                }
                many if many.contains(&culprit) => contains += 1,
                [] => {}
                _ => blame += 1,
            }
            execs.push(runs as f64);
        }
        let t = trials as f64;
        Ok(GitCell {
            trials,
            accuracy: exact as f64 / t,
            contains: contains as f64 / t,
            false_blame: blame as f64 / t,
            executions_mean: mean(&execs),
            executions_p90: p90(&execs),
        })
    }

    /// One `git bisect run`: the commits it named and how many times it ran the script.
    fn bisect(&self, world: &World) -> Result<(Vec<Oid>, usize), BenchError> {
        let trial = tempfile::tempdir().map_err(fail)?;
        let d = trial.path();
        let write = |name: &str, text: String| std::fs::write(d.join(name), text).map_err(fail);
        std::fs::create_dir(d.join("attempts")).map_err(fail)?;
        write("culprit", format!("{}\n", self.commits[world.culprit]))?;
        let mut untestable = String::new();
        let mut flakes = String::new();
        for (i, oid) in self.commits.iter().enumerate() {
            if world.untestable[i] {
                let _ = writeln!(untestable, "{oid}");
            }
            let bits: String = (0..DRAWS)
                .map(|a| {
                    if draw(world.seed, i, a) < world.flake_rate {
                        '1'
                    } else {
                        '0'
                    }
                })
                .collect();
            let _ = writeln!(flakes, "{oid} {bits}");
        }
        write("untestable", untestable)?;
        write("flakes", flakes)?;
        write("runs", String::new())?;
        let tip = self.commits[self.commits.len() - 1].to_string();
        self.git(&["bisect", "reset"], d)?;
        self.git(&["bisect", "start", &tip, &self.base.to_string()], d)?;
        let script = self.dir.path().join("test.sh");
        let out = self.git(&["bisect", "run", "sh", &script.to_string_lossy()], d)?;
        self.git(&["bisect", "reset"], d)?;
        let runs = std::fs::read_to_string(d.join("runs"))
            .map_err(fail)?
            .lines()
            .count();
        Ok((named(&out), runs))
    }
}

/// The commits `git bisect run` named: one "is the first bad commit", or the list after "could
/// be any of".
fn named(out: &str) -> Vec<Oid> {
    if let Some(line) = out
        .lines()
        .find(|l| l.ends_with(" is the first bad commit"))
    {
        return line
            .split_whitespace()
            .next()
            .and_then(|s| Oid::from_str(s).ok())
            .into_iter()
            .collect();
    }
    let mut lines = out.lines().skip_while(|l| !l.contains("could be any of"));
    lines.next();
    lines.map_while(|l| Oid::from_str(l.trim()).ok()).collect()
}

impl Report for CulpritReport {
    /// The table for README: one line per cell.
    fn table(&self) -> String {
        let mut out = String::from(
            "| world | rate | shape | N | k | f | u | exact | exact if visible | contains | false blame | rounds mean/p90 (bound) | runs mean/p90 (log2N/C) | confirm | git bisect exact / runs | decision mean/max |\n\
             |---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|\n",
        );
        for c in &self.cells {
            let git = c.git.as_ref().map_or("".to_string(), |g| {
                format!("{:.2} / {:.1}", g.accuracy, g.executions_mean)
            });
            let _ = writeln!(
                out,
                "| {} | {} | {} | {} | {} | {:.0}% | {:.0}% | {:.3} | {:.3} | {:.3} | {:.3} | {:.1}/{:.0} ({}) | {:.1}/{:.0} ({:.1}) | {:.1} | {} | {:.0}/{:.0} µs |",
                match c.world {
                    WorldKind::Plain => "plain",
                    WorldKind::FixedBug => "fixed bug",
                    WorldKind::FixedLate => "fixed late",
                    WorldKind::StillBroken => "still broken",
                    WorldKind::TwoSteps => "two steps",
                },
                match c.mode {
                    Mode::Told => "told",
                    Mode::Unknown => "inferred",
                },
                c.shape.as_str(),
                c.n,
                c.k,
                c.f * 100.0,
                c.u * 100.0,
                c.accuracy,
                c.exact_when_visible,
                c.contains,
                c.false_blame,
                c.rounds_mean,
                c.rounds_p90,
                c.rounds_bound,
                c.executions_mean,
                c.executions_p90,
                c.executions_bound,
                c.confirmations_mean,
                git,
                c.mean_decision_us,
                c.slowest_decision_us,
            );
        }
        let two: Vec<&Cell> = self
            .cells
            .iter()
            .filter(|c| c.pushed_newest_passing.is_some())
            .collect();
        if !two.is_empty() {
            out.push_str(
                "\nTwo steps broken by two commits (the gate's decision: one search per regression): both culprits named exactly, and master moved to the newest commit passing both:\n\n\
                 | rate | N | k | f | both exact | false blame | pushed newest passing |\n\
                 |---|---|---|---|---|---|---|\n",
            );
            for c in two {
                let _ = writeln!(
                    out,
                    "| {} | {} | {} | {:.0}% | {:.3} | {:.3} | {:.3} |",
                    match c.mode {
                        Mode::Told => "told",
                        Mode::Unknown => "inferred",
                    },
                    c.n,
                    c.k,
                    c.f * 100.0,
                    c.accuracy,
                    c.false_blame,
                    c.pushed_newest_passing.unwrap_or(0.0),
                );
            }
        }
        if !self.calibration.is_empty() {
            out.push_str(
                "\nCalibration of searches not told the flake rate (stated probability of the answer against how often it held the culprit):\n\n\
                 | stated | searches | stated mean | right | overconfidence |\n\
                 |---|---|---|---|---|\n",
            );
            for b in &self.calibration {
                let _ = writeln!(
                    out,
                    "| [{}, {}) | {} | {:.4} | {:.4} | {:+.4} |",
                    b.from,
                    b.to,
                    b.searches,
                    b.stated_mean,
                    b.right,
                    b.stated_mean - b.right
                );
            }
        }
        out
    }
}
