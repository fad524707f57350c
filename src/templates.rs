//! Every template pushgate renders (mail bodies, web pages), compiled in from `templates/` so
//! the binary needs no files beside it.

use std::sync::OnceLock;

use minijinja::Environment;

/// A template that could not be rendered, by name.
#[derive(Debug, thiserror::Error)]
#[error("template {name}: {source}")]
pub struct TemplateError {
    name: &'static str,
    #[source]
    source: minijinja::Error,
}

/// Every template, compiled in from `templates/` so the binary needs no files beside it.
pub fn templates() -> &'static Environment<'static> {
    static ENV: OnceLock<Environment<'static>> = OnceLock::new();
    ENV.get_or_init(|| {
        let mut env = Environment::new();
        // Mail bodies end with a newline like any text file.
        env.set_keep_trailing_newline(true);
        let sources = [
            (
                "gate-report.txt",
                include_str!("../templates/gate-report.txt"),
            ),
            ("culprit.txt", include_str!("../templates/culprit.txt")),
            ("pause.txt", include_str!("../templates/pause.txt")),
            ("force.txt", include_str!("../templates/force.txt")),
            (
                "series-reply.txt",
                include_str!("../templates/series-reply.txt"),
            ),
            (
                "job-result.txt",
                include_str!("../templates/job-result.txt"),
            ),
            (
                "host-out-of-service.txt",
                include_str!("../templates/host-out-of-service.txt"),
            ),
            ("status.html", include_str!("../templates/status.html")),
            ("flight.html", include_str!("../templates/flight.html")),
            ("base.html", include_str!("../templates/base.html")),
            ("steps.html", include_str!("../templates/steps.html")),
            ("run.html", include_str!("../templates/run.html")),
            ("log.html", include_str!("../templates/log.html")),
            ("jobs.html", include_str!("../templates/jobs.html")),
            ("job.html", include_str!("../templates/job.html")),
            ("hosts.html", include_str!("../templates/hosts.html")),
            ("branch.html", include_str!("../templates/branch.html")),
            ("host.html", include_str!("../templates/host.html")),
            // What `pushgate init` writes.
            (
                "init/pushgate.toml",
                include_str!("../templates/init/pushgate.toml"),
            ),
            (
                "init/policy.toml",
                include_str!("../templates/init/policy.toml"),
            ),
            (
                "init/smoke.toml",
                include_str!("../templates/init/smoke.toml"),
            ),
            (
                "init/post-receive",
                include_str!("../templates/init/post-receive"),
            ),
        ];
        for (name, source) in sources {
            // The templates ship inside the binary; a syntax error in one is caught by the
            // `every_template_compiles` test, so this cannot fail at run time.
            env.add_template(name, source)
                .unwrap_or_else(|e| panic!("template {name}: {e}"));
        }
        env
    })
}

/// Renders a template with a context, naming the template if it fails.
pub fn render(name: &'static str, context: impl serde::Serialize) -> Result<String, TemplateError> {
    templates()
        .get_template(name)
        .and_then(|t| t.render(context))
        .map_err(|source| TemplateError { name, source })
}

#[cfg(test)]
mod tests {
    /// Every file of `templates/` is compiled in, under its path there.
    #[test]
    fn every_template_compiles() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("templates");
        let mut files = Vec::new();
        let mut dirs = vec![root.clone()];
        while let Some(dir) = dirs.pop() {
            for entry in std::fs::read_dir(dir).unwrap().flatten() {
                let path = entry.path();
                if path.is_dir() {
                    dirs.push(path);
                } else {
                    let name = path
                        .strip_prefix(&root)
                        .unwrap()
                        .to_string_lossy()
                        .into_owned();
                    files.push(name);
                }
            }
        }
        files.sort();
        let env = super::templates();
        let mut compiled: Vec<String> = env.templates().map(|(n, _)| n.to_string()).collect();
        compiled.sort();
        assert_eq!(compiled, files);
    }
}
