//! `pushgate init [DIR] --repository REPO`: a configuration to start from, ready for `check`
//! and `serve`: a commented `pushgate.toml`, a policy for the repository, a first sequence, and
//! the repository's post-receive hook to install. Writes nothing over an existing file.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};

use pushgate::repo::Credentials;
use pushgate::templates::render;

#[derive(clap::Args)]
pub struct Args {
    /// Where to write the configuration (made if needed) [default: the current directory].
    dir: Option<PathBuf>,
    /// The repository to gate: a path or a git URL pushgate can fetch from and push to.
    #[arg(long, value_name = "PATH|URL")]
    repository: String,
    /// The policy's name: names its file, the branch on the pages and the mail's subjects
    /// [default: the repository's name].
    #[arg(long)]
    name: Option<String>,
    /// The branch contributors push to.
    #[arg(long, default_value = "staging")]
    staging: String,
    /// The branch pushgate fast-forwards [default: master, or main when the repository has
    /// main and no master].
    #[arg(long)]
    target: Option<String>,
}

pub async fn run(args: Args) -> Result<()> {
    let cwd = std::env::current_dir().context("cannot read the current directory")?;
    let dir = cwd.join(args.dir.as_deref().unwrap_or(Path::new(".")));
    let repository = absolute_repository(&cwd, &args.repository);
    let name = match &args.name {
        Some(n) => n.clone(),
        None => repository_name(&repository),
    };
    if name.is_empty()
        || !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
    {
        bail!(
            "`{name}` cannot name a policy file: say --name, in letters, digits, `-`, `_` or `.`"
        );
    }
    // What the repository has decides the target's default, and says early that it answers.
    let url = repository.clone();
    let heads = tokio::task::spawn_blocking(move || {
        pushgate::repo::remote_heads(&url, &Credentials::Anonymous)
    })
    .await?;
    let target = match (&args.target, &heads) {
        (Some(t), _) => t.clone(),
        (None, Ok(heads)) if !heads.contains_key("master") && heads.contains_key("main") => {
            "main".into()
        }
        _ => "master".into(),
    };
    let config = dir.join("pushgate.toml");
    let files = [
        (config.clone(), "init/pushgate.toml"),
        (
            dir.join(format!("policies/{name}.toml")),
            "init/policy.toml",
        ),
        (dir.join("sequences/smoke.toml"), "init/smoke.toml"),
        (dir.join("hooks/post-receive"), "init/post-receive"),
    ];
    if let Some((existing, _)) = files.iter().find(|(path, _)| path.exists()) {
        bail!(
            "{} exists: init writes a new configuration and changes none (nothing was written)",
            existing.display()
        );
    }
    let hook = dir.join("hooks/post-receive");
    let context = minijinja::context! {
        config => config.display().to_string(),
        name => &name,
        repository => quoted(&repository),
        staging => &args.staging,
        staging_quoted => quoted(&args.staging),
        target => &target,
        target_quoted => quoted(&target),
        hook => hook.display().to_string(),
        repository_hooks => hooks_dir(&repository),
        public_url => "http://127.0.0.1:8077",
    };
    for (path, template) in &files {
        let text = render(template, &context)?;
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)
                .with_context(|| format!("cannot make {}", parent.display()))?;
        }
        std::fs::write(path, text).with_context(|| format!("cannot write {}", path.display()))?;
        println!("wrote {}", path.display());
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&hook, std::fs::Permissions::from_mode(0o755))
            .with_context(|| format!("cannot make {} executable", hook.display()))?;
    }
    match heads {
        Ok(heads) => {
            for branch in [&args.staging, &target] {
                if !heads.contains_key(branch.as_str()) {
                    println!("note: {repository} has no branch `{branch}` yet");
                }
            }
        }
        Err(e) => println!("note: {repository} cannot be read now: {e}"),
    }
    let shown = config.display();
    println!(
        "\nnext:\n  pushgate check --config {shown}\n  cp {} {}/post-receive\n  pushgate serve --config {shown}",
        hook.display(),
        hooks_dir(&repository)
    );
    Ok(())
}

/// A local path made absolute (the policy lives elsewhere than where `init` ran); a URL as is.
fn absolute_repository(cwd: &Path, repository: &str) -> String {
    if repository.contains("://") || repository.contains('@') || Path::new(repository).is_absolute()
    {
        return repository.to_string();
    }
    cwd.join(repository).display().to_string()
}

/// `xen` for `https://xenbits.xen.org/git-http/xen.git` or `/srv/git/xen.git`.
fn repository_name(repository: &str) -> String {
    let last = repository
        .trim_end_matches('/')
        .rsplit(['/', ':'])
        .next()
        .unwrap_or("");
    last.trim_end_matches(".git").to_string()
}

/// Where the repository keeps its hooks: `hooks/` of a bare repository, `.git/hooks/` of one
/// with a work tree; for a URL, the server's copy of the repository.
fn hooks_dir(repository: &str) -> String {
    let path = Path::new(repository);
    if path.join(".git").is_dir() {
        return path.join(".git/hooks").display().to_string();
    }
    if path.is_dir() {
        return path.join("hooks").display().to_string();
    }
    "<the repository on its server>/hooks".into()
}

/// A TOML basic string: JSON's quoting is one.
fn quoted(text: &str) -> String {
    serde_json::Value::String(text.to_string()).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_policy_is_named_after_the_repository() {
        assert_eq!(
            repository_name("https://xenbits.xen.org/git-http/xen.git"),
            "xen"
        );
        assert_eq!(repository_name("/srv/git/linux.git/"), "linux");
        assert_eq!(repository_name("git@github.com:o/proj"), "proj");
        assert_eq!(quoted("a \"b\"\\c"), "\"a \\\"b\\\"\\\\c\"");
    }
}
