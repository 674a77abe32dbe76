//! The content models as tables, for MeMo 1.1 and 1.2: for every complex element, its children
//! in order with their cardinalities and types. The versions share every table but four:
//! 1.2 adds `memo:Representative` to `memo:Sender` and `originalRepresentative` to
//! `memo:ForwardData`, makes `mandatory` and `legalNotification` optional, and allows
//! notifications of 160 characters. `schemas/` holds the same models as XSD, one set per
//! version; `xsd_check` compares the two.

use super::schema::{Child, Complex, MemoVersion, Ns, Particle, Simple, Ty, UNBOUNDED};

macro_rules! child {
    ($ns:ident $name:literal $kind:ident $ty:ident) => {
        Child {
            ns: Ns::$ns,
            name: $name,
            ty: Ty::$kind($kind::$ty),
        }
    };
}

/// `el!(min max Ns "name" Simple|Complex Type)`.
macro_rules! el {
    ($min:literal $max:tt $ns:ident $name:literal $kind:ident $ty:ident) => {
        Particle {
            alts: &[child!($ns $name $kind $ty)],
            min: $min,
            max: el!(@max $max),
        }
    };
    (@max n) => {
        UNBOUNDED
    };
    (@max $max:literal) => {
        $max
    };
}

/// Shorthands for the common cases: required and optional text in the MeMo namespace.
macro_rules! text {
    (1 $name:literal) => {
        el!(1 1 Memo $name Simple Text)
    };
    (? $name:literal) => {
        el!(0 1 Memo $name Simple Text)
    };
}

const MESSAGE_P: &[Particle] = &[
    el!(1 1 Memo "MessageHeader" Complex MessageHeader),
    el!(0 1 Memo "MessageBody" Complex MessageBody),
];

const MESSAGE_HEADER_P: &[Particle] = &[
    el!(1 1 Memo "messageType" Simple MessageType),
    el!(1 1 Memo "messageUUID" Simple Uuid),
    text!(? "messageID"),
    text!(? "messageCode"),
    text!(1 "label"),
    el!(0 1 Memo "notification" Simple Notification),
    text!(? "additionalNotification"),
    el!(0 1 Memo "reply" Simple BooleanDefaultFalse),
    el!(0 1 Memo "replyByDateTime" Simple DateTime),
    el!(0 1 Memo "doNotDeliverUntilDate" Simple Date),
    el!(1 1 Memo "mandatory" Simple BooleanDefaultFalse),
    el!(1 1 Memo "legalNotification" Simple BooleanDefaultFalse),
    text!(? "postType"),
    el!(1 1 Memo "Sender" Complex Sender),
    el!(1 1 Memo "Recipient" Complex Recipient),
    el!(0 1 Memo "ContentData" Complex ContentData),
    el!(0 1 Memo "ForwardData" Complex ForwardData),
    el!(0 n Memo "ReplyData" Complex ReplyData),
];

/// MeMo 1.2: `mandatory` and `legalNotification` may be left out (false); longer notifications.
const MESSAGE_HEADER_P_1_2: &[Particle] = &[
    el!(1 1 Memo "messageType" Simple MessageType),
    el!(1 1 Memo "messageUUID" Simple Uuid),
    text!(? "messageID"),
    text!(? "messageCode"),
    text!(1 "label"),
    el!(0 1 Memo "notification" Simple NotificationV1_2),
    text!(? "additionalNotification"),
    el!(0 1 Memo "reply" Simple BooleanDefaultFalse),
    el!(0 1 Memo "replyByDateTime" Simple DateTime),
    el!(0 1 Memo "doNotDeliverUntilDate" Simple Date),
    el!(0 1 Memo "mandatory" Simple BooleanDefaultFalse),
    el!(0 1 Memo "legalNotification" Simple BooleanDefaultFalse),
    text!(? "postType"),
    el!(1 1 Memo "Sender" Complex Sender),
    el!(1 1 Memo "Recipient" Complex Recipient),
    el!(0 1 Memo "ContentData" Complex ContentData),
    el!(0 1 Memo "ForwardData" Complex ForwardData),
    el!(0 n Memo "ReplyData" Complex ReplyData),
];

const SENDER_P: &[Particle] = &[
    text!(1 "senderID"),
    text!(1 "idType"),
    text!(? "idTypeLabel"),
    text!(1 "label"),
    el!(0 1 Memo "AttentionData" Complex AttentionData),
    el!(0 1 Memo "ContactPoint" Complex ContactPoint),
];

/// MeMo 1.2: a Representative may send on the sender's behalf.
const SENDER_P_1_2: &[Particle] = &[
    text!(1 "senderID"),
    text!(1 "idType"),
    text!(? "idTypeLabel"),
    text!(1 "label"),
    el!(0 1 Memo "AttentionData" Complex AttentionData),
    el!(0 1 Memo "ContactPoint" Complex ContactPoint),
    el!(0 1 Memo "Representative" Complex Representative),
];

/// `memo:Representative` (MeMo 1.2 only): every part optional.
const REPRESENTATIVE_P: &[Particle] = &[
    text!(? "representativeID"),
    text!(? "idType"),
    text!(? "idTypeLabel"),
    text!(? "label"),
];

const RECIPIENT_P: &[Particle] = &[
    text!(1 "recipientID"),
    text!(1 "idType"),
    text!(? "idTypeLabel"),
    text!(? "label"),
    el!(0 1 Memo "AttentionData" Complex AttentionData),
    el!(0 1 Memo "ContactPoint" Complex ContactPoint),
];

const ATTENTION_DATA_P: &[Particle] = &[
    el!(0 1 Memo "AttentionPerson" Complex AttentionPerson),
    el!(0 1 Grd "ProductionUnit" Complex GrdProductionUnit),
    el!(0 1 Gln "GlobalLocationNumber" Complex GlnGlobalLocationNumber),
    el!(0 1 Memo "EMail" Complex EMail),
    el!(0 1 Grd "SEnumber" Complex GrdSeNumber),
    el!(0 1 Memo "Telephone" Complex Telephone),
    el!(0 1 Grd "EID" Complex GrdEid),
    el!(0 1 Memo "ContentResponsible" Complex ContentResponsible),
    el!(0 1 Memo "GeneratingSystem" Complex GeneratingSystem),
    el!(0 1 Sor "SORdata" Complex SorData),
    el!(0 1 Grd "Address" Complex GrdAddress),
    el!(0 1 Grd "UnstructuredAddress" Complex GrdUnstructuredAddress),
];

const ATTENTION_PERSON_P: &[Particle] = &[text!(? "personID"), text!(? "label")];
const EMAIL_P: &[Particle] = &[text!(1 "emailAddress"), text!(? "relatedAgent")];
const TELEPHONE_P: &[Particle] = &[text!(1 "telephoneNumber"), text!(? "relatedAgent")];
const CONTENT_RESPONSIBLE_P: &[Particle] = &[text!(? "contentResponsibleID"), text!(? "label")];
const GENERATING_SYSTEM_P: &[Particle] = &[text!(1 "generatingSystemID"), text!(? "label")];

const CONTACT_POINT_P: &[Particle] = &[
    text!(? "contactGroup"),
    text!(1 "contactPointID"),
    text!(? "label"),
    el!(0 2 Memo "ContactInfo" Complex ContactInfo),
];
const CONTACT_INFO_P: &[Particle] = &[text!(1 "label"), text!(1 "value")];

const CONTENT_DATA_P: &[Particle] = &[
    el!(0 1 Grd "CPRdata" Complex GrdCprData),
    el!(0 1 Grd "CVRdata" Complex GrdCvrData),
    el!(0 1 Dmv "MotorVehicle" Complex DmvMotorVehicle),
    el!(0 1 Grd "PropertyNumber" Complex GrdPropertyNumber),
    el!(0 1 Memo "CaseID" Complex CaseId),
    el!(0 1 Kle "KLEdata" Complex KleData),
    el!(0 1 Form "FORMdata" Complex FormData),
    el!(0 1 Grd "ProductionUnit" Complex GrdProductionUnit),
    el!(0 1 Udd "Education" Complex UddEducation),
    el!(0 1 Grd "Address" Complex GrdAddress),
    el!(0 1 Grd "UnstructuredAddress" Complex GrdUnstructuredAddress),
    el!(0 10 Memo "AdditionalContentData" Complex AdditionalContentData),
];
const CASE_ID_P: &[Particle] = &[text!(1 "caseID"), text!(1 "caseSystem")];
const ADDITIONAL_CONTENT_DATA_P: &[Particle] = &[
    text!(? "contentDataType"),
    text!(1 "contentDataName"),
    text!(1 "contentDataValue"),
];

const FORWARD_DATA_P: &[Particle] = &[
    el!(1 1 Memo "messageUUID" Simple Uuid),
    el!(1 1 Memo "originalMessageDateTime" Simple DateTime),
    text!(1 "originalSender"),
    text!(? "originalContentResponsible"),
    text!(? "contactPointID"),
    el!(0 1 Memo "comment" Simple Comment),
];

/// MeMo 1.2: the original Representative of a forwarded message.
const FORWARD_DATA_P_1_2: &[Particle] = &[
    el!(1 1 Memo "messageUUID" Simple Uuid),
    el!(1 1 Memo "originalMessageDateTime" Simple DateTime),
    text!(1 "originalSender"),
    text!(? "originalContentResponsible"),
    text!(? "originalRepresentative"),
    text!(? "contactPointID"),
    el!(0 1 Memo "comment" Simple Comment),
];

const REPLY_DATA_P: &[Particle] = &[
    text!(? "messageID"),
    el!(1 1 Memo "messageUUID" Simple Uuid),
    el!(0 1 Memo "replyUUID" Simple Uuid),
    text!(? "senderID"),
    text!(? "recipientID"),
    text!(? "caseID"),
    text!(? "contactPointID"),
    text!(? "generatingSystemID"),
    el!(0 1 Memo "comment" Simple Comment),
    el!(0 4 Memo "AdditionalReplyData" Complex AdditionalReplyData),
];
const ADDITIONAL_REPLY_DATA_P: &[Particle] = &[text!(1 "label"), text!(1 "value")];

const MESSAGE_BODY_P: &[Particle] = &[
    el!(1 1 Memo "createdDateTime" Simple DateTime),
    el!(1 1 Memo "MainDocument" Complex MainDocument),
    el!(0 n Memo "AdditionalDocument" Complex AdditionalDocument),
    el!(0 n Memo "TechnicalDocument" Complex TechnicalDocument),
];
const MAIN_DOCUMENT_P: &[Particle] = &[
    text!(? "mainDocumentID"),
    text!(? "label"),
    el!(1 n Memo "File" Complex File),
    el!(0 n Memo "Action" Complex Action),
];
const ADDITIONAL_DOCUMENT_P: &[Particle] = &[
    text!(? "additionalDocumentID"),
    text!(? "label"),
    el!(1 n Memo "File" Complex File),
    el!(0 n Memo "Action" Complex Action),
];
const TECHNICAL_DOCUMENT_P: &[Particle] = &[
    text!(? "technicalDocumentID"),
    text!(? "label"),
    el!(1 n Memo "File" Complex File),
];
const FILE_P: &[Particle] = &[
    el!(1 1 Memo "encodingFormat" Simple MimeType),
    el!(1 1 Memo "filename" Simple Filename),
    el!(1 1 Memo "language" Simple Language),
    el!(1 1 Memo "content" Simple Base64),
];
const ACTION_P: &[Particle] = &[
    text!(1 "label"),
    text!(1 "actionCode"),
    el!(0 1 Memo "startDateTime" Simple DateTime),
    el!(0 1 Memo "endDateTime" Simple DateTime),
    Particle {
        alts: &[
            child!(Memo "Reservation" Complex Reservation),
            child!(Memo "EntryPoint" Complex EntryPoint),
        ],
        min: 0,
        max: 1,
    },
];
const RESERVATION_P: &[Particle] = &[
    text!(1 "description"),
    el!(1 1 Memo "reservationUUID" Simple Uuid),
    text!(1 "abstract"),
    text!(1 "location"),
    el!(1 1 Memo "startDateTime" Simple DateTime),
    el!(1 1 Memo "endDateTime" Simple DateTime),
    text!(? "organizerMail"),
    text!(? "organizerName"),
];
const ENTRY_POINT_P: &[Particle] = &[el!(1 1 Memo "url" Simple ActionUrl)];

const GRD_ADDRESS_P: &[Particle] = &[
    el!(0 1 Grd "id" Simple Text),
    el!(0 1 Grd "addressLabel" Simple Text),
    el!(0 1 Grd "houseNumber" Simple Text),
    el!(0 1 Grd "door" Simple Text),
    el!(0 1 Grd "floor" Simple Text),
    el!(0 1 Grd "co" Simple Text),
    el!(0 1 Grd "zipCode" Simple Text),
    el!(0 1 Grd "city" Simple Text),
    el!(0 1 Grd "country" Simple Text),
    el!(0 1 Grd "AddressPoint" Complex GrdAddressPoint),
];
const GRD_ADDRESS_POINT_P: &[Particle] = &[
    el!(0 1 Grd "geographicEastingMeasure" Simple Text),
    el!(0 1 Grd "geographicNorthingMeasure" Simple Text),
    el!(0 1 Grd "geographicHeightMeasure" Simple Text),
];
const GRD_UNSTRUCTURED_ADDRESS_P: &[Particle] = &[el!(1 1 Grd "unstructured" Simple Text)];
const GRD_CPR_DATA_P: &[Particle] = &[
    el!(1 1 Grd "cprNumber" Simple Text),
    el!(0 1 Grd "name" Simple Text),
];
const GRD_CVR_DATA_P: &[Particle] = &[
    el!(1 1 Grd "cvrNumber" Simple Text),
    el!(0 1 Grd "companyName" Simple Text),
];
const GRD_EID_P: &[Particle] = &[
    el!(1 1 Grd "eID" Simple Text),
    el!(0 1 Grd "label" Simple Text),
];
const GRD_PRODUCTION_UNIT_P: &[Particle] = &[
    el!(1 1 Grd "productionUnitNumber" Simple PNumber),
    el!(0 1 Grd "productionUnitName" Simple Text),
];
const GRD_SE_NUMBER_P: &[Particle] = &[
    el!(1 1 Grd "seNumber" Simple Text),
    el!(0 1 Grd "companyName" Simple Text),
];
const GRD_PROPERTY_NUMBER_P: &[Particle] = &[el!(1 1 Grd "propertyNumber" Simple Text)];
const DMV_MOTOR_VEHICLE_P: &[Particle] = &[
    el!(1 1 Dmv "licenseNumber" Simple LicenseNumber),
    el!(0 1 Dmv "chassisNumber" Simple Text),
];
const FORM_DATA_P: &[Particle] = &[
    el!(1 1 Form "taskKey" Simple Text),
    el!(1 1 Form "version" Simple Text),
    el!(0 1 Form "activityFacet" Simple Text),
    el!(1 1 Form "label" Simple Text),
];
const GLN_P: &[Particle] = &[
    el!(1 1 Gln "globalLocationNumber" Simple Gln),
    el!(0 1 Gln "location" Simple Text),
];
const KLE_DATA_P: &[Particle] = &[
    el!(1 1 Kle "subjectKey" Simple Text),
    el!(1 1 Kle "version" Simple Text),
    el!(0 1 Kle "activityFacet" Simple Text),
    el!(1 1 Kle "label" Simple Text),
];
const SOR_DATA_P: &[Particle] = &[
    el!(1 1 Sor "sorIdentifier" Simple Text),
    el!(0 1 Sor "entryName" Simple Text),
];
const UDD_EDUCATION_P: &[Particle] = &[
    el!(1 1 Udd "educationCode" Simple Text),
    el!(0 1 Udd "educationName" Simple Text),
];

impl Complex {
    /// The content model in `version`: the children in order.
    pub fn particles(self, version: MemoVersion) -> &'static [Particle] {
        use MemoVersion::{V1_1, V1_2};
        match (self, version) {
            (Complex::MessageHeader, V1_1) => MESSAGE_HEADER_P,
            (Complex::MessageHeader, V1_2) => MESSAGE_HEADER_P_1_2,
            (Complex::Sender, V1_1) => SENDER_P,
            (Complex::Sender, V1_2) => SENDER_P_1_2,
            (Complex::ForwardData, V1_1) => FORWARD_DATA_P,
            (Complex::ForwardData, V1_2) => FORWARD_DATA_P_1_2,
            // Never reached from a 1.1 Sender, so its table is the same in both versions.
            (Complex::Representative, _) => REPRESENTATIVE_P,
            (other, _) => other.shared_particles(),
        }
    }

    /// The tables both versions share.
    fn shared_particles(self) -> &'static [Particle] {
        match self {
            Complex::Message => MESSAGE_P,
            Complex::MessageHeader => MESSAGE_HEADER_P,
            Complex::Sender => SENDER_P,
            Complex::Representative => REPRESENTATIVE_P,
            Complex::Recipient => RECIPIENT_P,
            Complex::AttentionData => ATTENTION_DATA_P,
            Complex::AttentionPerson => ATTENTION_PERSON_P,
            Complex::EMail => EMAIL_P,
            Complex::Telephone => TELEPHONE_P,
            Complex::ContentResponsible => CONTENT_RESPONSIBLE_P,
            Complex::GeneratingSystem => GENERATING_SYSTEM_P,
            Complex::ContactPoint => CONTACT_POINT_P,
            Complex::ContactInfo => CONTACT_INFO_P,
            Complex::ContentData => CONTENT_DATA_P,
            Complex::CaseId => CASE_ID_P,
            Complex::AdditionalContentData => ADDITIONAL_CONTENT_DATA_P,
            Complex::ForwardData => FORWARD_DATA_P,
            Complex::ReplyData => REPLY_DATA_P,
            Complex::AdditionalReplyData => ADDITIONAL_REPLY_DATA_P,
            Complex::MessageBody => MESSAGE_BODY_P,
            Complex::MainDocument => MAIN_DOCUMENT_P,
            Complex::AdditionalDocument => ADDITIONAL_DOCUMENT_P,
            Complex::TechnicalDocument => TECHNICAL_DOCUMENT_P,
            Complex::File => FILE_P,
            Complex::Action => ACTION_P,
            Complex::Reservation => RESERVATION_P,
            Complex::EntryPoint => ENTRY_POINT_P,
            Complex::GrdAddress => GRD_ADDRESS_P,
            Complex::GrdAddressPoint => GRD_ADDRESS_POINT_P,
            Complex::GrdUnstructuredAddress => GRD_UNSTRUCTURED_ADDRESS_P,
            Complex::GrdCprData => GRD_CPR_DATA_P,
            Complex::GrdCvrData => GRD_CVR_DATA_P,
            Complex::GrdEid => GRD_EID_P,
            Complex::GrdProductionUnit => GRD_PRODUCTION_UNIT_P,
            Complex::GrdSeNumber => GRD_SE_NUMBER_P,
            Complex::GrdPropertyNumber => GRD_PROPERTY_NUMBER_P,
            Complex::DmvMotorVehicle => DMV_MOTOR_VEHICLE_P,
            Complex::FormData => FORM_DATA_P,
            Complex::GlnGlobalLocationNumber => GLN_P,
            Complex::KleData => KLE_DATA_P,
            Complex::SorData => SOR_DATA_P,
            Complex::UddEducation => UDD_EDUCATION_P,
        }
    }
}
