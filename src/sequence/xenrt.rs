//! XenRT's sequence files (`.seq`, XML with root `<xenrt>`), read as the harness read them.
//!
//! `<default name value>` defines `${NAME}`; `<include collection>` pulls in a `<collection>`
//! (of this file or of one named by a top-level `<include filename>`), with `<param>`s;
//! `<for iter values>` repeats its body; `<ifeq>`, `<ifnoteq>`, `<ifin>` and `<ifnotin>` are
//! decided when the file loads. Everything pushgate does not act on (semaphores, scheduler
//! hints, networks, actions, perf limits, ...) is kept in [`Sequence::kept`], never dropped.

use std::cell::Cell;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::rc::Rc;

use super::model::{
    make_names_unique, Block, BlockKind, HostNeed, Kept, Node, Pool, Prepare, Sequence, Storage,
    Testcase, Vm,
};
use super::xml::{Element, Located};
use crate::file_error::{FileError, Source};

/// Includes nested deeper than this are a loop.
const MAX_INCLUDE_DEPTH: usize = 16;
/// A `<for>` that would make more testcases than this is refused rather than run.
const MAX_TESTCASES: usize = 100_000;
/// The most text one load may expand to, all told, counted while it is made: `${NAME}`
/// substitutions, `<for>` repetitions and `<include>`d collections. Values that double at each
/// level made a 1 KB file allocate 4 GB and abort; nested loops and includes multiply the same
/// way.
const MAX_EXPANDED: usize = 16 << 20;
/// What instantiating an element costs besides its text: what it adds to the sequence (a node,
/// a kept record) and the work of visiting it, so that empty elements repeated a billion times
/// are not free.
const ELEMENT_COST: usize = 64;

/// Loads one `.seq` file; its name is the file stem. It may include files of its own directory
/// and of `include_roots`.
pub fn load(
    path: &Path,
    params: &BTreeMap<String, String>,
    include_roots: &[PathBuf],
) -> Result<Sequence, FileError> {
    let text = Source::read(path)?;
    parse(path, &text, params, include_roots)
}

/// Parses a `.seq` file's text. `params` override its `<default>`s, as a job's `-D` did;
/// `<include filename>` reads files of the file's own directory and of `include_roots` only.
pub fn parse(
    path: &Path,
    text: &str,
    params: &BTreeMap<String, String>,
    include_roots: &[PathBuf],
) -> Result<Sequence, FileError> {
    let located = Located::new(path, text);
    let root = located.parse()?;
    if root.name != "xenrt" {
        return Err(located.error(
            root.span.start,
            &root.name,
            format!("the root element is <{}>, not <xenrt>", root.name),
        ));
    }
    let name = path
        .file_stem()
        .and_then(|s| s.to_str())
        .unwrap_or("sequence")
        .to_string();
    let own_dir = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    };
    // Canonical, so that `..` and links cannot lead an include out; a root that does not exist
    // holds nothing to include.
    let roots = std::iter::once(own_dir)
        .chain(include_roots.iter().map(PathBuf::as_path))
        .filter_map(|r| std::fs::canonicalize(r).ok())
        .collect();
    let mut loader = Loader {
        roots,
        files: vec![(path.to_path_buf(), text.to_string())],
        collections: BTreeMap::new(),
        defaults: BTreeMap::new(),
        variables: BTreeMap::new(),
        kept: Vec::new(),
        count: 0,
        expansion: Rc::new(Expansion::new()),
    };
    loader.declarations(0, &root, params, 0)?;
    loader.expansion.check(&located)?;
    for (k, v) in params {
        loader.defaults.insert(k.clone(), v.clone());
    }
    let scope = Scope::root(&loader.defaults, &loader.expansion);
    let mut prepare = Prepare::default();
    let mut body = Block::serial(Vec::new());
    for el in &root.children {
        match el.name.as_str() {
            "prepare" => loader.prepare(0, el, &scope, &mut prepare)?,
            "testsequence" => {
                body.group = el.attribute("group").map(|g| scope.expand(g));
                if let Some(b) = el.attribute("blocker") {
                    body.blocker = loader.boolean(0, el, "blocker", b)?;
                }
                loader.nodes(0, el, &scope, &mut body, 0)?;
            }
            "serial" | "parallel" | "testcase" | "marvintests" => {
                let wrapper = Element {
                    name: "xenrt".into(),
                    attributes: Vec::new(),
                    children: vec![el.clone()],
                    text: String::new(),
                    span: el.span.clone(),
                };
                loader.nodes(0, &wrapper, &scope, &mut body, 0)?;
            }
            _ => {}
        }
    }
    loader.expansion.check(&located)?;
    let mut variables = loader.variables.clone();
    variables.extend(loader.defaults.clone());
    let mut sequence = Sequence {
        name,
        description: String::new(),
        source: path.to_path_buf(),
        variables,
        prepare,
        body,
        kept: loader.kept,
    };
    make_names_unique(&mut sequence);
    Ok(sequence)
}

/// Reads the file's declarations and builds its tree; `file` indexes `files` (included files
/// come after the main one).
struct Loader {
    /// The directories includes may be read from, canonical.
    roots: Vec<PathBuf>,
    files: Vec<(PathBuf, String)>,
    /// Shared, not copied, by every `<include collection>` of them.
    collections: BTreeMap<String, (usize, Rc<Element>)>,
    defaults: BTreeMap<String, String>,
    variables: BTreeMap<String, String>,
    kept: Vec<Kept>,
    count: usize,
    expansion: Rc<Expansion>,
}

/// What one load may still expand to ([`MAX_EXPANDED`] in all). Once it is spent, substitutions
/// produce nothing more and nothing more is kept, so memory stays bounded, and the load fails
/// at the next element it would instantiate, or at its end.
struct Expansion {
    left: Cell<usize>,
    spent: Cell<bool>,
}

impl Expansion {
    fn new() -> Expansion {
        Expansion {
            left: Cell::new(MAX_EXPANDED),
            spent: Cell::new(false),
        }
    }

    /// Takes `bytes` of what is left, or says it is spent.
    fn take(&self, bytes: usize) -> bool {
        match self.left.get().checked_sub(bytes) {
            Some(left) if !self.spent.get() => {
                self.left.set(left);
                true
            }
            _ => {
                self.spent.set(true);
                false
            }
        }
    }

    fn check(&self, file: &Located<'_>) -> Result<(), FileError> {
        if !self.spent.get() {
            return Ok(());
        }
        Err(FileError {
            file: file.path.to_path_buf(),
            line: 0,
            column: 0,
            field: String::new(),
            message: Self::message(),
        })
    }

    fn message() -> String {
        format!(
            "expands to more than {} MiB of text (`${{NAME}}` substitutions, <for> repetitions \
             and included collections, all told: a value that doubles at each level, or loops \
             and includes that multiply?)",
            MAX_EXPANDED >> 20
        )
    }
}

/// The `${NAME}` values in force: defaults, then include params and loop variables on top.
struct Scope {
    layer: Rc<Layer>,
    expansion: Rc<Expansion>,
}

/// One level of values over the levels that enclose it. A `<for>` row or an include adds a
/// level of its own few values instead of copying every default: copying cost a whole map per
/// row, which a long loop over a file of many defaults made quadratic.
struct Layer {
    values: BTreeMap<String, String>,
    outer: Option<Rc<Layer>>,
}

impl Layer {
    fn get(&self, name: &str) -> Option<&str> {
        match self.values.get(name) {
            Some(v) => Some(v),
            None => self.outer.as_ref()?.get(name),
        }
    }
}

impl Scope {
    fn root(defaults: &BTreeMap<String, String>, expansion: &Rc<Expansion>) -> Scope {
        Scope {
            layer: Rc::new(Layer {
                values: defaults.clone(),
                outer: None,
            }),
            expansion: Rc::clone(expansion),
        }
    }

    fn with(&self, more: impl IntoIterator<Item = (String, String)>) -> Scope {
        Scope {
            layer: Rc::new(Layer {
                values: more.into_iter().collect(),
                outer: Some(Rc::clone(&self.layer)),
            }),
            expansion: Rc::clone(&self.expansion),
        }
    }

    /// Replaces every `${NAME}` that is defined; an undefined one stays as written (XenRT's
    /// own lookups, `%LIKE_THIS%`, are not ours to guess either).
    fn expand(&self, text: &str) -> String {
        expand(text, |name| self.layer.get(name), &self.expansion)
    }
}

fn expand<'v>(
    text: &str,
    lookup: impl Fn(&str) -> Option<&'v str>,
    expansion: &Expansion,
) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(i) = rest.find("${") {
        out.push_str(&rest[..i]);
        let after = &rest[i + 2..];
        match after
            .find('}')
            .and_then(|j| Some((j, lookup(&after[..j])?)))
        {
            Some((j, value)) => {
                if expansion.take(value.len()) {
                    out.push_str(value);
                }
                rest = &after[j + 1..];
            }
            _ => {
                out.push_str("${");
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}

/// Whether a value still holds something that was not expanded (`${X}`, `%X%`).
fn unexpanded(value: &str) -> bool {
    value.contains("${") || (value.matches('%').count() >= 2)
}

impl Loader {
    fn located(&self, file: usize) -> Located<'_> {
        let (path, text) = &self.files[file];
        Located::new(path, text)
    }

    fn error(
        &self,
        file: usize,
        el: &Element,
        field: &str,
        message: impl Into<String>,
    ) -> FileError {
        self.located(file).error(el.span.start, field, message)
    }

    fn keep(&mut self, file: usize, el: &Element, what: String, value: String) {
        // Kept text is expanded text too: a kept element in a loop is kept once a row.
        if !self.expansion.take(what.len() + value.len()) {
            return;
        }
        let (line, column) = self.located(file).position(el.span.start);
        self.kept.push(Kept {
            what,
            line,
            column,
            value,
        });
    }

    fn keep_element(&mut self, file: usize, el: &Element) {
        let value = self.files[file]
            .1
            .get(el.span.clone())
            .unwrap_or_default()
            .to_string();
        self.keep(file, el, format!("element <{}>", el.name), value);
    }

    fn keep_attribute(&mut self, file: usize, el: &Element, name: &str, value: &str) {
        self.keep(
            file,
            el,
            format!("attribute `{name}` of <{}>", el.name),
            value.to_string(),
        );
    }

    /// First pass over a root: defaults, variables, collections, included files, and what is
    /// kept at the top level.
    fn declarations(
        &mut self,
        file: usize,
        root: &Element,
        params: &BTreeMap<String, String>,
        depth: usize,
    ) -> Result<(), FileError> {
        for el in &root.children {
            match el.name.as_str() {
                "default" => {
                    let (Some(name), Some(value)) = (el.attribute("name"), el.attribute("value"))
                    else {
                        return Err(self.error(
                            file,
                            el,
                            "default",
                            "<default> needs `name` and `value`",
                        ));
                    };
                    // The first definition wins: an including file's defaults beat an included one's.
                    if !self.defaults.contains_key(name) {
                        let value = expand(
                            value,
                            |n| self.defaults.get(n).map(String::as_str),
                            &self.expansion,
                        );
                        self.defaults.insert(name.to_string(), value);
                    }
                }
                "variables" => {
                    for v in &el.children {
                        let value = if v.children.is_empty() {
                            v.text.clone()
                        } else {
                            self.files[file]
                                .1
                                .get(v.span.clone())
                                .unwrap_or_default()
                                .to_string()
                        };
                        self.variables.entry(v.name.clone()).or_insert(value);
                    }
                }
                "collection" => {
                    let Some(name) = el.attribute("name") else {
                        return Err(self.error(
                            file,
                            el,
                            "collection",
                            "<collection> needs a `name`",
                        ));
                    };
                    self.collections
                        .entry(name.to_string())
                        .or_insert_with(|| (file, Rc::new(el.clone())));
                }
                "include" => self.include_file(file, el, params, depth)?,
                "prepare" | "testsequence" | "serial" | "parallel" | "testcase" | "marvintests" => {
                }
                _ => self.keep_element(file, el),
            }
        }
        Ok(())
    }

    /// A top-level `<include filename="other.seq"/>`: its defaults and collections become ours.
    fn include_file(
        &mut self,
        file: usize,
        el: &Element,
        params: &BTreeMap<String, String>,
        depth: usize,
    ) -> Result<(), FileError> {
        let Some(name) = el.attribute("filename") else {
            return Err(self.error(
                file,
                el,
                "include",
                "a top-level <include> needs `filename` (a `collection` include belongs in a block)",
            ));
        };
        if depth >= MAX_INCLUDE_DEPTH {
            return Err(self.error(file, el, "include", "includes nest too deeply (a loop?)"));
        }
        let base = self.files[file]
            .0
            .parent()
            .unwrap_or(Path::new("."))
            .to_path_buf();
        let defaults = &self.defaults;
        let named = base.join(expand(
            name,
            |n| defaults.get(n).map(String::as_str),
            &self.expansion,
        ));
        let path = std::fs::canonicalize(&named).map_err(|e| {
            self.error(
                file,
                el,
                "filename",
                format!("{}: cannot read: {e}", named.display()),
            )
        })?;
        if !self.roots.iter().any(|root| path.starts_with(root)) {
            return Err(self.error(
                file,
                el,
                "filename",
                format!(
                    "{} is outside the sequences directory; `[input] include_roots` in \
                     pushgate.toml (or `--include-root`) names other directories includes may \
                     come from",
                    named.display()
                ),
            ));
        }
        let text = crate::file_error::read_text(&path)
            .map_err(|e| self.error(file, el, "filename", format!("{}: {e}", named.display())))?;
        let root = Located::new(&path, &text).parse()?;
        self.files.push((path, text));
        let index = self.files.len() - 1;
        self.declarations(index, &root, params, depth + 1)
    }

    fn boolean(
        &self,
        file: usize,
        el: &Element,
        name: &str,
        value: &str,
    ) -> Result<bool, FileError> {
        match value.trim() {
            "yes" | "true" => Ok(true),
            "no" | "false" => Ok(false),
            other => Err(self.error(
                file,
                el,
                name,
                format!("`{name}` is yes, no, true or false, not `{other}`"),
            )),
        }
    }

    /// A positive number, or `None` (kept) when it holds something pushgate cannot expand.
    fn number(
        &mut self,
        file: usize,
        el: &Element,
        name: &str,
        value: &str,
    ) -> Result<Option<usize>, FileError> {
        match value.trim().parse::<usize>() {
            Ok(n) if n > 0 => Ok(Some(n)),
            _ if unexpanded(value) => {
                self.keep_attribute(file, el, name, value);
                Ok(None)
            }
            _ => Err(self.error(
                file,
                el,
                name,
                format!("`{name}` must be a positive number, not `{value}`"),
            )),
        }
    }

    fn prepare(
        &mut self,
        file: usize,
        el: &Element,
        scope: &Scope,
        out: &mut Prepare,
    ) -> Result<(), FileError> {
        for child in &el.children {
            match child.name.as_str() {
                "pool" => {
                    let mut pool = Pool {
                        id: child.attribute("id").map(|v| scope.expand(v)),
                        name: child.attribute("name").map(|v| scope.expand(v)),
                        master: child.attribute("master").map(|v| scope.expand(v)),
                        ..Pool::default()
                    };
                    for (k, v) in &child.attributes {
                        if !matches!(k.as_str(), "id" | "name" | "master") {
                            self.keep_attribute(file, child, k, v);
                        }
                    }
                    for part in &child.children {
                        match part.name.as_str() {
                            "host" => pool.hosts.push(self.host(file, part, scope)?),
                            "vm" => pool.vms.push(self.vm(file, part, scope)),
                            "storage" => pool.storage.push(self.storage(file, part, scope)?),
                            _ => self.keep_element(file, part),
                        }
                    }
                    out.pools.push(pool);
                }
                "host" => out.hosts.push(self.host(file, child, scope)?),
                "vm" => out.vms.push(self.vm(file, child, scope)),
                "storage" => out.storage.push(self.storage(file, child, scope)?),
                "bridge" => out
                    .bridges
                    .extend(child.attribute("name").map(|v| scope.expand(v))),
                _ => self.keep_element(file, child),
            }
        }
        Ok(())
    }

    fn host(&mut self, file: usize, el: &Element, scope: &Scope) -> Result<HostNeed, FileError> {
        let mut host = HostNeed {
            id: el.attribute("id").map(|v| scope.expand(v)),
            alias: el.attribute("alias").map(|v| scope.expand(v)),
            ..HostNeed::default()
        };
        for (k, v) in &el.attributes {
            if !matches!(k.as_str(), "id" | "alias") {
                host.attributes.insert(k.clone(), scope.expand(v));
            }
        }
        for part in &el.children {
            match part.name.as_str() {
                "vm" => host.vms.push(self.vm(file, part, scope)),
                "storage" => host.storage.push(self.storage(file, part, scope)?),
                "bridge" => host
                    .bridges
                    .extend(part.attribute("name").map(|v| scope.expand(v))),
                _ => self.keep_element(file, part),
            }
        }
        Ok(host)
    }

    fn vm(&mut self, file: usize, el: &Element, scope: &Scope) -> Vm {
        let mut vm = Vm {
            name: el.attribute("name").map(|v| scope.expand(v)),
            ..Vm::default()
        };
        let attrs = |e: &Element| -> BTreeMap<String, String> {
            e.attributes
                .iter()
                .map(|(k, v)| (k.clone(), scope.expand(v)))
                .collect()
        };
        for part in &el.children {
            let text = Some(scope.expand(&part.text));
            match part.name.as_str() {
                "distro" => vm.distro = text,
                "memory" => vm.memory = text,
                "vcpus" => vm.vcpus = text,
                "arch" => vm.arch = text,
                "network" => vm.networks.push(attrs(part)),
                "disk" => vm.disks.push(attrs(part)),
                "postinstall" => vm
                    .postinstall
                    .extend(part.attribute("action").map(|a| scope.expand(a))),
                _ => self.keep_element(file, part),
            }
        }
        vm
    }

    fn storage(&mut self, file: usize, el: &Element, scope: &Scope) -> Result<Storage, FileError> {
        let Some(kind) = el.attribute("type") else {
            return Err(self.error(file, el, "type", "<storage> needs a `type`"));
        };
        Ok(Storage {
            kind: scope.expand(kind),
            name: el.attribute("name").map(|v| scope.expand(v)),
            attributes: el
                .attributes
                .iter()
                .filter(|(k, _)| k != "type" && k != "name")
                .map(|(k, v)| (k.clone(), scope.expand(v)))
                .collect(),
        })
    }

    /// Adds what `el`'s children make to `out`, in order.
    fn nodes(
        &mut self,
        file: usize,
        el: &Element,
        scope: &Scope,
        out: &mut Block,
        depth: usize,
    ) -> Result<(), FileError> {
        if depth > MAX_INCLUDE_DEPTH * 4 {
            return Err(self.error(
                file,
                el,
                &el.name,
                "blocks and includes nest too deeply (a loop?)",
            ));
        }
        for child in &el.children {
            self.charge(file, child)?;
            match child.name.as_str() {
                "testcase" | "marvintests" => {
                    let test = self.testcase(file, child, scope, out.group.as_deref())?;
                    out.nodes.push(Node::Test(test));
                }
                "serial" | "parallel" => {
                    let block = self.block(file, child, scope, out.group.as_deref(), depth)?;
                    out.nodes.push(Node::Block(block));
                }
                "finally" => {
                    let mut cleanup = Block::serial(Vec::new());
                    cleanup.group = out.group.clone();
                    self.nodes(file, child, scope, &mut cleanup, depth + 1)?;
                    out.finally.extend(cleanup.nodes);
                }
                "for" => self.repeat(file, child, scope, out, depth)?,
                "ifeq" | "ifnoteq" => {
                    let (Some(x), Some(y)) = (child.attribute("x"), child.attribute("y")) else {
                        return Err(self.error(file, child, &child.name, "needs `x` and `y`"));
                    };
                    let equal = scope.expand(x).trim() == scope.expand(y).trim();
                    if equal == (child.name == "ifeq") {
                        self.nodes(file, child, scope, out, depth + 1)?;
                    }
                }
                "ifin" | "ifnotin" => {
                    let (Some(item), Some(list)) =
                        (child.attribute("item"), child.attribute("list"))
                    else {
                        return Err(self.error(
                            file,
                            child,
                            &child.name,
                            "needs `item` and `list`",
                        ));
                    };
                    let item = scope.expand(item);
                    let list = scope.expand(list);
                    let found = list.split(',').any(|i| i.trim() == item.trim());
                    if found == (child.name == "ifin") {
                        self.nodes(file, child, scope, out, depth + 1)?;
                    }
                }
                "include" => self.include_collection(file, child, scope, out, depth)?,
                _ => self.keep_element(file, child),
            }
        }
        Ok(())
    }

    /// Takes what instantiating `el` once adds (its name, attributes and text, besides what it
    /// is made of) from what the load may still expand to; an error at `el` once that is spent.
    fn charge(&self, file: usize, el: &Element) -> Result<(), FileError> {
        let attributes: usize = el.attributes.iter().map(|(k, v)| k.len() + v.len()).sum();
        if self
            .expansion
            .take(ELEMENT_COST + el.name.len() + el.text.len() + attributes)
        {
            return Ok(());
        }
        Err(self.error(file, el, &el.name, Expansion::message()))
    }

    fn block(
        &mut self,
        file: usize,
        el: &Element,
        scope: &Scope,
        group: Option<&str>,
        depth: usize,
    ) -> Result<Block, FileError> {
        let kind = if el.name == "parallel" {
            let workers = match el.attribute("workers") {
                None => None,
                Some(w) => {
                    let w = scope.expand(w);
                    self.number(file, el, "workers", &w)?
                }
            };
            BlockKind::Parallel { workers }
        } else {
            BlockKind::Serial
        };
        let blocker = match el.attribute("blocker") {
            Some(b) => self.boolean(file, el, "blocker", &scope.expand(b))?,
            None => false,
        };
        for (k, v) in &el.attributes {
            if !matches!(k.as_str(), "workers" | "blocker" | "group") {
                self.keep_attribute(file, el, k, &scope.expand(v));
            }
        }
        let mut block = Block {
            kind,
            blocker,
            group: el
                .attribute("group")
                .map(|g| scope.expand(g))
                .or_else(|| group.map(str::to_string)),
            nodes: Vec::new(),
            finally: Vec::new(),
            line: self.located(file).position(el.span.start).0,
        };
        self.nodes(file, el, scope, &mut block, depth + 1)?;
        Ok(block)
    }

    fn testcase(
        &mut self,
        file: usize,
        el: &Element,
        scope: &Scope,
        group: Option<&str>,
    ) -> Result<Testcase, FileError> {
        self.count += 1;
        if self.count > MAX_TESTCASES {
            return Err(self.error(
                file,
                el,
                &el.name,
                format!("more than {MAX_TESTCASES} testcases"),
            ));
        }
        let line = self.located(file).position(el.span.start).0;
        let get = |name: &str| el.attribute(name).map(|v| scope.expand(v));
        let mut args = Vec::new();
        let (id, acted): (String, &[&str]) = if el.name == "marvintests" {
            // Marvin (CloudStack) tests: bound like any testcase, under the id `marvintests`.
            for key in ["path", "class", "tags"] {
                if let Some(v) = get(key) {
                    args.push(format!("{key}={v}"));
                }
            }
            (
                "marvintests".to_string(),
                &[
                    "path", "class", "tags", "tc", "blocker", "group", "prio", "host", "guest",
                    "name",
                ],
            )
        } else {
            let Some(id) = get("id").filter(|id| !id.trim().is_empty()) else {
                return Err(self.error(file, el, "id", "<testcase> needs an `id`"));
            };
            (
                id,
                &[
                    "id", "tc", "blocker", "group", "prio", "host", "guest", "name",
                ],
            )
        };
        for child in &el.children {
            if child.name == "arg" {
                args.push(scope.expand(&child.text));
            } else {
                self.keep_element(file, child);
            }
        }
        for (k, v) in &el.attributes {
            if !acted.contains(&k.as_str()) {
                self.keep_attribute(file, el, k, &scope.expand(v));
            }
        }
        let blocker = match get("blocker") {
            Some(b) => self.boolean(file, el, "blocker", &b)?,
            None => false,
        };
        let prio = match get("prio") {
            Some(p) => self.number(file, el, "prio", &p)?.map(|p| p as u32),
            None => None,
        };
        let group = get("group").or_else(|| group.map(str::to_string));
        let short = get("name").unwrap_or_else(|| {
            let class = get("class").unwrap_or_else(|| id.clone());
            class.rsplit('.').next().unwrap_or(&class).to_string()
        });
        let name = match &group {
            Some(g) => format!("{g}/{short}"),
            None => short,
        };
        Ok(Testcase {
            id,
            name,
            tc: get("tc"),
            blocker,
            group,
            prio,
            host: get("host"),
            guest: get("guest"),
            args,
            step: None,
            line,
        })
    }

    /// `<for iter="A,B" values="(1,2),(3,4)">` or `<for iter="X" values="a,b,c">`.
    fn repeat(
        &mut self,
        file: usize,
        el: &Element,
        scope: &Scope,
        out: &mut Block,
        depth: usize,
    ) -> Result<(), FileError> {
        let (Some(iter), Some(values)) = (el.attribute("iter"), el.attribute("values")) else {
            return Err(self.error(file, el, "for", "<for> needs `iter` and `values`"));
        };
        let names: Vec<String> = iter.split(',').map(|s| s.trim().to_string()).collect();
        let values = scope.expand(values);
        let rows: Vec<Vec<String>> = if names.len() > 1 {
            tuples(&values).ok_or_else(|| {
                self.error(
                    file,
                    el,
                    "values",
                    "with several `iter` names, `values` is a list of tuples like `(a,b),(c,d)`",
                )
            })?
        } else {
            values
                .split(',')
                .map(|v| vec![v.trim().to_string()])
                .filter(|v| !v[0].is_empty())
                .collect()
        };
        if let Some(row) = rows.iter().find(|r| r.len() != names.len()) {
            return Err(self.error(
                file,
                el,
                "values",
                format!(
                    "`({})` has {} values for {} names",
                    row.join(","),
                    row.len(),
                    names.len()
                ),
            ));
        }
        let offset = match el.attribute("offset") {
            Some(o) => self.number_or_zero(file, el, "offset", &scope.expand(o))?,
            None => 0,
        };
        let limit = match el.attribute("limit") {
            Some(l) => self.number(file, el, "limit", &scope.expand(l))?,
            None => None,
        };
        for row in rows
            .into_iter()
            .skip(offset)
            .take(limit.unwrap_or(usize::MAX))
        {
            // A row costs its values, even when its body makes nothing.
            let bytes: usize = row.iter().map(String::len).sum();
            if !self.expansion.take(ELEMENT_COST + bytes) {
                return Err(self.error(file, el, "for", Expansion::message()));
            }
            let inner = scope.with(names.iter().cloned().zip(row));
            self.nodes(file, el, &inner, out, depth + 1)?;
        }
        Ok(())
    }

    fn number_or_zero(
        &mut self,
        file: usize,
        el: &Element,
        name: &str,
        value: &str,
    ) -> Result<usize, FileError> {
        if value.trim() == "0" {
            return Ok(0);
        }
        Ok(self.number(file, el, name, value)?.unwrap_or(0))
    }

    fn include_collection(
        &mut self,
        file: usize,
        el: &Element,
        scope: &Scope,
        out: &mut Block,
        depth: usize,
    ) -> Result<(), FileError> {
        let Some(name) = el.attribute("collection") else {
            return Err(self.error(
                file,
                el,
                "include",
                "an <include> in a block needs `collection`",
            ));
        };
        let name = scope.expand(name);
        let Some((coll_file, collection)) = self.collections.get(&name).cloned() else {
            let known: Vec<&str> = self.collections.keys().map(String::as_str).collect();
            return Err(self.error(
                file,
                el,
                "collection",
                format!(
                    "no <collection name=\"{name}\"> (known: {})",
                    known.join(", ")
                ),
            ));
        };
        let mut params = Vec::new();
        for p in &el.children {
            match (p.name.as_str(), p.attribute("name"), p.attribute("value")) {
                ("param", Some(n), Some(v)) => params.push((n.to_string(), scope.expand(v))),
                ("param", _, _) => {
                    return Err(self.error(file, p, "param", "<param> needs `name` and `value`"))
                }
                _ => self.keep_element(file, p),
            }
        }
        let inner = scope.with(params);
        self.nodes(coll_file, &collection, &inner, out, depth + 1)
    }
}

/// `(a,b),(c,d)` as rows; `None` when the text is not a list of tuples.
fn tuples(text: &str) -> Option<Vec<Vec<String>>> {
    let mut rows = Vec::new();
    let mut rest = text.trim();
    while !rest.is_empty() {
        let inner = rest.strip_prefix('(')?;
        let end = inner.find(')')?;
        rows.push(
            inner[..end]
                .split(',')
                .map(|v| v.trim().to_string())
                .collect(),
        );
        rest = inner[end + 1..].trim_start();
        rest = rest.strip_prefix(',').unwrap_or(rest).trim_start();
    }
    Some(rows)
}

#[cfg(test)]
mod tests;
