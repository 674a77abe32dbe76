//! MeMo messages survive parse → write → parse unchanged, and map to and from letters.

use brevdue::domain::{Cvr, Document, Letter, MessageUuid, Priority, SenderInfo, SenderKind};
use brevdue::memo::{self, ElementContent, MemoErrorKind, MemoVersion, MessageType, Ns};
use time::macros::{date, datetime};

fn data(name: &str) -> Vec<u8> {
    std::fs::read(format!(
        "{}/tests/data/memo/{name}",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap()
}

fn round_trip(xml: &[u8]) -> memo::MemoMessage {
    let m = memo::parse(xml).unwrap_or_else(|e| panic!("{e}"));
    let out = memo::write(&m);
    let again =
        memo::parse(&out).unwrap_or_else(|e| panic!("{e}\n{}", String::from_utf8_lossy(&out)));
    assert_eq!(again, m);
    // Writing is stable: the written form writes itself.
    assert_eq!(memo::write(&again), out);
    m
}

#[test]
fn minimal_message_round_trips() {
    let m = round_trip(&data("minimal.xml"));
    assert_eq!(m.version, MemoVersion::V1_1);
    assert_eq!(m.schema_version.as_deref(), Some("1.1.0"));
    let h = &m.header;
    assert_eq!(h.message_type, MessageType::DigitalPost);
    assert_eq!(h.label, "Din årsopgørelse");
    assert_eq!(h.recipient.id, "0101901234");
    assert!(!h.mandatory && !h.legal_notification);
    let body = m.body.as_ref().unwrap();
    assert_eq!(body.created, datetime!(2025-03-01 08:30:00 UTC));
    assert_eq!(
        body.main_document.files[0].content,
        b"%PDF-1.4 minimal letter"
    );

    let out = String::from_utf8(memo::write(&m)).unwrap();
    assert!(out.starts_with(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<memo:Message xmlns:memo=\"https://DigitalPost.dk/MeMo-1\" memoVersion=\"1.1\" memoSchVersion=\"1.1.0\">"
    ));
    // Only the namespaces in use are declared.
    assert!(!out.contains("xmlns:grd"));
}

#[test]
fn full_message_round_trips_with_every_optional_element() {
    let m = round_trip(&data("full.xml"));
    let h = &m.header;
    assert_eq!(
        h.message_uuid,
        "a1b2c3d4-e5f6-4a7b-9c8d-0e1f2a3b4c5d"
            .parse::<MessageUuid>()
            .unwrap()
    );
    assert_eq!(h.label, "Indkaldelse til samtale & vejledning");
    assert_eq!(h.message_id.as_deref(), Some("BRV-2025-000417"));
    assert_eq!(h.do_not_deliver_until, Some(date!(2025 - 04 - 01)));
    assert_eq!(h.reply, Some(true));
    assert_eq!(h.reply_by, Some(datetime!(2025-04-15 10:00:00 UTC)));
    assert!(h.mandatory && h.legal_notification);
    assert_eq!(h.post_type.as_deref(), Some("MYNDIGHEDSPOST"));
    assert_eq!(h.reply_data.len(), 2);
    let content = h.content_data.as_ref().unwrap();
    let vehicle = content.child("MotorVehicle").unwrap();
    assert_eq!(vehicle.ns, Ns::Dmv);
    assert_eq!(
        vehicle.child("licenseNumber").unwrap().text(),
        Some("AB12345")
    );
    let ElementContent::Children(parts) = &content.content else {
        panic!("ContentData holds elements")
    };
    assert_eq!(parts.len(), 13);
    let gln = h
        .sender
        .attention_data
        .as_ref()
        .unwrap()
        .child("GlobalLocationNumber")
        .unwrap();
    assert_eq!(
        gln.child("globalLocationNumber").unwrap().text(),
        Some("5790001234567")
    );

    let body = m.body.as_ref().unwrap();
    assert_eq!(body.created, datetime!(2025-03-28 14:05:30.25 UTC));
    assert_eq!(body.main_document.files.len(), 2);
    assert_eq!(body.main_document.actions.len(), 2);
    // The base64 was wrapped over many lines; it decodes to the whole document.
    let pdf = &body.main_document.files[0].content;
    assert!(pdf.starts_with(b"%PDF-1.4\nIndkaldelse til samtale. "));
    assert_eq!(pdf.len(), 9 + 25 * 40);
    assert_eq!(body.additional_documents[0].files[1].language, "en");
    assert_eq!(
        body.additional_documents[1].files[0].content,
        (0..=255).collect::<Vec<u8>>()
    );
    assert_eq!(body.technical_documents.len(), 2);
    assert_eq!(body.technical_documents[1].files[0].content, b"");

    let out = String::from_utf8(memo::write(&m)).unwrap();
    for ns in Ns::ALL {
        assert!(
            out.contains(&format!("xmlns:{}=\"{}\"", ns.prefix(), ns.uri())),
            "{ns:?}"
        );
    }
}

#[test]
fn unprefixed_input_and_upper_case_uuids_are_read_and_written_prefixed() {
    let xml = String::from_utf8(data("minimal.xml")).unwrap();
    let unprefixed = xml
        .replace("xmlns:memo=", "xmlns=")
        .replace("<memo:", "<")
        .replace("</memo:", "</")
        .replace(
            "3f6b2c1a-9d4e-4b7f-8a21-5c0e9d7b1f42",
            "3F6B2C1A-9D4E-4B7F-8A21-5C0E9D7B1F42",
        );
    let a = memo::parse(unprefixed.as_bytes()).unwrap();
    let b = memo::parse(xml.as_bytes()).unwrap();
    assert_eq!(a, b);
    assert!(
        String::from_utf8(memo::write(&a))
            .unwrap()
            .contains("<memo:messageUUID>3f6b2c1a-9d4e-4b7f-8a21-5c0e9d7b1f42<")
    );
}

#[test]
fn a_message_becomes_a_letter() {
    let letter = memo::parse(&data("full.xml"))
        .unwrap()
        .into_letter()
        .unwrap();
    assert_eq!(letter.title, "Indkaldelse til samtale & vejledning");
    assert_eq!(letter.recipient.to_string(), "CPR:0101901234");
    assert_eq!(letter.sender_reference, "BRV-2025-000417");
    assert_eq!(letter.main_document.filename, "indkaldelse.pdf");
    assert_eq!(letter.main_document.media_type, "application/pdf");
    let names: Vec<&str> = letter
        .attachments
        .iter()
        .map(|d| d.filename.as_str())
        .collect();
    // The main document's other files, then every additional document's; never technical ones.
    assert_eq!(
        names,
        [
            "indkaldelse.txt",
            "vejledning.pdf",
            "guidance.pdf",
            "kort.png"
        ]
    );
    assert!(!letter.print_fallback);
    assert_eq!(letter.priority, Priority::Normal);

    let m = memo::parse(&data("minimal.xml")).unwrap();
    assert_eq!(m.to_letter().unwrap(), m.clone().into_letter().unwrap());
}

/// The sender of the letters these tests make into messages.
fn municipality() -> SenderInfo {
    SenderInfo {
        cvr: "61126228".parse::<Cvr>().unwrap(),
        name: "Østby Kommune".into(),
        kind: SenderKind::Public,
        suspended: false,
        limits: Default::default(),
    }
}

/// `letter` as a MeMo 1.1 message made at a fixed time.
fn message_of(letter: &Letter, sender: &SenderInfo) -> memo::MemoMessage {
    memo::MemoMessage::from_letter(
        letter,
        sender,
        datetime!(2025-05-01 12:00:00 UTC),
        memo::MemoVersion::V1_1,
    )
}

#[test]
fn a_letter_becomes_a_valid_message_and_back() {
    let letter = Letter {
        message_uuid: "6f1c7d1e-4b1a-4c55-9d6e-0a1b2c3d4e5f".parse().unwrap(),
        recipient: "CVR:61126228".parse().unwrap(),
        title: "Rykker <faktura> & \"renter\"\r\n".to_string(),
        main_document: Document {
            filename: "rykker.pdf".into(),
            media_type: "application/pdf".into(),
            content: b"%PDF-1.4 rykker".to_vec(),
        },
        attachments: vec![Document {
            filename: "bilag.txt".into(),
            media_type: "text/plain".into(),
            content: b"bilag\r\n".to_vec(),
        }],
        print_fallback: false,
        priority: Priority::Normal,
        sender_reference: "R-17".into(),
    };
    let sender = municipality();
    let m = message_of(&letter, &sender);
    let xml = memo::write(&m);
    let parsed = memo::parse(&xml).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(parsed, m);
    assert_eq!(parsed.header.sender.label, "Østby Kommune");
    assert_eq!(parsed.into_letter().unwrap(), letter);
}

/// Documents of every length modulo three, short ones and ones long enough for the encoder's
/// vector loop, are written as standard padded base64 (checked against an independent
/// encoder) and read back byte for byte.
#[test]
fn documents_of_every_length_are_written_as_standard_base64() {
    use base64::Engine;
    let sender = municipality();
    let lengths = (0..70).chain([1_000, 4_095, 4_096, 4_097, 100_000, 100_001, 100_002]);
    for len in lengths {
        let content: Vec<u8> = (0..len).map(|i| (i * 7 + len) as u8).collect();
        let letter = Letter {
            message_uuid: "6f1c7d1e-4b1a-4c55-9d6e-0a1b2c3d4e5f".parse().unwrap(),
            recipient: "CVR:61126228".parse().unwrap(),
            title: "Brev".to_string(),
            main_document: Document {
                filename: "brev.pdf".into(),
                media_type: "application/pdf".into(),
                content: content.clone(),
            },
            attachments: Vec::new(),
            print_fallback: false,
            priority: Priority::Normal,
            sender_reference: String::new(),
        };
        let m = message_of(&letter, &sender);
        let xml = String::from_utf8(memo::write(&m)).unwrap();
        let expected = format!(
            "<memo:content>{}</memo:content>",
            base64::engine::general_purpose::STANDARD.encode(&content)
        );
        assert!(xml.contains(&expected), "document of {len} bytes");
        let parsed = memo::parse(xml.as_bytes()).unwrap_or_else(|e| panic!("{len}: {e}"));
        assert_eq!(parsed.into_letter().unwrap().main_document.content, content);
    }
}

#[test]
fn a_nemsms_is_a_valid_message_but_not_a_letter() {
    let m = round_trip(&data("nemsms.xml"));
    assert_eq!(m.version, MemoVersion::V1_2);
    assert_eq!(m.schema_version, None);
    assert_eq!(m.header.message_type, MessageType::NemSms);
    assert!(m.body.is_none());
    let e = m.into_letter().unwrap_err();
    assert_eq!(e.kind, MemoErrorKind::Unsupported);
    assert!(e.to_string().contains("NEMSMS"), "{e}");
}
