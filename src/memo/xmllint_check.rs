//! The parser and an independent XSD validator must judge documents alike. For each MeMo
//! version this test takes the full message (every optional element), derives hundreds of
//! mutated documents from it (each element deleted, duplicated, swapped with its next sibling,
//! its text emptied or made too long, elements of the other version inserted) and has both
//! `xmllint --schema` (libxml2, with that version's XSD set in `schemas/`) and
//! [`parse`](super::parse) judge every one.
//!
//! A document the parser accepts must be valid for xmllint: the parser is never looser than the
//! schema. The parser may refuse a document xmllint accepts only for one of the rules it adds
//! beyond XSD 1.0, listed in the header of `schemas/MeMo_core.xsd`; each such refusal must
//! name its rule (see [`PARSER_RULES`]).

use std::path::{Path, PathBuf};
use std::process::Command;

use quick_xml::Reader;
use quick_xml::events::Event;

use super::schema::MemoVersion;

const FULL_1_1: &str = include_str!("../../tests/data/memo/full.xml");
const FULL_1_2: &str = include_str!("../../tests/data/memo/full-1.2.xml");

/// Words of the parser's own rules (beyond the XSD), as its messages say them. A refusal of a
/// schema-valid document must contain one of these.
const PARSER_RULES: &[&str] = &[
    // A DIGITALPOST message needs its MessageBody.
    "a DIGITALPOST message needs a MessageBody",
    // CPR and CVR identifiers must be real ones.
    "CPR",
    "CVR",
    // encodingFormat shaped like a MIME type.
    "MIME type",
    // Digital Post's 2025 production rules.
    "Digital Post refuses filenames",
    "Digital Post requires absolute https",
];

/// An element of the base document: byte range of the whole element and of its content.
struct Span {
    start: usize,
    end: usize,
    /// Start and end of the text between the tags, for text-only elements.
    text: Option<(usize, usize)>,
    parent: Option<usize>,
}

fn spans(doc: &str) -> Vec<Span> {
    let mut reader = Reader::from_str(doc);
    let mut out: Vec<Span> = Vec::new();
    let mut open: Vec<(usize, bool)> = Vec::new();
    loop {
        let before = reader.buffer_position() as usize;
        match reader
            .read_event()
            .expect("the base document is well-formed")
        {
            Event::Start(_) => {
                // The parent has element children: it is not text-only.
                if let Some(o) = open.last_mut() {
                    o.1 = false;
                }
                out.push(Span {
                    start: before,
                    end: 0,
                    text: None,
                    parent: open.last().map(|(i, _)| *i),
                });
                // Content starts after the start tag.
                let at = reader.buffer_position() as usize;
                out.last_mut().expect("just pushed").text = Some((at, at));
                open.push((out.len() - 1, true));
            }
            Event::Empty(_) => {
                if let Some(o) = open.last_mut() {
                    o.1 = false;
                }
                out.push(Span {
                    start: before,
                    end: reader.buffer_position() as usize,
                    text: None,
                    parent: open.last().map(|(i, _)| *i),
                });
            }
            Event::End(_) => {
                let (i, text_only) = open.pop().expect("balanced");
                let end = reader.buffer_position() as usize;
                let s = &mut out[i];
                s.end = end;
                s.text = match (text_only, s.text) {
                    (true, Some((from, _))) => Some((from, before)),
                    _ => None,
                };
            }
            Event::Eof => break,
            _ => {}
        }
    }
    out
}

/// Mutations of `doc`, each with a short description for failure messages.
fn mutations(doc: &str, version: MemoVersion) -> Vec<(String, String)> {
    let spans = spans(doc);
    let mut out = Vec::new();
    let name = |s: &Span| {
        let tag = &doc[s.start..];
        tag[1..tag.find(['>', ' ', '/']).unwrap_or(tag.len())].to_string()
    };
    for (i, s) in spans.iter().enumerate().skip(1) {
        let n = name(s);
        out.push((
            format!("delete {n}#{i}"),
            format!("{}{}", &doc[..s.start], &doc[s.end..]),
        ));
        out.push((
            format!("duplicate {n}#{i}"),
            format!("{}{}{}", &doc[..s.end], &doc[s.start..s.end], &doc[s.end..]),
        ));
        if let Some(next) = spans[i + 1..]
            .iter()
            .find(|t| t.parent == s.parent && t.start >= s.end)
        {
            out.push((
                format!("swap {n}#{i} with {}", name(next)),
                format!(
                    "{}{}{}{}{}",
                    &doc[..s.start],
                    &doc[next.start..next.end],
                    &doc[s.end..next.start],
                    &doc[s.start..s.end],
                    &doc[next.end..]
                ),
            ));
        }
        // base64 content has its own tests.
        if let Some((from, to)) = s.text
            && !n.ends_with(":content")
        {
            for (what, text) in [
                ("empty", String::new()),
                ("too long", "x".repeat(300)),
                ("161 characters", "y".repeat(161)),
                ("filename-like", "brev: udkast.pdf".to_string()),
                ("http url", "http://example.dk/a".to_string()),
            ] {
                out.push((
                    format!("{what} text in {n}#{i}"),
                    format!("{}{text}{}", &doc[..from], &doc[to..]),
                ));
            }
        }
    }
    // The elements and attribute that exist in one version only.
    let other_only = [
        (
            "</memo:Sender>",
            "<memo:Representative><memo:label>R</memo:label></memo:Representative></memo:Sender>",
        ),
        (
            "<memo:contactPointID>",
            "<memo:originalRepresentative>R</memo:originalRepresentative><memo:contactPointID>",
        ),
    ];
    for (at, with) in other_only {
        if let Some(p) = doc.find(at) {
            out.push((
                format!("insert before {at}"),
                format!("{}{with}{}", &doc[..p], &doc[p + at.len()..]),
            ));
        }
    }
    let root = doc.find("memoVersion=").expect("root attribute");
    let attribute = match version {
        MemoVersion::V1_1 => doc.replacen(" memoSchVersion=\"1.1.0\"", "", 1),
        MemoVersion::V1_2 => format!("{}memoSchVersion=\"1.1.0\" {}", &doc[..root], &doc[root..]),
    };
    out.push(("toggle memoSchVersion".to_string(), attribute));
    out
}

fn xmllint() -> &'static str {
    let found = Command::new("xmllint").arg("--version").output();
    assert!(
        found.is_ok_and(|o| o.status.success()),
        "xmllint is needed for this test: apt-get install -y libxml2-utils (.ci/run installs it)"
    );
    "xmllint"
}

/// xmllint's verdict on each file: true when it validates.
fn xmllint_verdicts(schema: &Path, files: &[PathBuf]) -> Vec<bool> {
    let out = Command::new(xmllint())
        .arg("--noout")
        .arg("--nonet")
        .arg("--schema")
        .arg(schema)
        .args(files)
        .output()
        .expect("xmllint runs");
    let report = String::from_utf8_lossy(&out.stderr);
    files
        .iter()
        .map(|f| {
            let f = f.display().to_string();
            let valid = report.lines().any(|l| l == format!("{f} validates"));
            let invalid = report
                .lines()
                .any(|l| l == format!("{f} fails to validate"))
                || report.lines().any(|l| l.starts_with(&format!("{f}:")));
            assert!(
                valid != invalid,
                "no clear xmllint verdict on {f}:\n{report}"
            );
            valid
        })
        .collect()
}

fn judge_alike(version: MemoVersion, base: &str) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("schemas");
    let schema = match version {
        MemoVersion::V1_1 => root.join("MeMo_core.xsd"),
        MemoVersion::V1_2 => root.join("v1.2").join("MeMo_core.xsd"),
    };
    let mut docs = vec![("the base document".to_string(), base.to_string())];
    docs.extend(mutations(base, version));
    let dir = tempfile::tempdir().expect("temp dir");
    let files: Vec<PathBuf> = docs
        .iter()
        .enumerate()
        .map(|(i, (_, doc))| {
            let path = dir.path().join(format!("m{i}.xml"));
            std::fs::write(&path, doc).expect("write");
            path
        })
        .collect();
    let theirs = xmllint_verdicts(&schema, &files);
    assert!(theirs[0], "the base document is valid for xmllint");
    let (mut both_valid, mut both_invalid, mut parser_rules) = (0, 0, 0);
    for ((what, doc), their_valid) in docs.iter().zip(theirs) {
        match (super::parse(doc.as_bytes()), their_valid) {
            (Ok(_), true) => both_valid += 1,
            (Err(_), false) => both_invalid += 1,
            (Ok(_), false) => panic!(
                "MeMo {version}, {what}: the parser accepts a document the XSD refuses:\n{doc}"
            ),
            (Err(e), true) => {
                assert!(
                    PARSER_RULES.iter().any(|r| e.problem.contains(r)),
                    "MeMo {version}, {what}: the XSD accepts it but the parser refuses it for a rule that is not its own: {e}"
                );
                parser_rules += 1;
            }
        }
    }
    // The mutations exercise every branch, so the comparison means something.
    assert!(both_valid >= 20, "{both_valid} valid mutations");
    assert!(both_invalid >= 200, "{both_invalid} invalid mutations");
    assert!(parser_rules >= 3, "{parser_rules} refused by parser rules");
}

#[test]
fn xmllint_and_the_parser_judge_mutated_1_1_messages_alike() {
    judge_alike(MemoVersion::V1_1, FULL_1_1);
}

#[test]
fn xmllint_and_the_parser_judge_mutated_1_2_messages_alike() {
    judge_alike(MemoVersion::V1_2, FULL_1_2);
}
