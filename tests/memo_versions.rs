//! MeMo 1.1 and 1.2 side by side, each judged by its own rules, and Digital Post's production
//! rules of September 2025 for both: minimal and full messages accepted, every missing required
//! element, every forbidden filename character and an http action URL refused with the element
//! path, line and column, and each version's own elements refused in the other.

use brevdue::memo::{self, MemoError, MemoErrorKind, MemoVersion};

const HEADER: &str = "/memo:Message/memo:MessageHeader";
const SENDER: &str = "/memo:Message/memo:MessageHeader/memo:Sender";
const RECIPIENT: &str = "/memo:Message/memo:MessageHeader/memo:Recipient";
const BODY: &str = "/memo:Message/memo:MessageBody";
const MAIN: &str = "/memo:Message/memo:MessageBody/memo:MainDocument";
const FILE: &str = "/memo:Message/memo:MessageBody/memo:MainDocument/memo:File[1]";

fn data(name: &str) -> String {
    let path = format!("{}/tests/data/memo/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn minimal(v: MemoVersion) -> String {
    data(match v {
        MemoVersion::V1_1 => "minimal.xml",
        MemoVersion::V1_2 => "minimal-1.2.xml",
    })
}

fn full(v: MemoVersion) -> String {
    data(match v {
        MemoVersion::V1_1 => "full.xml",
        MemoVersion::V1_2 => "full-1.2.xml",
    })
}

/// `doc` with `from` (which must occur exactly once) replaced by `to`.
fn mutate(doc: &str, from: &str, to: &str) -> String {
    assert_eq!(doc.matches(from).count(), 1, "{from}");
    doc.replacen(from, to, 1)
}

/// `doc` without the element that starts with `open` (its whole line or block).
fn without(doc: &str, open: &str, close: &str) -> String {
    assert_eq!(doc.matches(open).count(), 1, "{open}");
    let start = doc.find(open).unwrap();
    let start = doc[..start].rfind('\n').map_or(0, |i| i + 1);
    let end = start + doc[start..].find(close).unwrap() + close.len();
    let end = end + doc[end..].find('\n').map_or(0, |i| i + 1);
    format!("{}{}", &doc[..start], &doc[end..])
}

fn position(doc: &str, needle: &str) -> (usize, usize) {
    let at = doc
        .find(needle)
        .unwrap_or_else(|| panic!("{needle} not in document"));
    let before = &doc[..at];
    let line = before.matches('\n').count() + 1;
    let column = before[before.rfind('\n').map_or(0, |i| i + 1)..]
        .chars()
        .count()
        + 1;
    (line, column)
}

fn reject(doc: &str) -> MemoError {
    match memo::parse(doc.as_bytes()) {
        Ok(_) => panic!("accepted:\n{doc}"),
        Err(e) => e,
    }
}

/// Refused on `path`, at `needle`, saying `words`; the display names path, line and column.
fn assert_rejected(doc: &str, path: &str, needle: &str, words: &str) -> MemoError {
    let e = reject(doc);
    assert_eq!(e.kind, MemoErrorKind::Invalid, "{e}");
    assert_eq!(e.path, path, "{e}");
    assert_eq!((e.line, e.column), position(doc, needle), "{e}");
    assert!(e.problem.contains(words), "{e}");
    assert!(
        e.to_string()
            .starts_with(&format!("{path} (line {}, column {}): ", e.line, e.column)),
        "{e}"
    );
    e
}

#[test]
fn minimal_and_full_messages_of_both_versions_are_accepted_and_round_trip() {
    for v in MemoVersion::ALL {
        for doc in [minimal(v), full(v)] {
            let m = memo::parse(doc.as_bytes()).unwrap_or_else(|e| panic!("MeMo {v}: {e}"));
            assert_eq!(m.version, v);
            assert_eq!(m.schema_version.is_some(), v == MemoVersion::V1_1);
            let out = memo::write(&m);
            let again = memo::parse(&out).unwrap_or_else(|e| panic!("MeMo {v} written: {e}"));
            assert_eq!(again, m);
            let text = String::from_utf8(out).unwrap();
            assert!(text.contains(&format!("memoVersion=\"{v}\"")));
            assert_eq!(text.contains("memoSchVersion"), v == MemoVersion::V1_1);
        }
    }
    // What 1.2 added is read and written back.
    let m = memo::parse(full(MemoVersion::V1_2).as_bytes()).unwrap();
    let rep = m
        .header
        .sender
        .representative
        .as_ref()
        .expect("Representative");
    assert_eq!(
        rep.child("representativeID").and_then(|e| e.text()),
        Some("29189854")
    );
    let forward = m.header.forward_data.as_ref().expect("ForwardData");
    assert_eq!(
        forward
            .child("originalRepresentative")
            .and_then(|e| e.text()),
        Some("Udbetaling Østby")
    );
    assert_eq!(
        m.header.notification.as_ref().map(|n| n.chars().count()),
        Some(155)
    );
    let written = String::from_utf8(memo::write(&m)).unwrap();
    assert!(written.contains("<memo:Representative>"));
    assert!(written.contains("<memo:originalRepresentative>Udbetaling Østby<"));
    // 1.2's minimal message leaves mandatory and legalNotification out: both false.
    let m = memo::parse(minimal(MemoVersion::V1_2).as_bytes()).unwrap();
    assert!(!m.header.mandatory && !m.header.legal_notification);
}

#[test]
fn every_missing_required_element_is_named_in_both_versions() {
    // (start of the element, its end, the parent's path, the element's name)
    let required = [
        (
            "<memo:messageType>",
            "</memo:messageType>",
            HEADER,
            "memo:messageType",
        ),
        (
            "<memo:messageUUID>",
            "</memo:messageUUID>",
            HEADER,
            "memo:messageUUID",
        ),
        ("<memo:label>Din", "</memo:label>", HEADER, "memo:label"),
        ("<memo:Sender>", "</memo:Sender>", HEADER, "memo:Sender"),
        (
            "<memo:Recipient>",
            "</memo:Recipient>",
            HEADER,
            "memo:Recipient",
        ),
        (
            "<memo:senderID>",
            "</memo:senderID>",
            SENDER,
            "memo:senderID",
        ),
        ("<memo:idType>CVR", "</memo:idType>", SENDER, "memo:idType"),
        ("<memo:label>Skatte", "</memo:label>", SENDER, "memo:label"),
        (
            "<memo:recipientID>",
            "</memo:recipientID>",
            RECIPIENT,
            "memo:recipientID",
        ),
        (
            "<memo:idType>CPR",
            "</memo:idType>",
            RECIPIENT,
            "memo:idType",
        ),
        (
            "<memo:createdDateTime>",
            "</memo:createdDateTime>",
            BODY,
            "memo:createdDateTime",
        ),
        (
            "<memo:MainDocument>",
            "</memo:MainDocument>",
            BODY,
            "memo:MainDocument",
        ),
        ("<memo:File>", "</memo:File>", MAIN, "memo:File"),
        (
            "<memo:encodingFormat>",
            "</memo:encodingFormat>",
            FILE,
            "memo:encodingFormat",
        ),
        ("<memo:filename>", "</memo:filename>", FILE, "memo:filename"),
        ("<memo:language>", "</memo:language>", FILE, "memo:language"),
        ("<memo:content>", "</memo:content>", FILE, "memo:content"),
    ];
    for v in MemoVersion::ALL {
        let doc = minimal(v);
        for (open, close, parent, name) in required {
            let mutated = without(&doc, open, close);
            let e = reject(&mutated);
            assert_eq!(e.path, parent, "MeMo {v} without {name}: {e}");
            assert!(
                e.problem
                    .contains(&format!("required element {name} is missing")),
                "MeMo {v} without {name}: {e}"
            );
            assert!(e.line > 0 && e.column > 0, "{e}");
        }
    }
    // Required in 1.1 only.
    let doc = minimal(MemoVersion::V1_1);
    for name in ["mandatory", "legalNotification"] {
        let open = format!("<memo:{name}>");
        let mutated = without(&doc, &open, &format!("</memo:{name}>"));
        let e = reject(&mutated);
        assert_eq!(e.path, HEADER, "{e}");
        assert!(
            e.problem
                .contains(&format!("required element memo:{name} is missing")),
            "{e}"
        );
    }
}

#[test]
fn every_character_digital_post_refuses_in_filenames_is_refused_with_its_place() {
    for v in MemoVersion::ALL {
        let doc = minimal(v);
        for (c, what) in memo::rules::FORBIDDEN_IN_FILENAMES {
            // As a sender would write it in XML.
            let written = match c {
                '<' => "&lt;".to_string(),
                '>' => "&gt;".to_string(),
                '\r' => "&#13;".to_string(),
                c => c.to_string(),
            };
            let mutated = mutate(
                &doc,
                "<memo:filename>aarsopgoerelse.pdf<",
                &format!("<memo:filename>aarsop{written}goerelse.pdf<"),
            );
            let e = assert_rejected(
                &mutated,
                &format!("{FILE}/memo:filename"),
                "<memo:filename>",
                &format!("filename has a {what} (U+{:04X}) at character 7", *c as u32),
            );
            assert!(e.problem.contains("Digital Post refuses"), "{e}");
        }
        // Spaces Digital Post does not refuse, and Danish letters, pass.
        let fine = mutate(
            &doc,
            "<memo:filename>aarsopgoerelse.pdf<",
            "<memo:filename>Årsopgørelse 2025 (endelig).pdf<",
        );
        assert!(memo::parse(fine.as_bytes()).is_ok());
    }
}

#[test]
fn an_http_action_url_is_refused_in_both_versions() {
    for v in MemoVersion::ALL {
        let doc = full(v);
        let mutated = mutate(
            &doc,
            "<memo:url>https://jobcenter",
            "<memo:url>http://jobcenter",
        );
        assert_rejected(
            &mutated,
            &format!("{MAIN}/memo:Action[1]/memo:EntryPoint/memo:url"),
            "<memo:url>http://",
            "uses http: Digital Post requires absolute https:// addresses",
        );
        let relative = mutate(
            &doc,
            "<memo:url>https://jobcenter.oestby.example",
            "<memo:url>",
        );
        assert_rejected(
            &relative,
            &format!("{MAIN}/memo:Action[1]/memo:EntryPoint/memo:url"),
            "<memo:url>/booking",
            "is not absolute",
        );
    }
}

#[test]
fn a_1_1_message_with_a_1_2_element_is_refused_and_told_why() {
    let doc = minimal(MemoVersion::V1_1);
    let mutated = mutate(
        &doc,
        "<memo:label>Skattestyrelsen</memo:label>",
        "<memo:label>Skattestyrelsen</memo:label>\n      <memo:Representative><memo:label>Revisor</memo:label></memo:Representative>",
    );
    assert_rejected(
        &mutated,
        SENDER,
        "<memo:Representative>",
        "memo:Representative is part of MeMo 1.2, not of MeMo 1.1, which this message declares",
    );
    let doc = full(MemoVersion::V1_1);
    let anchor = "team 2</memo:originalContentResponsible>";
    let mutated = mutate(
        &doc,
        anchor,
        &format!("{anchor}<memo:originalRepresentative>R</memo:originalRepresentative>"),
    );
    let e = reject(&mutated);
    assert_eq!(e.path, format!("{HEADER}/memo:ForwardData"), "{e}");
    assert!(
        e.problem
            .contains("memo:originalRepresentative is part of MeMo 1.2"),
        "{e}"
    );
    // 151 characters of notification: over 1.1's limit, within 1.2's.
    let long = "n".repeat(151);
    let doc = mutate(
        &minimal(MemoVersion::V1_1),
        "<memo:mandatory>",
        &format!("<memo:notification>{long}</memo:notification><memo:mandatory>"),
    );
    assert_rejected(
        &doc,
        &format!("{HEADER}/memo:notification"),
        "<memo:notification>",
        "151 characters, 1 over the limit of 150",
    );
}

#[test]
fn a_1_2_message_with_what_1_2_removed_is_refused_and_told_why() {
    let doc = minimal(MemoVersion::V1_2);
    let mutated = mutate(
        &doc,
        "memoVersion=\"1.2\"",
        "memoVersion=\"1.2\" memoSchVersion=\"1.1.0\"",
    );
    assert_rejected(
        &mutated,
        "/memo:Message",
        "<memo:Message",
        "memoSchVersion is not allowed in MeMo 1.2",
    );
    let n = |len: usize| {
        mutate(
            &doc,
            "<memo:Sender>",
            &format!(
                "<memo:notification>{}</memo:notification><memo:Sender>",
                "n".repeat(len)
            ),
        )
    };
    assert!(memo::parse(n(160).as_bytes()).is_ok());
    assert_rejected(
        &n(161),
        &format!("{HEADER}/memo:notification"),
        "<memo:notification>",
        "161 characters, 1 over the limit of 160",
    );
}
