//! The XenRT loader's tests: what each element means, and the limits on what a file may make.

use super::*;

fn p(text: &str) -> Result<Sequence, FileError> {
    parse(Path::new("t.seq"), text, &BTreeMap::new(), &[])
}

fn names(s: &Sequence) -> Vec<String> {
    s.testcases().iter().map(|t| t.name.clone()).collect()
}

#[test]
fn defaults_for_loops_and_conditions_expand() {
    let s = p(r#"<xenrt>
  <default name="DISTRO" value="etch"/>
  <default name="PAIRS" value="(0,1),(1,0)"/>
  <testsequence>
<for iter="P,S" values="${PAIRS}">
  <ifin item="${DISTRO}" list="etch,sarge">
    <testcase id="a.b.TCMigrate" name="m${P}${S}"><arg>to=${S}</arg><arg>${UNKNOWN}</arg></testcase>
  </ifin>
  <ifnotin item="${DISTRO}" list="etch"><testcase id="never"/></ifnotin>
</for>
<ifeq x="${DISTRO}" y="etch"><testcase id="x.TCYes"/></ifeq>
<ifnoteq x="${DISTRO}" y="etch"><testcase id="x.TCNo"/></ifnoteq>
  </testsequence>
</xenrt>"#)
    .unwrap();
    assert_eq!(names(&s), ["m01", "m10", "TCYes"]);
    let first = s.testcases()[0];
    assert_eq!(first.args, ["to=1", "${UNKNOWN}"]);
    assert!(!first.blocker);
}

#[test]
fn collections_params_finally_and_blocks() {
    let s = p(r#"<xenrt>
  <collection name="ops">
<testcase id="g.TCStart"><arg>guest=${GUEST}</arg></testcase>
  </collection>
  <testsequence>
<parallel workers="2" group="G">
  <serial blocker="yes">
    <testcase id="g.TCInstall" blocker="yes"/>
    <include collection="ops"><param name="GUEST" value="vm1"/></include>
    <finally><testcase id="g.TCShutdown"/></finally>
  </serial>
  <testcase id="g.TCOther" prio="3" sku="x"/>
</parallel>
  </testsequence>
  <semaphores><X count="2"/></semaphores>
</xenrt>"#)
    .unwrap();
    let Node::Block(par) = &s.body.nodes[0] else {
        panic!()
    };
    assert_eq!(par.kind, BlockKind::Parallel { workers: Some(2) });
    let Node::Block(ser) = &par.nodes[0] else {
        panic!()
    };
    assert!(ser.blocker);
    assert_eq!(ser.nodes.len(), 2);
    assert_eq!(ser.finally.len(), 1);
    assert_eq!(
        names(&s),
        ["G/TCInstall", "G/TCStart", "G/TCShutdown", "G/TCOther"]
    );
    assert_eq!(s.testcases()[1].args, ["guest=vm1"]);
    assert_eq!(s.testcases()[3].prio, Some(3));
    let kept: Vec<&str> = s.kept.iter().map(|k| k.what.as_str()).collect();
    assert_eq!(
        kept,
        ["element <semaphores>", "attribute `sku` of <testcase>"]
    );
    assert_eq!(s.kept[0].line, 15);
}

#[test]
fn prepare_needs() {
    let s = p(r#"<xenrt><prepare>
  <pool id="0" master="M1">
<storage type="nfs" name="nfs_SR"/>
<host id="0" installsr="ext" alias="M1"/>
<host id="1" alias="S1"><bridge name="br0"/></host>
<NETWORK><PHYSICAL/></NETWORK>
  </pool>
  <host id="2"><vm name="g"><distro>debian</distro><memory>512</memory><network device="0"/><postinstall action="installDrivers"/></vm></host>
</prepare><testsequence><testcase id="t"/></testsequence></xenrt>"#)
    .unwrap();
    assert_eq!(s.prepare.host_count(), 3);
    let pool = &s.prepare.pools[0];
    assert_eq!(pool.master.as_deref(), Some("M1"));
    assert_eq!(pool.storage[0].kind, "nfs");
    assert_eq!(pool.hosts[0].attributes["installsr"], "ext");
    assert_eq!(pool.hosts[1].bridges, ["br0"]);
    let vm = &s.prepare.hosts[0].vms[0];
    assert_eq!(
        (vm.distro.as_deref(), vm.postinstall.len()),
        (Some("debian"), 1)
    );
    assert_eq!(s.kept[0].what, "element <NETWORK>");
}

#[test]
fn repeated_names_are_numbered() {
    let s = p(
        "<xenrt><testsequence><testcase id=\"a.T\"/><testcase id=\"b.T\"/></testsequence></xenrt>",
    )
    .unwrap();
    assert_eq!(names(&s), ["T", "T#2"]);
}

#[test]
fn bad_files_say_where() {
    for (text, line, field) in [
        ("<seq/>", 1, "seq"),
        ("<xenrt>\n<testsequence>\n<testcase/>\n</testsequence></xenrt>", 3, "id"),
        ("<xenrt>\n<testsequence>\n<testcase id=\"a\" blocker=\"maybe\"/>\n</testsequence></xenrt>", 3, "blocker"),
        ("<xenrt>\n<testsequence>\n<parallel workers=\"-1\"><testcase id=\"a\"/></parallel>\n</testsequence></xenrt>", 3, "workers"),
        ("<xenrt>\n<testsequence>\n<include collection=\"nope\"/>\n</testsequence></xenrt>", 3, "collection"),
        ("<xenrt>\n<testsequence>\n<for iter=\"A,B\" values=\"1,2\"><testcase id=\"a\"/></for>\n</testsequence></xenrt>", 3, "values"),
        ("<xenrt>\n<default name=\"x\"/>\n</xenrt>", 2, "default"),
    ] {
        let e = p(text).unwrap_err();
        assert_eq!((e.line, e.field.as_str()), (line, field), "{text}: {e}");
    }
}

#[test]
fn includes_are_read_from_the_sequences_directory_and_allowed_roots_only() {
    let dir = tempfile::tempdir().unwrap();
    let seqs = dir.path().join("seqs");
    let shared = dir.path().join("shared");
    std::fs::create_dir_all(&seqs).unwrap();
    std::fs::create_dir_all(&shared).unwrap();
    let lib = "<xenrt><collection name=\"c\"><testcase id=\"lib.T\"/></collection></xenrt>";
    std::fs::write(seqs.join("local.seq"), lib).unwrap();
    std::fs::write(shared.join("lib.seq"), lib).unwrap();
    std::os::unix::fs::symlink("/dev/zero", seqs.join("zero.seq")).unwrap();
    std::os::unix::fs::symlink(shared.join("lib.seq"), seqs.join("link.seq")).unwrap();
    crate::file_error::make_fifo(&seqs.join("fifo.seq"));
    let load = |filename: &str, roots: &[PathBuf]| {
        let text = format!(
            "<xenrt>\n<include filename=\"{filename}\"/>\n<testsequence><include collection=\"c\"/></testsequence></xenrt>"
        );
        let main = seqs.join("main.seq");
        std::fs::write(&main, text).unwrap();
        load(&main, &BTreeMap::new(), roots)
    };
    // Beside the file: read.
    assert_eq!(names(&load("local.seq", &[]).unwrap()), ["T"]);
    // Outside it, by `..`, by an absolute path or through a link: refused, naming the way
    // to allow it; /dev/zero (which never ends) is never opened.
    let other = shared.join("lib.seq").display().to_string();
    for outside in ["../shared/lib.seq", other.as_str(), "link.seq", "/dev/zero"] {
        let e = load(outside, &[]).unwrap_err();
        assert_eq!((e.line, e.field.as_str()), (2, "filename"), "{e}");
        assert!(e.message.contains("outside the sequences directory"), "{e}");
        assert!(e.message.contains("include_roots"), "{e}");
    }
    // An allowed root opens the same files.
    for allowed in ["../shared/lib.seq", other.as_str(), "link.seq"] {
        let s = load(allowed, std::slice::from_ref(&shared)).unwrap();
        assert_eq!(names(&s), ["T"]);
    }
    // Inside, what is not a regular file is refused before a byte is read: a link to a
    // device when /dev is a root, a FIFO (which would block the reader).
    let e = load("zero.seq", &[PathBuf::from("/dev")]).unwrap_err();
    assert!(
        e.message
            .contains("zero.seq: cannot read: not a regular file"),
        "{e}"
    );
    let e = load("fifo.seq", &[]).unwrap_err();
    assert!(
        e.message
            .contains("fifo.seq: cannot read: not a regular file"),
        "{e}"
    );
    let e = load("missing.seq", &[]).unwrap_err();
    assert!(e.message.contains("missing.seq: cannot read"), "{e}");
}

#[test]
fn loops_and_includes_that_multiply_are_refused_while_they_grow() {
    // Three nested loops of 1,000 rows over an empty body: a billion rows, no testcase.
    let rows: Vec<String> = (0..1000).map(|i| i.to_string()).collect();
    let rows = rows.join(",");
    let text = format!(
        "<xenrt><testsequence>\n<for iter=\"A\" values=\"{rows}\">\n<for iter=\"B\" values=\"{rows}\">\n<for iter=\"C\" values=\"{rows}\"><note/></for></for></for></testsequence></xenrt>"
    );
    let e = p(&text).unwrap_err();
    assert!(e.message.contains("more than 16 MiB"), "{e}");
    assert!(e.line >= 2, "located at the loop that grew: {e}");
    // Collections that include the next one twice, 40 deep: 2^40 visits of nothing.
    let mut text = String::from("<xenrt>\n");
    for i in 0..40 {
        text.push_str(&format!(
            "<collection name=\"c{i}\"><include collection=\"c{n}\"/><include collection=\"c{n}\"/></collection>\n",
            n = i + 1
        ));
    }
    text.push_str("<collection name=\"c40\"><unknown/></collection>\n");
    text.push_str("<testsequence><include collection=\"c0\"/></testsequence></xenrt>");
    let e = p(&text).unwrap_err();
    assert!(e.message.contains("more than 16 MiB"), "{e}");
    // Kept elements count too: each row keeps its copy of the element.
    let big = "z".repeat(10_000);
    let rows: Vec<String> = (0..5000).map(|i| i.to_string()).collect();
    let text = format!(
        "<xenrt><testsequence><for iter=\"A\" values=\"{}\"><unknown x=\"{big}\"/></for></testsequence></xenrt>",
        rows.join(",")
    );
    let e = p(&text).unwrap_err();
    assert!(e.message.contains("more than 16 MiB"), "{e}");
}

#[test]
fn values_that_double_at_each_level_are_refused_while_they_grow() {
    // A0 is 64 bytes; A30 would be 64 GiB. The substitutions stop at the limit, so this
    // fails fast and small instead of allocating until the process aborts.
    let mut text = String::from("<xenrt>\n<default name=\"A0\" value=\"");
    text.push_str(&"x".repeat(64));
    text.push_str("\"/>\n");
    for i in 1..=30 {
        text.push_str(&format!(
            "<default name=\"A{i}\" value=\"${{A{p}}}${{A{p}}}\"/>\n",
            p = i - 1
        ));
    }
    text.push_str("<testsequence><testcase id=\"a.T\" name=\"${A30}\"/></testsequence></xenrt>");
    let e = p(&text).unwrap_err();
    assert_eq!((e.line, e.field.as_str()), (0, ""), "{e}");
    assert!(e.message.contains("more than 16 MiB"), "{e}");
    // The same in testcases made by a <for>: the limit counts every substitution.
    let mut text = String::from("<xenrt>\n<default name=\"BIG\" value=\"");
    text.push_str(&"y".repeat(1000));
    text.push_str("\"/>\n<testsequence><for iter=\"I\" values=\"");
    let values: Vec<String> = (0..20_000).map(|i| i.to_string()).collect();
    text.push_str(&values.join(","));
    text.push_str("\"><testcase id=\"a.T\" name=\"t${I}\"><arg>${BIG}</arg></testcase></for></testsequence></xenrt>");
    let e = p(&text).unwrap_err();
    assert!(e.message.contains("more than 16 MiB"), "{e}");
    // A sequence well under it still loads.
    let s = p("<xenrt><default name=\"N\" value=\"1\"/><testsequence><testcase id=\"a.T\" name=\"t${N}\"/></testsequence></xenrt>").unwrap();
    assert_eq!(names(&s), ["t1"]);
}

#[test]
fn a_collection_that_includes_itself_is_refused() {
    let e = p("<xenrt><collection name=\"c\"><include collection=\"c\"/></collection><testsequence><include collection=\"c\"/></testsequence></xenrt>").unwrap_err();
    assert!(e.message.contains("too deeply"), "{e}");
}

#[test]
fn params_override_defaults() {
    let mut params = BTreeMap::new();
    params.insert("N".to_string(), "2".to_string());
    let s = parse(
        Path::new("t.seq"),
        "<xenrt><default name=\"N\" value=\"1\"/><testsequence><testcase id=\"t\" name=\"t${N}\"/></testsequence></xenrt>",
        &params,
        &[],
    )
    .unwrap();
    assert_eq!(names(&s), ["t2"]);
}
