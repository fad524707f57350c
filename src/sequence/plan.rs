//! The plan `pushgate sequence check` prints: blocks, testcases with their bound commands,
//! what the prepare asks for, unbound ids and what is kept without being acted on.

use std::fmt::Write;
use std::time::Duration;

use serde_json::json;

use super::model::{Block, BlockKind, HostNeed, Node, Prepare, Sequence, Testcase, Vm};

/// The plan as JSON: counts first, then the whole model.
pub fn json(seq: &Sequence) -> serde_json::Value {
    json!({
        "file": seq.source.display().to_string(),
        "name": seq.name,
        "testcases": seq.testcases().len(),
        "hosts": seq.prepare.host_count(),
        "unbound": seq.unbound(),
        "kept": seq.kept,
        "prepare": seq.prepare,
        "body": seq.body,
        "variables": seq.variables,
    })
}

/// The plan as text, one line per block and testcase.
pub fn text(seq: &Sequence) -> String {
    let mut out = String::new();
    let unbound = seq.unbound();
    let _ = writeln!(
        out,
        "{}: sequence `{}`: {} testcases, {} unbound, {} host{}",
        seq.source.display(),
        seq.name,
        seq.testcases().len(),
        unbound.len(),
        seq.prepare.host_count(),
        if seq.prepare.host_count() == 1 {
            ""
        } else {
            "s"
        }
    );
    prepare(&mut out, &seq.prepare);
    let _ = writeln!(out, "run:");
    block(&mut out, &seq.body, 1);
    if !unbound.is_empty() {
        let _ = writeln!(
            out,
            "unbound (broken at run time until sequences/testcases.toml binds them):"
        );
        for id in &unbound {
            let _ = writeln!(out, "  {id}");
        }
    }
    if !seq.kept.is_empty() {
        let _ = writeln!(out, "kept, not acted on:");
        for k in &seq.kept {
            let _ = writeln!(out, "  {}:{}: {}", k.line, k.column, k.what);
        }
    }
    out
}

fn prepare(out: &mut String, p: &Prepare) {
    let empty = p.pools.is_empty()
        && p.hosts.is_empty()
        && p.vms.is_empty()
        && p.storage.is_empty()
        && p.bridges.is_empty()
        && p.needs.is_empty()
        && p.steps.is_empty();
    if empty {
        return;
    }
    let _ = writeln!(out, "prepare:");
    for (k, v) in &p.needs {
        let _ = writeln!(out, "  need {k} = {v}");
    }
    for pool in &p.pools {
        let _ = writeln!(
            out,
            "  pool {}{}",
            pool.id.as_deref().or(pool.name.as_deref()).unwrap_or("-"),
            pool.master
                .as_ref()
                .map(|m| format!(" (master {m})"))
                .unwrap_or_default()
        );
        for h in &pool.hosts {
            host(out, h, 2);
        }
        for s in &pool.storage {
            let _ = writeln!(
                out,
                "    storage {} {}",
                s.kind,
                s.name.as_deref().unwrap_or("")
            );
        }
        for v in &pool.vms {
            vm(out, v, 2);
        }
    }
    for h in &p.hosts {
        host(out, h, 1);
    }
    for v in &p.vms {
        vm(out, v, 1);
    }
    for s in &p.storage {
        let _ = writeln!(
            out,
            "  storage {} {}",
            s.kind,
            s.name.as_deref().unwrap_or("")
        );
    }
    for b in &p.bridges {
        let _ = writeln!(out, "  bridge {b}");
    }
    for t in &p.steps {
        testcase(out, t, 1);
    }
}

fn host(out: &mut String, h: &HostNeed, depth: usize) {
    let pad = "  ".repeat(depth);
    let mut words: Vec<String> = h.alias.iter().map(|a| format!("alias {a}")).collect();
    words.extend(h.attributes.iter().map(|(k, v)| format!("{k}={v}")));
    let _ = writeln!(
        out,
        "{pad}host {}{}",
        h.id.as_deref().unwrap_or("-"),
        if words.is_empty() {
            String::new()
        } else {
            format!(" ({})", words.join(", "))
        }
    );
    for s in &h.storage {
        let _ = writeln!(
            out,
            "{pad}  storage {} {}",
            s.kind,
            s.name.as_deref().unwrap_or("")
        );
    }
    for b in &h.bridges {
        let _ = writeln!(out, "{pad}  bridge {b}");
    }
    for v in &h.vms {
        vm(out, v, depth + 1);
    }
}

fn vm(out: &mut String, v: &Vm, depth: usize) {
    let pad = "  ".repeat(depth);
    let mut words = Vec::new();
    if let Some(d) = &v.distro {
        words.push(d.clone());
    }
    if let Some(m) = &v.memory {
        words.push(format!("memory {m}"));
    }
    if let Some(c) = &v.vcpus {
        words.push(format!("{c} vcpus"));
    }
    if !v.networks.is_empty() {
        words.push(format!("{} networks", v.networks.len()));
    }
    if !v.disks.is_empty() {
        words.push(format!("{} disks", v.disks.len()));
    }
    if !v.postinstall.is_empty() {
        words.push(format!("then {}", v.postinstall.join(", ")));
    }
    let _ = writeln!(
        out,
        "{pad}vm {} ({})",
        v.name.as_deref().unwrap_or("-"),
        words.join(", ")
    );
}

fn block(out: &mut String, b: &Block, depth: usize) {
    for node in &b.nodes {
        self::node(out, node, depth);
    }
    if !b.finally.is_empty() {
        let _ = writeln!(out, "{}finally", "  ".repeat(depth));
        for node in &b.finally {
            self::node(out, node, depth + 1);
        }
    }
}

fn node(out: &mut String, n: &Node, depth: usize) {
    match n {
        Node::Test(t) => testcase(out, t, depth),
        Node::Block(b) => {
            let kind = match b.kind {
                BlockKind::Serial => "serial".to_string(),
                BlockKind::Parallel { workers: Some(w) } => format!("parallel, {w} workers"),
                BlockKind::Parallel { workers: None } => "parallel".to_string(),
            };
            let mut words = vec![kind];
            if b.blocker {
                words.push("blocker".into());
            }
            if let Some(g) = &b.group {
                words.push(format!("group {g}"));
            }
            let _ = writeln!(out, "{}{}", "  ".repeat(depth), words.join(", "));
            block(out, b, depth + 1);
        }
    }
}

fn testcase(out: &mut String, t: &Testcase, depth: usize) {
    let pad = "  ".repeat(depth);
    let mut words = Vec::new();
    if t.id != t.name {
        words.push(t.id.clone());
    }
    if let Some(tc) = &t.tc {
        words.push(tc.clone());
    }
    if t.blocker {
        words.push("blocker".into());
    }
    let what = match &t.step {
        Some(s) => format!("`{}` (timeout {})", s.command, short(s.timeout)),
        None => "UNBOUND".to_string(),
    };
    let _ = writeln!(
        out,
        "{pad}{}{}: {what}",
        t.name,
        if words.is_empty() {
            String::new()
        } else {
            format!(" [{}]", words.join(", "))
        }
    );
}

fn short(d: Duration) -> String {
    humantime::format_duration(d).to_string()
}
