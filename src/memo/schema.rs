//! The vocabulary of the MeMo content models: namespaces, simple and complex types, and the
//! shape of a table entry. The tables themselves, one set per MeMo version, are in `tables`;
//! the streaming parser walks them, `schemas/` says the same in XSD (one set per version), and
//! `xsd_check` (a unit test) reads both XSD sets and compares them with the tables.

pub use super::version::MemoVersion;

/// The namespaces a MeMo message uses, with the prefixes brevdue writes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Ns {
    Memo,
    Grd,
    Dmv,
    Form,
    Gln,
    Kle,
    Sor,
    Udd,
}

impl Ns {
    pub const ALL: [Ns; 8] = [
        Ns::Memo,
        Ns::Grd,
        Ns::Dmv,
        Ns::Form,
        Ns::Gln,
        Ns::Kle,
        Ns::Sor,
        Ns::Udd,
    ];

    pub fn uri(self) -> &'static str {
        match self {
            Ns::Memo => "https://DigitalPost.dk/MeMo-1",
            Ns::Grd => "https://data.gov.dk/model/core/",
            Ns::Dmv => "https://motorregister.skat.dk/",
            Ns::Form => "http://www.form-online.dk/",
            Ns::Gln => {
                "https://www.gs1.dk/gs1-standarder/identifikation/gln-global-location-number/"
            }
            Ns::Kle => "http://kle-online.dk/",
            Ns::Sor => "https://services.nsi.dk/en/Services/SOR",
            Ns::Udd => {
                "https://www.dst.dk/da/TilSalg/Forskningsservice/Dokumentation/hoejkvalitetsvariable/elevregister-2/udd#"
            }
        }
    }

    pub fn prefix(self) -> &'static str {
        match self {
            Ns::Memo => "memo",
            Ns::Grd => "grd",
            Ns::Dmv => "dmv",
            Ns::Form => "form",
            Ns::Gln => "gln",
            Ns::Kle => "kle",
            Ns::Sor => "sor",
            Ns::Udd => "udd",
        }
    }

    pub fn from_uri(uri: &str) -> Option<Ns> {
        Ns::ALL.into_iter().find(|ns| ns.uri() == uri)
    }
}

/// Simple (text-only) types. Limits are in characters, as XSD counts them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Simple {
    /// `dt:memoTextType`: a string of at most 256 characters.
    Text,
    /// `dt:memoCommentType`: at most 512 characters.
    Comment,
    /// `dt:memoNotificationType` of MeMo 1.1: at most 150 characters.
    Notification,
    /// `dt:memoNotificationType` of MeMo 1.2: at most 160 characters (the 1.2 data types
    /// raised the limit).
    NotificationV1_2,
    /// `dt:memoMessageType`: DIGITALPOST or NEMSMS.
    MessageType,
    /// `dt:memoUuidType`: a version 4 UUID.
    Uuid,
    /// `dt:memoDateTimeType`: an `xs:dateTime` in UTC (ending in `Z`).
    DateTime,
    /// `xs:date`.
    Date,
    /// `xs:boolean`.
    Boolean,
    /// `xs:boolean` with `default="false"`: an empty element means false.
    BooleanDefaultFalse,
    /// `dt:memoLanguageType`: `xs:language` of at most 2 characters.
    Language,
    /// `dt:memoUriType`: `xs:anyURI` of at most 256 characters.
    Uri,
    /// `dt:memoUriType` in `memo:EntryPoint/memo:url`, the address of an Action, which Digital
    /// Post has required since September 2025 to be an absolute `https` URL.
    ActionUrl,
    /// `dt:memoTextType` in `memo:File/memo:filename`, which Digital Post has since September
    /// 2025 refused when it holds a character of [`super::rules::FORBIDDEN_IN_FILENAMES`].
    Filename,
    /// `xs:base64Binary`, decoded while streaming.
    Base64,
    /// `dt:memoTextType` in `memo:File/memo:encodingFormat`, which brevdue also requires to be
    /// shaped like a MIME type.
    MimeType,
    /// `dt:memoLicenseNumberType`: at most 7 characters.
    LicenseNumber,
    /// `dt:memoGLNType`: `xs:long` up to 9999999999999.
    Gln,
    /// `dt:memoPNumberType`: `xs:long` up to 9999999999.
    PNumber,
}

pub const TEXT_MAX: usize = 256;
pub const COMMENT_MAX: usize = 512;
pub const NOTIFICATION_MAX: usize = 150;
pub const NOTIFICATION_MAX_1_2: usize = 160;
pub const URI_MAX: usize = 256;
pub const LANGUAGE_MAX: usize = 2;
pub const LICENSE_NUMBER_MAX: usize = 7;
pub const GLN_MAX: i64 = 9_999_999_999_999;
pub const PNUMBER_MAX: i64 = 9_999_999_999;

/// Complex (element-only) types: one per aggregate of the model.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Complex {
    Message,
    MessageHeader,
    Sender,
    Recipient,
    AttentionData,
    AttentionPerson,
    EMail,
    Telephone,
    ContentResponsible,
    GeneratingSystem,
    ContactPoint,
    ContactInfo,
    /// `memo:Representative`, new in MeMo 1.2: who sends on the sender's behalf.
    Representative,
    ContentData,
    CaseId,
    AdditionalContentData,
    ForwardData,
    ReplyData,
    AdditionalReplyData,
    MessageBody,
    MainDocument,
    AdditionalDocument,
    TechnicalDocument,
    File,
    Action,
    Reservation,
    EntryPoint,
    GrdAddress,
    GrdAddressPoint,
    GrdUnstructuredAddress,
    GrdCprData,
    GrdCvrData,
    GrdEid,
    GrdProductionUnit,
    GrdSeNumber,
    GrdPropertyNumber,
    DmvMotorVehicle,
    FormData,
    GlnGlobalLocationNumber,
    KleData,
    SorData,
    UddEducation,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ty {
    Simple(Simple),
    Complex(Complex),
}

/// An element that may appear as a child: its expanded name and type.
#[derive(Debug, PartialEq, Eq)]
pub struct Child {
    pub ns: Ns,
    pub name: &'static str,
    pub ty: Ty,
}

/// One step of a sequence: one of `alts` (one element, or several for an `xs:choice`), between
/// `min` and `max` times.
#[derive(Debug, PartialEq, Eq)]
pub struct Particle {
    pub alts: &'static [Child],
    pub min: u32,
    pub max: u32,
}

/// `maxOccurs="unbounded"`.
pub const UNBOUNDED: u32 = u32::MAX;

/// The root: `memo:Message`.
pub static MESSAGE: Child = Child {
    ns: Ns::Memo,
    name: "Message",
    ty: Ty::Complex(Complex::Message),
};

/// `memo:label`: the name with the prefix brevdue writes.
pub fn name_of(c: &Child) -> String {
    format!("{}:{}", c.ns.prefix(), c.name)
}

/// The children allowed at some point, for messages: `memo:label or memo:notification`.
pub fn describe(alts: &[&Child]) -> String {
    let names: Vec<String> = alts
        .iter()
        .map(|c| format!("{}:{}", c.ns.prefix(), c.name))
        .collect();
    match names.len() {
        0 => "nothing".to_string(),
        1 => names[0].clone(),
        n => format!("{} or {}", names[..n - 1].join(", "), names[n - 1]),
    }
}

/// Looks up the declaration of a child of a complex type by expanded name (any position).
pub fn find_child(
    complex: Complex,
    version: MemoVersion,
    ns: Ns,
    name: &str,
) -> Option<&'static Child> {
    complex
        .particles(version)
        .iter()
        .flat_map(|p| p.alts.iter())
        .find(|c| c.ns == ns && c.name == name)
}
