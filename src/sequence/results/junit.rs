//! JUnit XML as test runners write it: `<testsuites>` or a bare `<testsuite>`, holding
//! `<testcase classname name time>` with `<failure>`, `<error>` or `<skipped>` inside.

use std::path::Path;

use super::{SubResult, SubStatus};
use crate::file_error::FileError;
use crate::sequence::xml::{Element, Located};

pub fn parse(file: &Path, text: &str) -> Result<Vec<SubResult>, FileError> {
    let located = Located::new(file, text);
    let root = located.parse()?;
    if root.name != "testsuites" && root.name != "testsuite" {
        return Err(located.error(
            root.span.start,
            &root.name,
            format!(
                "the root element is <{}>, not <testsuites> or <testsuite>",
                root.name
            ),
        ));
    }
    let mut out = Vec::new();
    suite(&root, &mut out);
    Ok(out)
}

fn suite(el: &Element, out: &mut Vec<SubResult>) {
    for child in &el.children {
        match child.name.as_str() {
            "testsuite" => suite(child, out),
            "testcase" => out.push(testcase(child)),
            _ => {}
        }
    }
}

fn testcase(el: &Element) -> SubResult {
    let name = el.attribute("name").unwrap_or("(unnamed)");
    let name = match el.attribute("classname").filter(|c| !c.is_empty()) {
        Some(class) => format!("{class}.{name}"),
        None => name.to_string(),
    };
    let mut status = SubStatus::Pass;
    let mut message = None;
    for child in &el.children {
        let this = match child.name.as_str() {
            "failure" => SubStatus::Fail,
            "error" => SubStatus::Error,
            "skipped" => SubStatus::Skip,
            _ => continue,
        };
        // A failure outranks a skip; the first message of the worst kind is kept.
        if rank(this) > rank(status) {
            status = this;
            message = child
                .attribute("message")
                .map(str::to_string)
                .or_else(|| Some(child.text.clone()).filter(|t| !t.is_empty()));
        }
    }
    SubResult {
        name,
        status,
        duration: el.attribute("time").and_then(|t| t.trim().parse().ok()),
        message,
    }
}

fn rank(s: SubStatus) -> u8 {
    match s {
        SubStatus::Pass => 0,
        SubStatus::Skip => 1,
        SubStatus::Fail => 2,
        SubStatus::Error => 3,
    }
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;

    pub const SAMPLE: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<testsuites name="all" tests="4" failures="1" errors="1">
  <testsuite name="core" tests="3">
    <testcase classname="core.math" name="adds" time="0.012"/>
    <testcase classname="core.math" name="divides" time="0.5">
      <failure message="expected 2, got 3" type="AssertionError">Traceback ...</failure>
    </testcase>
    <testcase classname="core.io" name="reads"><skipped message="no disk"/></testcase>
  </testsuite>
  <testsuite name="net"><testcase name="connects"><error>refused</error></testcase></testsuite>
</testsuites>"#;

    #[test]
    fn reads_every_testcase_with_its_outcome() {
        let r = parse(Path::new("out.xml"), SAMPLE).unwrap();
        let got: Vec<(&str, SubStatus)> = r.iter().map(|s| (s.name.as_str(), s.status)).collect();
        assert_eq!(
            got,
            [
                ("core.math.adds", SubStatus::Pass),
                ("core.math.divides", SubStatus::Fail),
                ("core.io.reads", SubStatus::Skip),
                ("connects", SubStatus::Error),
            ]
        );
        assert_eq!(r[1].message.as_deref(), Some("expected 2, got 3"));
        assert_eq!(r[0].duration, Some(0.012));
        assert_eq!(r[3].message.as_deref(), Some("refused"));
    }

    #[test]
    fn a_bare_testsuite_is_fine_and_other_roots_are_not() {
        let r = parse(
            Path::new("o.xml"),
            "<testsuite><testcase name=\"a\"/></testsuite>",
        )
        .unwrap();
        assert_eq!(r.len(), 1);
        let e = parse(Path::new("o.xml"), "<html/>").unwrap_err();
        assert!(e.to_string().starts_with("o.xml:1:1"), "{e}");
    }
}
