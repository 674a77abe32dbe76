//! The schema files in `schemas/` and the parser's tables (`tables`) must say the same thing,
//! for each MeMo version. This test reads a version's XSD set (checking it is well-formed XML),
//! walks the content models from `memo:Message` down, and compares every sequence with that
//! version's tables: element namespaces and names, order, minOccurs/maxOccurs, choices, simple
//! types, defaults, and the facets of the data types.

use std::collections::{HashMap, HashSet};

use quick_xml::Reader;
use quick_xml::events::{BytesStart, Event};

use super::schema::{self, Complex, MESSAGE, MemoVersion, Ns, Simple, Ty, UNBOUNDED};

const XS: &str = "http://www.w3.org/2001/XMLSchema";
const DT: &str = "https://data.gov.dk/model/dataTypes/";

/// The namespace schemas both versions import.
const SHARED: &[(&str, &str)] = &[
    ("MeMo_grd.xsd", include_str!("../../schemas/MeMo_grd.xsd")),
    ("MeMo_dmv.xsd", include_str!("../../schemas/MeMo_dmv.xsd")),
    ("MeMo_form.xsd", include_str!("../../schemas/MeMo_form.xsd")),
    ("MeMo_gln.xsd", include_str!("../../schemas/MeMo_gln.xsd")),
    ("MeMo_kle.xsd", include_str!("../../schemas/MeMo_kle.xsd")),
    ("MeMo_sor.xsd", include_str!("../../schemas/MeMo_sor.xsd")),
    ("MeMo_udd.xsd", include_str!("../../schemas/MeMo_udd.xsd")),
];

/// A version's own files: its core and its data types.
fn own_files(version: MemoVersion) -> [(&'static str, &'static str); 2] {
    match version {
        MemoVersion::V1_1 => [
            ("MeMo_core.xsd", include_str!("../../schemas/MeMo_core.xsd")),
            (
                "MeMo_dataTypes.xsd",
                include_str!("../../schemas/MeMo_dataTypes.xsd"),
            ),
        ],
        MemoVersion::V1_2 => [
            (
                "v1.2/MeMo_core.xsd",
                include_str!("../../schemas/v1.2/MeMo_core.xsd"),
            ),
            (
                "v1.2/MeMo_dataTypes.xsd",
                include_str!("../../schemas/v1.2/MeMo_dataTypes.xsd"),
            ),
        ],
    }
}

type QName = (String, String);

#[derive(Debug, Clone)]
enum ElemType {
    Named(QName),
    Ref(QName),
}

#[derive(Debug, Clone)]
struct XElem {
    name: QName,
    ty: ElemType,
    default: Option<String>,
}

#[derive(Debug, Clone)]
struct XParticle {
    alts: Vec<XElem>,
    min: u32,
    max: u32,
}

#[derive(Debug, Default)]
struct Xsd {
    globals: HashMap<QName, QName>,
    complex: HashMap<QName, Vec<XParticle>>,
    attributes: HashMap<QName, Vec<(String, QName, String)>>,
    facets: HashMap<QName, Vec<(String, String)>>,
}

fn attr(e: &BytesStart, name: &str) -> Option<String> {
    e.try_get_attribute(name).unwrap().map(|a| {
        a.normalized_value(quick_xml::XmlVersion::Implicit1_0)
            .unwrap()
            .into_owned()
    })
}

fn occurs(e: &BytesStart, name: &str) -> u32 {
    match attr(e, name).as_deref() {
        None => 1,
        Some("unbounded") => UNBOUNDED,
        Some(n) => n.parse().unwrap(),
    }
}

/// Reads one schema document into `xsd`.
fn read(file: &str, text: &str, xsd: &mut Xsd) {
    let mut reader = Reader::from_str(text);
    reader.config_mut().check_end_names = true;
    let mut prefixes: HashMap<String, String> = HashMap::new();
    let mut target = String::new();
    let mut depth = 0usize;
    let mut complex: Option<(QName, Vec<XParticle>)> = None;
    let mut choice: Option<XParticle> = None;
    let mut simple: Option<QName> = None;
    loop {
        let event = reader
            .read_event()
            .unwrap_or_else(|e| panic!("{file} is not well-formed XML: {e}"));
        let (e, empty) = match &event {
            Event::Start(e) => (e.clone(), false),
            Event::Empty(e) => (e.clone(), true),
            Event::End(e) => {
                depth -= 1;
                match e.name().into_inner() {
                    "xsd:complexType" => {
                        if let Some((name, particles)) = complex.take() {
                            xsd.complex.insert(name, particles);
                        }
                    }
                    "xsd:choice" => {
                        let c = choice.take().unwrap();
                        complex.as_mut().unwrap().1.push(c);
                    }
                    "xsd:simpleType" => simple = None,
                    _ => {}
                }
                continue;
            }
            Event::Eof => break,
            _ => continue,
        };
        let resolve = |q: &str| -> QName {
            let (p, local) = q.split_once(':').unwrap_or(("", q));
            let uri = prefixes
                .get(p)
                .unwrap_or_else(|| panic!("{file}: prefix {p:?} not declared"));
            (uri.clone(), local.to_string())
        };
        match e.name().into_inner() {
            "xsd:schema" => {
                for a in e.attributes() {
                    let a = a.unwrap();
                    if let Some(p) = a.key.into_inner().strip_prefix("xmlns:") {
                        prefixes.insert(p.to_string(), a.value.to_string());
                    }
                }
                target = attr(&e, "targetNamespace").unwrap();
                assert_eq!(attr(&e, "elementFormDefault").as_deref(), Some("qualified"));
            }
            "xsd:element" if depth == 1 => {
                let name = (target.clone(), attr(&e, "name").unwrap());
                xsd.globals
                    .insert(name, resolve(&attr(&e, "type").unwrap()));
            }
            "xsd:element" => {
                let elem = if let Some(r) = attr(&e, "ref") {
                    XElem {
                        name: resolve(&r),
                        ty: ElemType::Ref(resolve(&r)),
                        default: None,
                    }
                } else {
                    XElem {
                        name: (target.clone(), attr(&e, "name").unwrap()),
                        ty: ElemType::Named(resolve(&attr(&e, "type").unwrap())),
                        default: attr(&e, "default"),
                    }
                };
                let (min, max) = (occurs(&e, "minOccurs"), occurs(&e, "maxOccurs"));
                match choice.as_mut() {
                    Some(c) => {
                        assert_eq!((min, max), (1, 1), "{file}: occurrence on a choice member");
                        c.alts.push(elem);
                    }
                    None => complex.as_mut().unwrap().1.push(XParticle {
                        alts: vec![elem],
                        min,
                        max,
                    }),
                }
            }
            "xsd:complexType" => {
                complex = Some(((target.clone(), attr(&e, "name").unwrap()), Vec::new()));
            }
            "xsd:choice" => {
                choice = Some(XParticle {
                    alts: Vec::new(),
                    min: occurs(&e, "minOccurs"),
                    max: occurs(&e, "maxOccurs"),
                });
            }
            "xsd:attribute" => {
                let owner = complex.as_ref().unwrap().0.clone();
                xsd.attributes.entry(owner).or_default().push((
                    attr(&e, "name").unwrap(),
                    resolve(&attr(&e, "type").unwrap()),
                    attr(&e, "use").unwrap_or_default(),
                ));
            }
            "xsd:simpleType" => simple = Some((target.clone(), attr(&e, "name").unwrap())),
            "xsd:restriction" | "xsd:maxLength" | "xsd:maxInclusive" | "xsd:pattern"
            | "xsd:enumeration" => {
                let key = simple.clone().unwrap();
                let value = match attr(&e, "base") {
                    Some(base) => {
                        let (uri, local) = resolve(&base);
                        format!("{uri}#{local}")
                    }
                    None => attr(&e, "value").unwrap(),
                };
                let facet = e.name().into_inner().trim_start_matches("xsd:").to_string();
                xsd.facets.entry(key).or_default().push((facet, value));
            }
            "xsd:sequence" | "xsd:import" => {}
            other => panic!("{file}: unexpected {other} (extend this test)"),
        }
        if !empty {
            depth += 1;
        }
    }
}

fn load(version: MemoVersion) -> Xsd {
    let mut xsd = Xsd::default();
    for (file, text) in own_files(version).iter().chain(SHARED) {
        read(file, text, &mut xsd);
    }
    xsd
}

fn expected_simple(s: Simple) -> QName {
    let (uri, local) = match s {
        Simple::Text | Simple::MimeType | Simple::Filename => (DT, "memoTextType"),
        Simple::Comment => (DT, "memoCommentType"),
        Simple::Notification | Simple::NotificationV1_2 => (DT, "memoNotificationType"),
        Simple::MessageType => (DT, "memoMessageType"),
        Simple::Uuid => (DT, "memoUuidType"),
        Simple::DateTime => (DT, "memoDateTimeType"),
        Simple::Date => (XS, "date"),
        Simple::Boolean | Simple::BooleanDefaultFalse => (XS, "boolean"),
        Simple::Language => (DT, "memoLanguageType"),
        Simple::Uri | Simple::ActionUrl => (DT, "memoUriType"),
        Simple::Base64 => (XS, "base64Binary"),
        Simple::LicenseNumber => (DT, "memoLicenseNumberType"),
        Simple::Gln => (DT, "memoGLNType"),
        Simple::PNumber => (DT, "memoPNumberType"),
    };
    (uri.to_string(), local.to_string())
}

fn compare(
    xsd: &Xsd,
    version: MemoVersion,
    ours: Complex,
    theirs: &QName,
    seen: &mut HashSet<QName>,
) {
    if !seen.insert(theirs.clone()) {
        return;
    }
    let their = xsd
        .complex
        .get(theirs)
        .unwrap_or_else(|| panic!("no complexType {theirs:?}"));
    let our = ours.particles(version);
    let names = |ps: &[XParticle]| -> Vec<String> {
        ps.iter()
            .map(|p| {
                p.alts
                    .iter()
                    .map(|a| a.name.1.clone())
                    .collect::<Vec<_>>()
                    .join("|")
            })
            .collect()
    };
    let our_names: Vec<String> = our
        .iter()
        .map(|p| p.alts.iter().map(|a| a.name).collect::<Vec<_>>().join("|"))
        .collect();
    assert_eq!(
        our_names,
        names(their),
        "{ours:?}: element order differs from {theirs:?}"
    );
    for (o, t) in our.iter().zip(their) {
        let what = format!("{ours:?}/{}", t.alts[0].name.1);
        assert_eq!((o.min, o.max), (t.min, t.max), "{what}: occurrences");
        for (oa, ta) in o.alts.iter().zip(&t.alts) {
            assert_eq!(
                (oa.ns.uri(), oa.name),
                (ta.name.0.as_str(), ta.name.1.as_str()),
                "{what}: namespace"
            );
            let their_type = match &ta.ty {
                ElemType::Named(q) => q.clone(),
                ElemType::Ref(q) => xsd.globals[q].clone(),
            };
            match oa.ty {
                Ty::Simple(s) => {
                    assert_eq!(expected_simple(s), their_type, "{what}: type");
                    let default = (s == Simple::BooleanDefaultFalse).then(|| "false".to_string());
                    assert_eq!(default, ta.default, "{what}: default");
                }
                Ty::Complex(c) => compare(xsd, version, c, &their_type, seen),
            }
        }
    }
}

fn tables_agree_with_the_files(version: MemoVersion, complex_types: usize) {
    let xsd = load(version);
    let memo_globals: Vec<_> = xsd
        .globals
        .keys()
        .filter(|k| k.0 == Ns::Memo.uri())
        .collect();
    assert_eq!(
        memo_globals,
        [&(Ns::Memo.uri().to_string(), "Message".to_string())]
    );
    let message_type = &xsd.globals[&(Ns::Memo.uri().to_string(), "Message".to_string())];
    assert_eq!(MESSAGE.ty, Ty::Complex(Complex::Message));
    let mut seen = HashSet::new();
    compare(&xsd, version, Complex::Message, message_type, &mut seen);
    // Every complex type of the files is reached from memo:Message, so every one was compared.
    let all: HashSet<QName> = xsd.complex.keys().cloned().collect();
    assert_eq!(seen, all);
    assert_eq!(seen.len(), complex_types);

    let q = |uri: &str, local: &str| (uri.to_string(), local.to_string());
    let mut attributes = vec![(
        "memoVersion".to_string(),
        q(XS, "decimal"),
        "required".to_string(),
    )];
    // The one difference the tables cannot show: the parser checks it on the root's start tag.
    if version == MemoVersion::V1_1 {
        attributes.push((
            "memoSchVersion".to_string(),
            q(DT, "memoTextType"),
            "required".to_string(),
        ));
    }
    assert_eq!(xsd.attributes[message_type], attributes);
}

#[test]
fn the_1_1_schema_files_and_the_parser_tables_agree() {
    tables_agree_with_the_files(MemoVersion::V1_1, 41);
}

#[test]
fn the_1_2_schema_files_and_the_parser_tables_agree() {
    // 1.2 adds one complex type, memo:Representative.
    tables_agree_with_the_files(MemoVersion::V1_2, 42);
}

#[test]
fn the_data_types_agree() {
    for version in MemoVersion::ALL {
        data_types_agree(version);
    }
}

fn data_types_agree(version: MemoVersion) {
    let xsd = load(version);
    let facet = |ty: &str, name: &str| -> Vec<String> {
        xsd.facets[&(DT.to_string(), ty.to_string())]
            .iter()
            .filter(|(f, _)| f == name)
            .map(|(_, v)| v.clone())
            .collect()
    };
    let one = |ty: &str, name: &str| facet(ty, name).pop().unwrap();
    assert_eq!(
        one("memoTextType", "maxLength"),
        schema::TEXT_MAX.to_string()
    );
    assert_eq!(
        one("memoCommentType", "maxLength"),
        schema::COMMENT_MAX.to_string()
    );
    let notification_max = match version {
        MemoVersion::V1_1 => schema::NOTIFICATION_MAX,
        MemoVersion::V1_2 => schema::NOTIFICATION_MAX_1_2,
    };
    assert_eq!(
        one("memoNotificationType", "maxLength"),
        notification_max.to_string(),
        "MeMo {version}"
    );
    assert_eq!(one("memoUriType", "maxLength"), schema::URI_MAX.to_string());
    assert_eq!(
        one("memoLanguageType", "maxLength"),
        schema::LANGUAGE_MAX.to_string()
    );
    assert_eq!(
        one("memoLicenseNumberType", "maxLength"),
        schema::LICENSE_NUMBER_MAX.to_string()
    );
    assert_eq!(
        one("memoGLNType", "maxInclusive"),
        schema::GLN_MAX.to_string()
    );
    assert_eq!(
        one("memoPNumberType", "maxInclusive"),
        schema::PNUMBER_MAX.to_string()
    );
    assert_eq!(
        facet("memoMessageType", "enumeration"),
        ["DIGITALPOST", "NEMSMS"]
    );
    assert_eq!(one("memoDateTimeType", "pattern"), ".+Z");
    assert_eq!(
        one("memoDateTimeType", "restriction"),
        format!("{XS}#dateTime")
    );
    assert_eq!(
        one("memoLanguageType", "restriction"),
        format!("{XS}#language")
    );
    assert_eq!(one("memoGLNType", "restriction"), format!("{XS}#long"));
    assert_eq!(
        one("memoUuidType", "pattern"),
        "[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-4[0-9a-fA-F]{3}-[89abAB][0-9a-fA-F]{3}-[0-9a-fA-F]{12}",
        "the UUID check in values.rs implements this pattern"
    );
}
