//! Malformed and hostile MeMo input is refused with the element path, the line and column where
//! the problem is, and what is wrong: never a panic, never unbounded work or memory.

use brevdue::memo::{self, MemoError, MemoErrorKind, ParseLimits};

fn minimal() -> String {
    std::fs::read_to_string(format!(
        "{}/tests/data/memo/minimal.xml",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap()
}

/// `minimal.xml` with `from` replaced by `to` (which must occur exactly once).
fn mutate(from: &str, to: &str) -> String {
    let xml = minimal();
    assert_eq!(xml.matches(from).count(), 1, "{from}");
    xml.replacen(from, to, 1)
}

/// 1-based line and column of the first `needle` in `doc`.
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

/// The error is at `needle`, on `path`, and says `words`.
fn assert_rejected(doc: &str, path: &str, needle: &str, words: &str) -> MemoError {
    let e = reject(doc);
    assert_eq!(e.kind, MemoErrorKind::Invalid, "{e}");
    assert_eq!(e.path, path, "{e}");
    assert_eq!((e.line, e.column), position(doc, needle), "{e}");
    assert!(e.problem.contains(words), "{e}");
    // The display names all three.
    let shown = e.to_string();
    assert!(
        shown.starts_with(&format!("{path} (line {}, column {}): ", e.line, e.column)),
        "{shown}"
    );
    e
}

const HEADER: &str = "/memo:Message/memo:MessageHeader";
const CONTENT: &str = "/memo:Message/memo:MessageBody/memo:MainDocument/memo:File[1]/memo:content";

#[test]
fn doctype_with_billion_laughs_is_refused_before_any_expansion() {
    let lol = r#"<?xml version="1.0"?>
<!DOCTYPE memo:Message [
  <!ENTITY lol "lol">
  <!ENTITY lol1 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
  <!ENTITY lol2 "&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;">
  <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
  <!ENTITY lol9 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">
]>
"#;
    let doc = minimal().replacen("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n", lol, 1);
    let doc = doc.replacen("Din årsopgørelse", "&lol9;", 1);
    assert_rejected(&doc, "/", "<!DOCTYPE", "DOCTYPE is refused");
    // Without the DOCTYPE the entity is simply undefined.
    let doc = mutate("Din årsopgørelse", "&lol9;");
    assert_rejected(
        &doc,
        &format!("{HEADER}/memo:label"),
        "&lol9;",
        "entity &lol9; is not defined",
    );
}

#[test]
fn deep_nesting_is_refused_at_once() {
    let deep = "<memo:Sender>".repeat(200_000);
    let doc = mutate("<memo:Sender>", &deep);
    let e = reject(&doc);
    assert_eq!(e.path, format!("{HEADER}/memo:Sender"));
    let (line, column) = position(&doc, "<memo:Sender><memo:Sender>");
    // At the second, nested Sender.
    assert_eq!((e.line, e.column), (line, column + "<memo:Sender>".len()));
    assert!(
        e.problem
            .contains("<memo:Sender> is not allowed in Sender; expected memo:senderID"),
        "{e}"
    );
    // The depth limit holds even where the schema would allow more.
    let limits = ParseLimits {
        max_depth: 3,
        ..ParseLimits::default()
    };
    let doc = minimal();
    let e = memo::parse_with_limits(doc.as_bytes(), &limits).unwrap_err();
    assert_eq!(e.path, "/memo:Message/memo:MessageHeader/memo:Sender");
    assert_eq!((e.line, e.column), position(&doc, "<memo:senderID>"));
    assert!(e.problem.contains("deeper than 3"), "{e}");
}

#[test]
fn wrong_element_order_names_the_element_and_its_place() {
    let doc = mutate(
        "    <memo:mandatory>false</memo:mandatory>\n    <memo:legalNotification>false</memo:legalNotification>\n",
        "    <memo:mandatory>false</memo:mandatory>\n    <memo:legalNotification>false</memo:legalNotification>\n    <memo:notification>Nyt brev</memo:notification>\n",
    );
    assert_rejected(
        &doc,
        HEADER,
        "<memo:notification>",
        "<memo:notification> is out of order: it must come before memo:legalNotification",
    );
    let doc = mutate("    <memo:createdDateTime>2025-03-01T08:30:00Z</memo:createdDateTime>\n", "")
        .replacen("</memo:MainDocument>", "</memo:MainDocument>\n    <memo:createdDateTime>2025-03-01T08:30:00Z</memo:createdDateTime>", 1);
    assert_rejected(
        &doc,
        "/memo:Message/memo:MessageBody",
        "<memo:MainDocument>",
        "required element memo:createdDateTime is missing before <memo:MainDocument>",
    );
}

#[test]
fn a_missing_required_element_is_named() {
    let doc = mutate("    <memo:label>Din årsopgørelse</memo:label>\n", "");
    assert_rejected(
        &doc,
        HEADER,
        "<memo:mandatory>",
        "required element memo:label is missing before <memo:mandatory>",
    );
    let doc = mutate("      <memo:idType>CPR</memo:idType>\n", "");
    assert_rejected(
        &doc,
        &format!("{HEADER}/memo:Recipient"),
        "</memo:Recipient>",
        "memo:Recipient is incomplete: required element memo:idType is missing",
    );
    let doc = mutate(
        "<memo:MessageBody>",
        "<!-- no body --><memo:Nothing/><memo:MessageBody>",
    );
    assert_rejected(
        &doc,
        "/memo:Message",
        "<memo:Nothing/>",
        "<memo:Nothing> is not allowed in Message; expected memo:MessageBody",
    );
}

#[test]
fn values_are_checked_against_their_types() {
    let doc = mutate(
        "3f6b2c1a-9d4e-4b7f-8a21-5c0e9d7b1f42",
        "3f6b2c1a-9d4e-1b7f-8a21-5c0e9d7b1f42",
    );
    assert_rejected(
        &doc,
        &format!("{HEADER}/memo:messageUUID"),
        "<memo:messageUUID>",
        "version 4",
    );
    let doc = mutate("3f6b2c1a-9d4e-4b7f-8a21-5c0e9d7b1f42", "not-a-uuid");
    assert_rejected(
        &doc,
        &format!("{HEADER}/memo:messageUUID"),
        "<memo:messageUUID>",
        "is not a UUID",
    );

    let long = "å".repeat(257);
    let doc = mutate("Din årsopgørelse", &long);
    assert_rejected(
        &doc,
        &format!("{HEADER}/memo:label"),
        "<memo:label>",
        "the text is 257 characters, 1 over the limit of 256",
    );
    let huge = "x".repeat(5_000_000);
    let doc = mutate("Din årsopgørelse", &huge);
    let e = reject(&doc);
    assert!(e.problem.contains("over the limit of 256"), "{e}");

    let doc = mutate("<memo:mandatory>false<", "<memo:mandatory>nej<");
    assert_rejected(
        &doc,
        &format!("{HEADER}/memo:mandatory"),
        "<memo:mandatory>",
        "not a boolean",
    );
    let doc = mutate("2025-03-01T08:30:00Z", "2025-03-01T08:30:00+01:00");
    assert_rejected(
        &doc,
        "/memo:Message/memo:MessageBody/memo:createdDateTime",
        "<memo:createdDateTime>",
        "not a UTC date and time",
    );
    let doc = mutate("application/pdf", "pdf");
    assert_rejected(
        &doc,
        "/memo:Message/memo:MessageBody/memo:MainDocument/memo:File[1]/memo:encodingFormat",
        "<memo:encodingFormat>",
        "not a MIME type",
    );
    let doc = mutate("<memo:language>da<", "<memo:language>dansk<");
    assert_rejected(
        &doc,
        "/memo:Message/memo:MessageBody/memo:MainDocument/memo:File[1]/memo:language",
        "<memo:language>",
        "1 or 2 letters",
    );
}

#[test]
fn identifiers_are_checked_like_every_recipient_id() {
    let doc = mutate("0101901234", "3102901234");
    assert_rejected(
        &doc,
        &format!("{HEADER}/memo:Recipient/memo:recipientID"),
        "<memo:recipientID>",
        "CPR 3102901234: 31 February is not a date",
    );
    let doc = mutate("0101901234", "010190-1234");
    assert_rejected(
        &doc,
        &format!("{HEADER}/memo:Recipient/memo:recipientID"),
        "<memo:recipientID>",
        "without a dash",
    );
    let doc = mutate("61126228", "61126229");
    assert_rejected(
        &doc,
        &format!("{HEADER}/memo:Sender/memo:senderID"),
        "<memo:senderID>",
        "CVR 61126229",
    );
}

#[test]
fn invalid_base64_is_located_to_the_character() {
    let doc = mutate("JVBERi0xLjQg", "JVBERi0*LjQg");
    assert_rejected(&doc, CONTENT, "*", "'*' is not a base64 character");
    let doc = mutate("JVBERi0xLjQg", "JVBE=i0xLjQg");
    assert_rejected(&doc, CONTENT, "=i0xLjQg", "padding '=' before the end");
    let xml = minimal();
    let start = xml.find("<memo:content>").unwrap() + "<memo:content>".len();
    let doc = format!("{}A{}", &xml[..start], &xml[start..]);
    let e = reject(&doc);
    assert_eq!(e.path, CONTENT);
    assert!(e.problem.contains("multiple of 4"), "{e}");
}

#[test]
fn invalid_utf8_is_refused_with_its_place() {
    let doc = minimal();
    let at = doc.find("årsopgørelse").unwrap();
    let mut bytes = doc.clone().into_bytes();
    bytes[at] = 0xFF;
    let e = memo::parse(&bytes).unwrap_err();
    assert_eq!(e.path, "/memo:Message/memo:MessageHeader/memo:label");
    assert_eq!((e.line, e.column), position(&doc, "årsopgørelse"));
    assert!(e.problem.contains("invalid UTF-8: byte 0xFF"), "{e}");
    let e = memo::parse(b"\xFF\xFE<\x00").unwrap_err();
    assert!(e.problem.contains("UTF-16"), "{e}");
    let doc = mutate("Din årsopgørelse", "Din \u{1}årsopgørelse");
    assert_rejected(
        &doc,
        &format!("{HEADER}/memo:label"),
        "Din \u{1}",
        "U+0001 is not allowed in XML",
    );
    let doc = minimal().replacen("encoding=\"UTF-8\"", "encoding=\"ISO-8859-1\"", 1);
    assert_rejected(
        &doc,
        "/",
        "<?xml",
        "encoding \"ISO-8859-1\" is not accepted",
    );
}

#[test]
fn wrong_namespaces_are_named() {
    let doc = mutate(
        "https://DigitalPost.dk/MeMo-1",
        "https://DigitalPost.dk/MeMo-2",
    );
    assert_rejected(
        &doc,
        "/",
        "<memo:Message",
        "the root element must be Message in namespace https://DigitalPost.dk/MeMo-1; found Message in namespace https://DigitalPost.dk/MeMo-2",
    );
    let doc = mutate(
        "<memo:label>Din årsopgørelse</memo:label>",
        "<label xmlns=\"urn:other\">Din årsopgørelse</label>",
    );
    assert_rejected(
        &doc,
        HEADER,
        "<label xmlns",
        "<label> is in namespace urn:other; expected memo:label in namespace https://DigitalPost.dk/MeMo-1",
    );
    let doc = mutate(
        "<memo:label>Din årsopgørelse</memo:label>",
        "<x:label>Din årsopgørelse</x:label>",
    );
    let e = reject(&doc);
    assert!(e.problem.contains("prefix \"x\""), "{e}");
}

#[test]
fn message_type_decides_the_body() {
    let doc = mutate("DIGITALPOST", "NEMSMS");
    assert_rejected(
        &doc,
        "/memo:Message/memo:MessageBody",
        "<memo:MessageBody>",
        "a NEMSMS message has no MessageBody",
    );
    let xml = minimal();
    let (a, b) = (
        xml.find("  <memo:MessageBody>").unwrap(),
        xml.find("</memo:MessageBody>\n").unwrap(),
    );
    let doc = format!("{}{}", &xml[..a], &xml[b + "</memo:MessageBody>\n".len()..]);
    assert_rejected(
        &doc,
        "/memo:Message",
        "</memo:Message>",
        "a DIGITALPOST message needs a MessageBody",
    );
}

#[test]
fn versions_and_attributes() {
    let doc = mutate("memoVersion=\"1.1\"", "memoVersion=\"2.0\"");
    assert_rejected(
        &doc,
        "/memo:Message",
        "<memo:Message",
        "memoVersion \"2.0\" is not supported",
    );
    let doc = mutate(" memoSchVersion=\"1.1.0\"", "");
    assert_rejected(
        &doc,
        "/memo:Message",
        "<memo:Message",
        "memoSchVersion is missing",
    );
    // MeMo 1.2 dropped memoSchVersion.
    let doc = mutate(
        " memoVersion=\"1.1\" memoSchVersion=\"1.1.0\"",
        " memoVersion=\"1.2\"",
    );
    assert!(memo::parse(doc.as_bytes()).is_ok());
    let doc = mutate(
        " memoSchVersion=\"1.1.0\"",
        " memoSchVersion=\"1.1.0\" color=\"red\"",
    );
    assert_rejected(
        &doc,
        "/memo:Message",
        "<memo:Message",
        "attribute color on memo:Message is not allowed",
    );
    let doc = mutate(
        "<memo:label>Din",
        "<memo:label xmlns:xsi=\"http://www.w3.org/2001/XMLSchema-instance\" xsi:nil=\"true\">Din",
    );
    assert_rejected(
        &doc,
        &format!("{HEADER}/memo:label"),
        "<memo:label xmlns",
        "xsi:nil",
    );
}

#[test]
fn broken_xml_is_refused_not_panicked_on() {
    let xml = minimal();
    let cut = &xml[..xml.find("<memo:Recipient>").unwrap()];
    let e = reject(cut);
    assert!(e.problem.contains("end tag is missing"), "{e}");
    let doc = mutate("</memo:Sender>", "</memo:Sendr>");
    let e = reject(&doc);
    assert!(e.problem.contains("not well-formed XML"), "{e}");
    assert_eq!(e.path, "/memo:Message/memo:MessageHeader/memo:Sender");
    let doc = format!("{xml}<memo:Message/>");
    assert!(reject(&doc).problem.contains("one root element"));
    let doc = mutate("<memo:Sender>", "<memo:Sender>stray text");
    assert_rejected(
        &doc,
        &format!("{HEADER}/memo:Sender"),
        "stray text",
        "holds elements only",
    );
    assert!(reject("").problem.contains("no memo:Message"));
    for junk in [
        "<",
        "<memo:Message",
        "&",
        "]]>",
        "<?xml?>",
        "<!-- x",
        "\u{0}",
    ] {
        let _ = memo::parse(junk.as_bytes()).unwrap_err();
    }
}

#[test]
fn size_is_bounded_before_parsing() {
    let limits = ParseLimits {
        max_input_bytes: 100,
        ..ParseLimits::default()
    };
    let e = memo::parse_with_limits(minimal().as_bytes(), &limits).unwrap_err();
    assert_eq!(e.kind, MemoErrorKind::TooLarge);
    assert!(e.problem.contains("over the limit of 100 bytes"), "{e}");
}
