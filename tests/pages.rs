//! The pages a maintainer opens from pushgate's mail, with the real binary: every link in every
//! mail a flight with a paused run and a job send answers 200 without a token; a paused run's
//! page says how to let it go on; a log page numbers and anchors its lines, shows a big log a
//! page at a time, and tails a running step; the raw log is the file.

mod support;

use std::net::SocketAddr;
use std::path::Path;
use std::process::{Command, Stdio};

use support::*;

const TOKEN: &str = "a-token-of-twenty-chars";

/// `pushgate serve` on a sandbox, stopped when dropped.
struct Served {
    child: std::process::Child,
    addr: SocketAddr,
}

impl Served {
    fn start(sandbox: &Sandbox) -> Served {
        let port = free_port();
        let config = sandbox.path().join("pushgate.toml");
        std::fs::write(
            &config,
            format!(
                "state_dir = \"state\"\nlisten = \"127.0.0.1:{port}\"\npoll_interval = \"1h\"\n\
                 public_url = \"http://127.0.0.1:{port}\"\n[api]\ntoken = \"{TOKEN}\"\n"
            ),
        )
        .unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_pushgate"))
            .args(["serve", "-q", "--config"])
            .arg(&config)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        wait_for_port(port, "serve");
        Served {
            child,
            addr: format!("127.0.0.1:{port}").parse().unwrap(),
        }
    }

    fn get(&self, path: &str) -> (u16, String) {
        http("GET", self.addr, path, "")
    }

    /// The job API, with the token.
    fn api(&self, method: &str, path: &str, body: &str) -> serde_json::Value {
        let auth = format!("Bearer {TOKEN}");
        let (status, text) = http_with(
            method,
            self.addr,
            path,
            &[
                ("Authorization", &auth),
                ("Content-Type", "application/json"),
            ],
            body.as_bytes(),
        );
        assert!(status < 300, "{method} {path}: {status} {text}");
        serde_json::from_str(&text).unwrap_or(serde_json::Value::Null)
    }

    fn submit(&self, sequence: &str) -> i64 {
        let body = format!(
            "{{\"sequence\":\"{sequence}\",\"submitter\":\"tester\",\"email\":\"dev@example.org\"}}"
        );
        self.api("POST", "/api/jobs", &body)["id"].as_i64().unwrap()
    }

    fn job(&self, id: i64) -> serde_json::Value {
        self.api("GET", &format!("/api/jobs/{id}"), "")
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Every mail in the outbox, decoded.
fn outbox(sandbox: &Sandbox) -> Vec<Mail> {
    sandbox
        .outbox()
        .iter()
        .map(|p| parse_mail(&std::fs::read(p).unwrap()))
        .collect()
}

/// The links of `text` that lead to `addr`.
fn links(text: &str, addr: SocketAddr) -> Vec<String> {
    let start = format!("http://{addr}");
    text.split(|c: char| c.is_whitespace() || c == '<' || c == '>' || c == '"')
        .filter_map(|word| word.strip_prefix(&start))
        .map(|path| path.trim_end_matches(['.', ',', ')']).to_string())
        .collect()
}

#[test]
fn every_link_in_the_mail_opens_a_page_without_a_token() {
    let root = tempfile::tempdir().unwrap();
    let up = Upstream::new(root.path(), &[("README", "hello\n")]);
    let shas = up.commits(3, Some(2));
    up.push_staging();
    let sandbox = Sandbox::new();
    sandbox.sequence("test", TEST_SEQUENCE);
    sandbox.policy(
        "project",
        &format!(
            "repository = \"{}\"\nsequences = [\"test\"]\nretries = 0\npause_on_fail = \"ALL\"\n\
             pause_resume_after = \"never\"\n[mail]\nlist = \"devel@lists.example.org\"\n",
            up.bare.display()
        ),
    );
    // The public URL is the served address, so that mail links lead here.
    let serve = Served::start(&sandbox);

    // The tip fails and pauses: its mail links to the run's page, which says how to go on.
    let pause = eventually(60, "the pause mail", || {
        outbox(&sandbox)
            .into_iter()
            .find(|m| m.subject.contains("paused"))
    });
    let run_link = links(&pause.text, serve.addr)
        .into_iter()
        .find(|l| l.starts_with("/runs/"))
        .expect("a run link in the pause mail");
    let (status, page) = serve.get(&run_link);
    assert_eq!(status, 200, "{page}");
    let run_id = run_link.trim_start_matches("/runs/");
    assert!(
        page.contains(&format!(
            "pushgate jobs interact --run {run_id} --continue "
        )),
        "{page}"
    );
    serve.api(
        "POST",
        &format!("/api/runs/{run_id}/interact"),
        "{\"all\":true}",
    );
    // Each later failure pauses too: let every one go on until the flight ends.
    eventually(120, "the flight to end", || {
        for run in serve.api("GET", "/api/flights/1", "")["runs"]
            .as_array()
            .cloned()
            .unwrap_or_default()
        {
            if run["state"] == "running" {
                let id = run["id"].as_i64().unwrap();
                let auth = format!("Bearer {TOKEN}");
                http_with(
                    "POST",
                    serve.addr,
                    &format!("/api/runs/{id}/interact"),
                    &[
                        ("Authorization", &auth),
                        ("Content-Type", "application/json"),
                    ],
                    b"{\"all\":true}",
                );
            }
        }
        let (_, branches) = serve.get("/api/branches");
        branches.contains("\"blocked\"").then_some(())
    });
    let job = serve.submit("test");
    eventually(60, "the job's mail", || {
        outbox(&sandbox)
            .into_iter()
            .find(|m| m.subject.contains(&format!("job {job}")))
    });
    eventually(30, "the gate report and the culprit mail", || {
        let mails = outbox(&sandbox);
        (mails.iter().any(|m| m.subject.contains("your commit"))
            && mails.iter().any(|m| m.subject.contains("flight 1:")))
        .then_some(())
    });

    // The dashboard names the culprit (sha, title, author) and what was pushed.
    let (_, dashboard) = serve.get("/");
    assert!(dashboard.contains(&shas[1][..12]), "{dashboard}");
    assert!(dashboard.contains("change number 2"), "{dashboard}");
    assert!(dashboard.contains("pushed"), "{dashboard}");
    // The branch's history: the flight as a row, the step's result on the tip as a cell that
    // opens its log; the filters keep or drop it.
    let (status, grid) = serve.get("/branches/project");
    assert_eq!(status, 200, "{grid}");
    assert!(grid.contains("<th>test&#x2f;test</th>"), "{grid}");
    assert!(
        grid.contains("class=\"cell fail\"><a href=\"/logs/"),
        "{grid}"
    );
    assert!(grid.contains("class=\"regression\">regression"), "{grid}");
    assert!(serve
        .get("/branches/project?verdict=pass")
        .1
        .contains("No flights like that"));
    assert!(!serve
        .get("/branches/project?verdict=regression")
        .1
        .contains("No flights"));
    let author = serve.get("/branches/project?author=nobody-of-that-name").1;
    assert!(author.contains("No flights like that"), "{author}");
    assert!(!serve
        .get("/branches/project?since=2000-01-01")
        .1
        .contains("No flights"));
    assert!(serve
        .get("/branches/project?until=2000-01-01")
        .1
        .contains("No flights"));
    assert_eq!(serve.get("/branches/project?since=yesterday").0, 400);
    assert_eq!(serve.get("/branches/nosuch").0, 404);
    let mut checked = 0;
    for mail in outbox(&sandbox) {
        for link in links(&mail.text, serve.addr) {
            let (status, body) = serve.get(&link);
            assert_eq!(status, 200, "{link} in {:?}: {body}", mail.subject);
            checked += 1;
        }
    }
    assert!(
        checked >= 4,
        "links to the flight, a log, a run and a job: {checked}"
    );
    let (status, jobs) = serve.get("/jobs");
    assert_eq!(status, 200);
    assert!(jobs.contains(&format!("href=\"/jobs/{job}\"")), "{jobs}");
    assert_eq!(serve.get("/runs/999999").0, 404);
}

/// The id of the first step of job `job`'s run whose status is `status`, once there is one.
fn step_of(serve: &Served, job: i64, status: &str) -> i64 {
    eventually(60, status, || {
        let j = serve.job(job);
        j["runs"]
            .as_array()?
            .iter()
            .flat_map(|r| r["steps"].as_array().cloned().unwrap_or_default())
            .find(|s| s["status"] == status)
            .and_then(|s| s["id"].as_i64())
    })
}

#[test]
fn a_log_page_numbers_its_lines_pages_a_big_log_and_tails_a_running_step() {
    let root = tempfile::tempdir().unwrap();
    let up = Upstream::new(root.path(), &[("README", "hello\n")]);
    let sandbox = Sandbox::new();
    let release = root.path().join("release");
    sandbox.sequence(
        "slow",
        &format!(
            "[[step]]\nname = \"talk\"\ncommand = \"echo first; while [ ! -e {} ]; do sleep 0.05; done; echo second\"\n",
            release.display()
        ),
    );
    sandbox.sequence(
        "long",
        "[[step]]\nname = \"count\"\ncommand = \"seq 1 100000\"\n",
    );
    sandbox.policy(
        "project",
        &format!(
            "repository = \"{}\"\nsequences = [\"slow\", \"long\"]\n",
            up.bare.display()
        ),
    );
    // One slot: a second job waits while the first runs.
    std::fs::write(
        sandbox.path().join("hosts.toml"),
        "[[host]]\nname = \"here\"\nprovisioner = \"local\"\nslots = 1\n",
    )
    .unwrap();
    let serve = Served::start(&sandbox);

    // A running step: the page shows what it printed so far and is set to tail it.
    let job = serve.submit("slow");
    let step = step_of(&serve, job, "running");
    // The dashboard lists what waits for a host, and what for.
    let waiting = serve.submit("long");
    let dashboard = eventually(30, "the queue on the dashboard", || {
        let (_, page) = serve.get("/");
        page.contains(&format!("job {waiting}")).then_some(page)
    });
    assert!(dashboard.contains("manual"), "{dashboard}");
    let (_, hosts) = serve.get("/hosts");
    assert!(
        hosts.contains("href=\"/hosts/here\"") && hosts.contains("1/1"),
        "{hosts}"
    );
    let (_, here) = serve.get("/hosts/here");
    assert!(here.contains(&format!("href=\"/jobs/{job}\"")), "{here}");
    assert_eq!(serve.get("/hosts/nowhere").0, 404);
    let (_, queue) = serve.get("/api/queue");
    assert!(
        queue.contains(&format!("\"of\":\"job {waiting}\"")),
        "{queue}"
    );
    let page = eventually(30, "the first line", || {
        let (_, page) = serve.get(&format!("/logs/{step}"));
        page.contains("first").then_some(page)
    });
    assert!(page.contains("id=\"L1\""), "{page}");
    assert!(page.contains("href=\"#L1\""), "{page}");
    assert!(page.contains("data-live=\"yes\""), "{page}");
    assert!(page.contains("href=\"/runs/"), "{page}");
    let offset: u64 = page
        .split("data-offset=\"")
        .nth(1)
        .and_then(|s| s.split('"').next())
        .and_then(|s| s.parse().ok())
        .unwrap();
    assert_eq!(offset, "first\n".len() as u64);
    std::fs::write(&release, "").unwrap();
    let tail = eventually(30, "the line printed after the page was made", || {
        let (_, body) = serve.get(&format!("/logs/{step}/tail?offset={offset}"));
        let v: serde_json::Value = serde_json::from_str(&body).ok()?;
        (v["lines"][0] == "second" && v["running"] == false).then_some(v)
    });
    assert_eq!(tail["status"], "pass");

    // The raw file, as written.
    let raw = Command::new("curl")
        .args(["-fsS", &format!("http://{}/logs/{step}/raw", serve.addr)])
        .output()
        .unwrap();
    let raw = String::from_utf8_lossy(&raw.stdout);
    assert!(raw.starts_with("first\nsecond\n"), "{raw}");
    assert!(raw.contains("exit status 0"), "{raw}");

    // A big log opens on its last page, with a way to the start; lines have their numbers.
    let job = waiting;
    eventually(60, "the long job", || {
        (serve.job(job)["job"]["state"] == "pass").then_some(())
    });
    let step = step_of(&serve, job, "pass");
    let (status, page) = serve.get(&format!("/logs/{step}"));
    assert_eq!(status, 200);
    // seq's lines, then pushgate's own at the end of a step's log.
    let total: usize = page
        .split(" lines, ")
        .next()
        .and_then(|s| s.rsplit(|c: char| !c.is_ascii_digit()).next())
        .and_then(|n| n.parse().ok())
        .expect("the log's line count");
    assert!((100_000..100_010).contains(&total), "{total}");
    assert!(page.contains(&format!("id=\"L{total}\"")));
    assert!(page.contains(&format!("id=\"L{}\"", total - 1999)));
    assert!(!page.contains(&format!("id=\"L{}\"", total - 2000)));
    assert!(page.contains(&format!("/logs/{step}?from=1")));
    let (_, first) = serve.get(&format!("/logs/{step}?from=1"));
    assert!(first.contains("id=\"L1\"") && first.contains("id=\"L2000\""));
    assert!(!first.contains("id=\"L2001\""));
    assert!(first.contains(&format!("/logs/{step}?from=2001")));
    assert_eq!(serve.get("/logs/999999").0, 404);
    assert!(Path::new(&sandbox.path().join("state")).exists());
}
