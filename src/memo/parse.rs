//! The streaming MeMo parser: quick-xml events checked against the content models of
//! [`schema`](super::schema) as they arrive, with no document tree of the input.
//!
//! Every element is matched against its parent's sequence the moment its start tag is read
//! (order, cardinality, namespace), text is checked against its simple type when the element
//! ends, and `memo:content` is base64-decoded chunk by chunk straight into the document's bytes.
//! The input itself is borrowed, never copied; what is kept is the validated metadata and the
//! decoded documents, assembled bottom-up into a [`MemoMessage`].
//!
//! Hostile input: a DOCTYPE is refused outright (so no DTD, no entity declarations, no
//! expansion), only the five predefined entities and character references are understood,
//! input size and nesting depth are bounded, and invalid UTF-8 or XML characters are refused.

use quick_xml::NsReader;
use quick_xml::events::{BytesStart, Event};
use quick_xml::name::ResolveResult;

use super::assemble::assemble;
use super::content::Base64Stream;
use super::error::{MemoError, MemoErrorKind, line_column, quote};
use super::model::MemoMessage;
use super::node::{Node, NodeValue, RootAttrs};
use super::schema::{Child, MESSAGE, Ns, Simple, Ty, describe, name_of};
use super::sequence::Cursor;
use super::values::{self, is_xml_char, is_xml_space};

mod root;

use root::version_hint;

/// Bounds on what a parse may cost. Defaults fit Digital Post's 99.5 MB per message.
#[derive(Clone, Debug)]
pub struct ParseLimits {
    /// Largest input accepted, in bytes. The default, 140,000,000, holds 99.5 MB of documents
    /// base64-encoded (132.7 MB) with room for the metadata.
    pub max_input_bytes: usize,
    /// Deepest element nesting accepted. MeMo itself needs 7 levels.
    pub max_depth: usize,
}

impl Default for ParseLimits {
    fn default() -> Self {
        ParseLimits {
            max_input_bytes: 140_000_000,
            max_depth: 16,
        }
    }
}

/// Parses and validates a MeMo message with the default limits.
pub fn parse(xml: &[u8]) -> Result<MemoMessage, MemoError> {
    parse_with_limits(xml, &ParseLimits::default())
}

/// Parses and validates a MeMo message.
pub fn parse_with_limits(xml: &[u8], limits: &ParseLimits) -> Result<MemoMessage, MemoError> {
    if xml.len() > limits.max_input_bytes {
        return Err(MemoError::new(
            MemoErrorKind::TooLarge,
            "",
            format!(
                "the message is {} bytes, {} over the limit of {} bytes",
                xml.len(),
                xml.len() - limits.max_input_bytes,
                limits.max_input_bytes
            ),
        ));
    }
    let xml = xml.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(xml);
    if xml.starts_with(b"\xFE\xFF") || xml.starts_with(b"\xFF\xFE") {
        return Err(invalid("", "the message is UTF-16: send MeMo as UTF-8").at((1, 1)));
    }
    let src = match std::str::from_utf8(xml) {
        Ok(s) => s,
        Err(e) => {
            let ok = e.valid_up_to();
            // The prefix is valid UTF-8 by definition; find the element the bad byte is in.
            let prefix = std::str::from_utf8(&xml[..ok]).unwrap_or_default();
            return Err(invalid(
                &path_at(prefix),
                format!("invalid UTF-8: byte 0x{:02X} at offset {ok}", xml[ok]),
            )
            .at(line_column(prefix, ok)));
        }
    };
    Parser::new(src, limits).run()
}

struct Frame {
    decl: &'static Child,
    start: usize,
    /// 1-based occurrence, shown in paths when the element may repeat.
    index: Option<u32>,
    /// Where this element is in its own sequence of children.
    seq: Cursor,
    value: FrameValue,
}

enum FrameValue {
    Children(Vec<Node>),
    Text(String),
    Base64(Box<Base64Stream>),
}

struct Parser<'i> {
    src: &'i str,
    reader: NsReader<&'i [u8]>,
    limits: &'i ParseLimits,
    stack: Vec<Frame>,
    root: Option<Node>,
    attrs: Option<RootAttrs>,
}

fn invalid(path: &str, problem: impl Into<String>) -> MemoError {
    MemoError::new(MemoErrorKind::Invalid, path, problem)
}

impl<'i> Parser<'i> {
    fn new(src: &'i str, limits: &'i ParseLimits) -> Self {
        let mut reader = NsReader::from_reader(src.as_bytes());
        let config = reader.config_mut();
        config.check_end_names = true;
        config.expand_empty_elements = false;
        config.check_comments = true;
        Parser {
            src,
            reader,
            limits,
            stack: Vec::new(),
            root: None,
            attrs: None,
        }
    }

    fn path(&self) -> String {
        let mut p = String::new();
        for f in &self.stack {
            p.push('/');
            p.push_str(&name_of(f.decl));
            if let Some(i) = f.index {
                p.push_str(&format!("[{i}]"));
            }
        }
        if p.is_empty() { "/".to_string() } else { p }
    }

    fn err(&self, at: usize, problem: impl Into<String>) -> MemoError {
        invalid(&self.path(), problem).at(line_column(self.src, at))
    }

    fn run(mut self) -> Result<MemoMessage, MemoError> {
        let mut first = true;
        loop {
            let at = self.reader.buffer_position() as usize;
            let (ns, event) = match self.reader.read_resolved_event() {
                Ok((ns, event)) => (resolve(ns), event),
                Err(e) => {
                    let at = self.reader.error_position() as usize;
                    return Err(self.err(at, format!("not well-formed XML: {e}")));
                }
            };
            match event {
                Event::Decl(d) => {
                    if !first {
                        return Err(self.err(at, "the XML declaration must come first"));
                    }
                    self.check_decl(&d, at)?;
                }
                Event::DocType(_) => {
                    return Err(self.err(
                        at,
                        "DOCTYPE is refused: MeMo needs no DTD, and DTD entity declarations can expand without bound",
                    ));
                }
                Event::Start(e) => self.start(ns, &e, at)?,
                Event::Empty(e) => {
                    self.start(ns, &e, at)?;
                    self.end(at)?;
                }
                Event::End(_) => self.end(at)?,
                Event::Text(t) => {
                    // Line ends are normalised for values; base64 ignores them anyway.
                    if matches!(self.top_value(), Some(FrameValue::Base64(_))) {
                        self.base64(&t, at)?;
                    } else {
                        let s = t.xml10_content();
                        self.text(&s, at)?;
                    }
                }
                Event::CData(c) => {
                    if matches!(self.top_value(), Some(FrameValue::Base64(_))) {
                        self.base64(&c, at + "<![CDATA[".len())?;
                    } else {
                        let s = c.xml10_content();
                        self.text(&s, at)?;
                    }
                }
                Event::GeneralRef(r) => {
                    let c = if r.is_char_ref() {
                        match r.resolve_char_ref() {
                            Ok(Some(c)) => c,
                            _ => {
                                return Err(self.err(
                                    at,
                                    format!("&{};  is not a valid character reference", &*r),
                                ));
                            }
                        }
                    } else {
                        match &*r {
                            "lt" => '<',
                            "gt" => '>',
                            "amp" => '&',
                            "apos" => '\'',
                            "quot" => '"',
                            other => {
                                return Err(self.err(
                                    at,
                                    format!(
                                        "entity &{other}; is not defined: without a DTD only &lt; &gt; &amp; &apos; &quot; and character references exist"
                                    ),
                                ));
                            }
                        }
                    };
                    let mut buf = [0u8; 4];
                    let s = c.encode_utf8(&mut buf);
                    if matches!(self.top_value(), Some(FrameValue::Base64(_))) {
                        self.base64(s, at)?;
                    } else {
                        self.text(s, at)?;
                    }
                }
                Event::Comment(_) | Event::PI(_) => {}
                Event::Eof => break,
            }
            first = false;
        }
        if let Some(open) = self.stack.last() {
            let at = self.src.len();
            return Err(self.err(
                at,
                format!(
                    "the input ends inside {}: its end tag is missing",
                    name_of(open.decl)
                ),
            ));
        }
        let (Some(root), Some(attrs)) = (self.root, self.attrs) else {
            return Err(
                invalid("/", "there is no memo:Message element").at(line_column(self.src, 0))
            );
        };
        assemble(root, attrs, self.src)
    }

    fn top_value(&self) -> Option<&FrameValue> {
        self.stack.last().map(|f| &f.value)
    }

    fn check_decl(&self, d: &quick_xml::events::BytesDecl, at: usize) -> Result<(), MemoError> {
        match d.version() {
            Ok(v) if v == "1.0" => {}
            Ok(v) => {
                return Err(self.err(
                    at,
                    format!("XML version {} is not accepted: use 1.0", quote(&v, 10)),
                ));
            }
            Err(e) => return Err(self.err(at, format!("not well-formed XML declaration: {e}"))),
        }
        if let Some(enc) = d.encoding() {
            match enc {
                Ok(enc) if enc.eq_ignore_ascii_case("UTF-8") => {}
                Ok(enc) => {
                    return Err(self.err(
                        at,
                        format!(
                            "encoding {} is not accepted: send MeMo as UTF-8",
                            quote(&enc, 20)
                        ),
                    ));
                }
                Err(e) => return Err(self.err(at, format!("not well-formed XML declaration: {e}"))),
            }
        }
        Ok(())
    }

    fn start(&mut self, ns: Resolved, e: &BytesStart, at: usize) -> Result<(), MemoError> {
        let local = e.local_name().into_inner();
        let qname = e.name().into_inner();
        if self.stack.is_empty() && self.root.is_some() {
            return Err(self.err(
                at,
                format!("<{qname}> after the end of memo:Message: a document has one root element"),
            ));
        }
        let ns = match ns {
            Resolved::Unknown(prefix) => {
                return Err(self.err(
                    at,
                    format!("namespace prefix {prefix:?} of <{qname}> is not declared"),
                ));
            }
            Resolved::None => None,
            Resolved::Uri(uri) => Some(uri),
        };
        let known = ns.as_deref().and_then(Ns::from_uri);
        let depth = self.stack.len();
        let found: Result<(&'static Child, Option<u32>), String> = match self.stack.last_mut() {
            None if known != Some(Ns::Memo) || local != "Message" => {
                let found = match &ns {
                    Some(uri) => format!("{local} in namespace {uri}"),
                    None => format!("{local} in no namespace"),
                };
                Err(format!(
                    "the root element must be Message in namespace {}; found {found}",
                    Ns::Memo.uri()
                ))
            }
            None => Ok((&MESSAGE, None)),
            Some(_) if depth >= self.limits.max_depth => Err(format!(
                "elements nest deeper than {} levels",
                self.limits.max_depth
            )),
            Some(parent) => match (parent.decl.ty, self.attrs.as_ref()) {
                (Ty::Simple(_), _) => Err(format!(
                    "<{qname}> is not allowed inside {}, which holds text only",
                    name_of(parent.decl)
                )),
                // The root's attributes are checked before any child is read.
                (Ty::Complex(_), None) => Err("internal error: memoVersion not read".to_string()),
                (Ty::Complex(complex), Some(attrs)) => parent
                    .seq
                    .step(complex.particles(attrs.version), known, local)
                    .map_err(|misfit| {
                        version_hint(complex, attrs.version, known, local, &misfit).unwrap_or_else(
                            || misfit.render(qname, ns.as_deref(), parent.decl.name),
                        )
                    }),
            },
        };
        let (decl, index) = found.map_err(|problem| self.err(at, problem))?;
        let value = match decl.ty {
            Ty::Complex(_) => FrameValue::Children(Vec::new()),
            Ty::Simple(Simple::Base64) => FrameValue::Base64(Box::default()),
            Ty::Simple(_) => FrameValue::Text(String::new()),
        };
        self.stack.push(Frame {
            decl,
            start: at,
            index,
            seq: Cursor::default(),
            value,
        });
        // With the element on the stack, attribute errors name it in their path.
        self.check_attributes(e, decl, at)
    }

    fn text(&mut self, s: &str, at: usize) -> Result<(), MemoError> {
        let checked: Result<(), String> = match self.stack.last_mut() {
            None if s.bytes().all(is_xml_space) => Ok(()),
            None => Err("text outside the root element".to_string()),
            Some(top) => match &mut top.value {
                FrameValue::Children(_) if s.bytes().all(is_xml_space) => Ok(()),
                FrameValue::Children(_) => Err(format!(
                    "text {} is not allowed in {}, which holds elements only",
                    quote(s.trim(), 30),
                    name_of(top.decl)
                )),
                FrameValue::Text(buf) => {
                    if let Some(c) = s.chars().find(|c| !is_xml_char(*c)) {
                        Err(format!(
                            "character U+{:04X} is not allowed in XML",
                            c as u32
                        ))
                    } else {
                        buf.push_str(s);
                        match top.decl.ty {
                            // Stop reading a value that can no longer be valid.
                            Ty::Simple(ty)
                                if values::max_bytes(ty).is_some_and(|m| buf.len() > m) =>
                            {
                                Err(values::check(ty, std::mem::take(buf))
                                    .err()
                                    .unwrap_or_else(|| "the text is too long".to_string()))
                            }
                            _ => Ok(()),
                        }
                    }
                }
                // Routed to `base64` by the caller.
                FrameValue::Base64(_) => Ok(()),
            },
        };
        checked.map_err(|problem| self.err(at, problem))
    }

    fn base64(&mut self, s: &str, at: usize) -> Result<(), MemoError> {
        if let Some(Frame {
            value: FrameValue::Base64(stream),
            ..
        }) = self.stack.last_mut()
            && let Err(e) = stream.feed(s, at)
        {
            return Err(self.err(e.at, format!("invalid base64: {}", e.problem)));
        }
        Ok(())
    }

    fn end(&mut self, at: usize) -> Result<(), MemoError> {
        let Some(frame) = self.stack.last() else {
            return Err(self.err(at, "end tag without a start tag"));
        };
        if let (FrameValue::Children(_), Ty::Complex(complex), Some(attrs)) =
            (&frame.value, frame.decl.ty, self.attrs.as_ref())
            && let Some(missing) = frame.seq.missing(complex.particles(attrs.version))
        {
            return Err(self.err(
                at,
                format!(
                    "{} is incomplete: required element {} is missing",
                    name_of(frame.decl),
                    describe(&missing)
                ),
            ));
        }
        let Some(frame) = self.stack.pop() else {
            return Ok(());
        };
        // Value errors are reported at the element's start, with the element on the path.
        let here = |problem: String, offset: usize| {
            let path = format!(
                "{}/{}{}",
                self.path().trim_end_matches('/'),
                name_of(frame.decl),
                index_suffix(frame.index)
            );
            invalid(&path, problem).at(line_column(self.src, offset))
        };
        let value = match frame.value {
            FrameValue::Children(children) => NodeValue::Children(children),
            FrameValue::Text(raw) => match frame.decl.ty {
                Ty::Simple(ty) => match values::check(ty, raw) {
                    Ok(v) => NodeValue::Text(v),
                    Err(problem) => return Err(here(problem, frame.start)),
                },
                Ty::Complex(_) => {
                    return Err(here(
                        "internal error: text in a complex element".into(),
                        frame.start,
                    ));
                }
            },
            FrameValue::Base64(stream) => match stream.finish() {
                Ok(bytes) => NodeValue::Bytes(bytes),
                Err(e) => return Err(here(format!("invalid base64: {}", e.problem), e.at)),
            },
        };
        let node = Node {
            decl: frame.decl,
            start: frame.start,
            end: at,
            value,
        };
        match self.stack.last_mut() {
            Some(Frame {
                value: FrameValue::Children(children),
                ..
            }) => children.push(node),
            Some(_) => {}
            None => self.root = Some(node),
        }
        Ok(())
    }
}

fn index_suffix(index: Option<u32>) -> String {
    index.map(|i| format!("[{i}]")).unwrap_or_default()
}

/// An element's namespace as the reader resolved it.
enum Resolved {
    None,
    Uri(String),
    Unknown(String),
}

fn resolve(r: ResolveResult<'_>) -> Resolved {
    match r {
        ResolveResult::Unbound => Resolved::None,
        ResolveResult::Bound(ns) => Resolved::Uri(ns.into_inner().to_string()),
        ResolveResult::Unknown(p) => Resolved::Unknown(p),
    }
}

/// The element path at the end of `prefix`, as written there: for errors found before parsing.
fn path_at(prefix: &str) -> String {
    let mut reader = NsReader::from_reader(prefix.as_bytes());
    let mut stack: Vec<String> = Vec::new();
    loop {
        match reader.read_event() {
            Ok(Event::Start(e)) => stack.push(e.name().into_inner().to_string()),
            Ok(Event::End(_)) => {
                stack.pop();
            }
            Ok(Event::Eof) | Err(_) => break,
            Ok(_) => {}
        }
    }
    if stack.is_empty() {
        "/".to_string()
    } else {
        stack.iter().map(|s| format!("/{s}")).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn path_at_follows_open_elements() {
        assert_eq!(path_at("<a><b></b><c>xx"), "/a/c");
        assert_eq!(path_at(""), "/");
    }
}
