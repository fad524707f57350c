//! A small element tree read with quick-xml, keeping where each element starts so that errors
//! and `sequence check` can say `file:line:col`.

use std::ops::Range;
use std::path::Path;

use quick_xml::events::{BytesStart, Event};
use quick_xml::Reader;

use crate::file_error::FileError;

/// One XML element with its attributes, children and text.
#[derive(Clone, Debug)]
pub struct Element {
    pub name: String,
    pub attributes: Vec<(String, String)>,
    pub children: Vec<Element>,
    /// The element's own text, entity references resolved, trimmed.
    pub text: String,
    /// Bytes of the whole element in the file, from `<` to the end of its closing tag.
    pub span: Range<usize>,
}

impl Element {
    pub fn attribute(&self, name: &str) -> Option<&str> {
        self.attributes
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// Elements nested deeper than this are refused: no sequence needs it, and it bounds the
/// recursion of everything that walks the tree.
const MAX_DEPTH: usize = 64;

/// A file's text with its line starts, to turn byte offsets into `line:col`.
pub struct Located<'a> {
    pub path: &'a Path,
    pub text: &'a str,
    line_starts: Vec<usize>,
}

impl<'a> Located<'a> {
    pub fn new(path: &'a Path, text: &'a str) -> Self {
        let mut line_starts = vec![0];
        line_starts.extend(text.match_indices('\n').map(|(i, _)| i + 1));
        Located {
            path,
            text,
            line_starts,
        }
    }

    /// 1-based line and column (in characters) of a byte offset.
    pub fn position(&self, offset: usize) -> (usize, usize) {
        let offset = offset.min(self.text.len());
        let line = self.line_starts.partition_point(|&s| s <= offset);
        let start = self.line_starts[line - 1];
        let column = self
            .text
            .get(start..offset)
            .map_or(1, |s| s.chars().count() + 1);
        (line, column)
    }

    pub fn error(&self, offset: usize, field: &str, message: impl Into<String>) -> FileError {
        let (line, column) = self.position(offset);
        FileError {
            file: self.path.to_path_buf(),
            line,
            column,
            field: field.to_string(),
            message: message.into(),
        }
    }

    /// Parses the whole document into its root element.
    pub fn parse(&self) -> Result<Element, FileError> {
        let mut reader = Reader::from_str(self.text);
        let config = reader.config_mut();
        // Not trimmed here: text around an entity reference (`a &lt; b`) comes in pieces
        // whose spaces matter. Each element's text is trimmed when it closes.
        config.trim_text(false);
        config.check_end_names = true;
        let mut stack: Vec<Element> = Vec::new();
        let mut root: Option<Element> = None;
        loop {
            let before = reader.buffer_position() as usize;
            let event = reader
                .read_event()
                .map_err(|e| self.error(reader.error_position() as usize, "", e.to_string()))?;
            let after = reader.buffer_position() as usize;
            // Whitespace before a tag belongs to the event when text is trimmed.
            let start = before
                + self.text[before..after]
                    .find(|c: char| !c.is_whitespace())
                    .unwrap_or(0);
            match event {
                Event::Start(e) | Event::Empty(e) if root.is_some() && stack.is_empty() => {
                    let _ = e;
                    return Err(self.error(start, "", "text after the root element ends"));
                }
                Event::Start(e) => {
                    if stack.len() >= MAX_DEPTH {
                        return Err(self.error(start, "", "elements nest too deeply"));
                    }
                    stack.push(self.element(&e, start)?);
                }
                Event::Empty(e) => {
                    let mut el = self.element(&e, start)?;
                    el.span = start..after;
                    self.attach(el, &mut stack, &mut root);
                }
                Event::End(_) => {
                    let Some(mut el) = stack.pop() else {
                        return Err(self.error(start, "", "a closing tag without an opening one"));
                    };
                    el.span.end = after;
                    el.text = el.text.trim().to_string();
                    self.attach(el, &mut stack, &mut root);
                }
                Event::Text(t) => {
                    let text = t
                        .xml10_content()
                        .map_err(|e| self.error(start, "", e.to_string()))?;
                    self.add_text(&mut stack, start, &text)?;
                }
                Event::CData(t) => {
                    let text = t
                        .decode()
                        .map_err(|e| self.error(start, "", e.to_string()))?;
                    self.add_text(&mut stack, start, &text)?;
                }
                Event::GeneralRef(r) => {
                    let resolved = match r.resolve_char_ref() {
                        Ok(Some(c)) => c.to_string(),
                        Ok(None) => {
                            let name = r
                                .decode()
                                .map_err(|e| self.error(start, "", e.to_string()))?;
                            match quick_xml::escape::resolve_predefined_entity(&name) {
                                Some(s) => s.to_string(),
                                None => {
                                    return Err(self.error(
                                        start,
                                        "",
                                        format!("unknown entity `&{name};`"),
                                    ))
                                }
                            }
                        }
                        Err(e) => return Err(self.error(start, "", e.to_string())),
                    };
                    self.add_text(&mut stack, start, &resolved)?;
                }
                Event::Eof => break,
                Event::Comment(_) | Event::Decl(_) | Event::PI(_) | Event::DocType(_) => {}
            }
        }
        if let Some(open) = stack.last() {
            return Err(self.error(
                open.span.start,
                "",
                format!("<{}> is never closed", open.name),
            ));
        }
        root.ok_or_else(|| self.error(0, "", "the file has no XML element"))
    }

    fn element(&self, e: &BytesStart<'_>, start: usize) -> Result<Element, FileError> {
        let name = String::from_utf8_lossy(e.name().as_ref()).into_owned();
        let mut attributes = Vec::new();
        for attr in e.attributes() {
            let attr = attr.map_err(|err| self.error(start, &name, err.to_string()))?;
            let key = String::from_utf8_lossy(attr.key.as_ref()).into_owned();
            let value = attr
                .normalized_value(quick_xml::XmlVersion::Implicit1_0)
                .map_err(|err| self.error(start, &key, err.to_string()))?
                .into_owned();
            if attributes.iter().any(|(k, _)| k == &key) {
                return Err(self.error(start, &key, format!("attribute `{key}` given twice")));
            }
            attributes.push((key, value));
        }
        Ok(Element {
            name,
            attributes,
            children: Vec::new(),
            text: String::new(),
            span: start..start,
        })
    }

    fn add_text(&self, stack: &mut [Element], start: usize, text: &str) -> Result<(), FileError> {
        match stack.last_mut() {
            Some(el) => {
                el.text.push_str(text);
                Ok(())
            }
            None if text.trim().is_empty() => Ok(()),
            None => Err(self.error(start, "", "text outside the root element")),
        }
    }

    fn attach(&self, el: Element, stack: &mut [Element], root: &mut Option<Element>) {
        match stack.last_mut() {
            Some(parent) => parent.children.push(el),
            None => *root = Some(el),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Element, FileError> {
        Located::new(Path::new("t.seq"), text).parse()
    }

    #[test]
    fn elements_attributes_text_and_positions() {
        let doc = "<?xml version=\"1.0\"?>\n<a x=\"1 &amp; 2\">\n  <b>hi &lt;there&gt;</b>\n  <c/>\n</a>\n";
        let a = parse(doc).unwrap();
        assert_eq!(a.attribute("x"), Some("1 & 2"));
        assert_eq!(a.children[0].text, "hi <there>");
        let loc = Located::new(Path::new("t.seq"), doc);
        assert_eq!(loc.position(a.children[1].span.start), (4, 3));
        assert_eq!(&doc[a.children[1].span.clone()], "<c/>");
    }

    #[test]
    fn malformed_documents_say_where() {
        for (doc, line) in [
            ("<a>\n<b>\n</a>", 3),
            ("<a>\n  <b x=1/>\n</a>", 2),
            ("<a>\n", 1),
            ("<a/><b/>", 1),
            ("<a>&nope;</a>", 1),
            ("", 1),
        ] {
            let e = parse(doc).unwrap_err();
            assert_eq!(e.line, line, "{doc:?}: {e}");
            assert!(e.column >= 1, "{e}");
        }
    }

    #[test]
    fn deep_nesting_is_refused_not_overflowed() {
        let doc = "<a>".repeat(10_000);
        assert!(parse(&doc).unwrap_err().message.contains("deeply"));
    }
}
