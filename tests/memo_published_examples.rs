//! Digitaliseringsstyrelsen's published MeMo examples, accepted at the gateway's door with the
//! default configuration. The examples are not ours to redistribute, so they are not in the
//! repository: point `MEMO_EXAMPLES_DIR` at a folder of them (e.g. MeMo_Minimum_Example.xml,
//! MeMo_Full_Example.xml, MeMo_with_attachment.xml and their 1.2 editions) and run
//! `cargo test --test memo_published_examples -- --ignored`.
//!
//! As the issue that brought MeMo 1.2 tried them: Sender and Recipient are replaced by a
//! registered sender and recipient, nothing else changed. A message whose action URLs are http
//! (the 1.1 full example) must be refused naming the element, line and column; with https it
//! must be accepted, attachments included.

use brevdue::domain::RejectReason;
use brevdue::domain::SenderInfo;
use brevdue::domain::{Cvr, SenderKind};
use brevdue::validate::Limits;
use brevdue::validate::memo as memo_intake;

const SENDER_CVR: &str = "61126228";
const RECIPIENT_CPR: &str = "0101901234";

/// The text of the first `<memo:{name}>` inside the first `<memo:{block}>` replaced by `value`.
fn replace_in(doc: &str, block: &str, name: &str, value: &str) -> String {
    let start = doc
        .find(&format!("<memo:{block}>"))
        .unwrap_or_else(|| panic!("no memo:{block}"));
    let open = format!("<memo:{name}>");
    let from = start + doc[start..].find(&open).expect("element") + open.len();
    let to = from + doc[from..].find('<').expect("end tag");
    format!("{}{value}{}", &doc[..from], &doc[to..])
}

fn registered(doc: &str) -> String {
    let doc = replace_in(doc, "Sender", "senderID", SENDER_CVR);
    let doc = replace_in(&doc, "Sender", "idType", "CVR");
    let doc = replace_in(&doc, "Recipient", "recipientID", RECIPIENT_CPR);
    replace_in(&doc, "Recipient", "idType", "CPR")
}

fn sender() -> SenderInfo {
    SenderInfo {
        cvr: SENDER_CVR.parse::<Cvr>().expect("CVR"),
        name: "Jobcenter Østby".into(),
        kind: SenderKind::Public,
        suspended: false,
        limits: Default::default(),
    }
}

#[test]
#[ignore = "needs the published examples in MEMO_EXAMPLES_DIR"]
fn published_examples_are_accepted_with_the_default_configuration() {
    let dir = std::env::var("MEMO_EXAMPLES_DIR").expect("MEMO_EXAMPLES_DIR");
    let mut tried = 0;
    for entry in std::fs::read_dir(&dir).expect("examples dir") {
        let path = entry.expect("entry").path();
        if path.extension().is_none_or(|e| e != "xml") {
            continue;
        }
        let raw = std::fs::read_to_string(&path).expect("read");
        if raw.contains("NEMSMS") {
            continue; // a text message, not a letter
        }
        let doc = registered(&raw);
        let name = path.display();
        let accept = |doc: &str| {
            memo_intake::accept(&sender(), "", doc.as_bytes().to_vec(), &Limits::default())
        };
        let https = if doc.contains("<memo:url>http://") {
            let refused = accept(&doc)
                .err()
                .unwrap_or_else(|| panic!("{name}: http accepted"));
            assert_eq!(refused.reason, RejectReason::InvalidLetter);
            assert!(
                refused.detail.contains("memo:EntryPoint/memo:url (line ")
                    && refused.detail.contains("uses http"),
                "{name}: {}",
                refused.detail
            );
            doc.replace("<memo:url>http://", "<memo:url>https://")
        } else {
            doc
        };
        let accepted = accept(&https).unwrap_or_else(|r| panic!("{name}: {}", r.detail));
        assert_eq!(accepted.letter.recipient.number(), RECIPIENT_CPR);
        tried += 1;
    }
    assert!(tried > 0, "no examples in {dir}");
}
