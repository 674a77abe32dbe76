//! The root element's attributes, which decide the MeMo version and so the tables every other
//! element is checked against, and what the version says when a child does not fit.

use quick_xml::XmlVersion;
use quick_xml::events::BytesStart;
use quick_xml::name::ResolveResult;

use super::Parser;
use crate::memo::error::{MemoError, quote};
use crate::memo::node::RootAttrs;
use crate::memo::schema::{Child, Complex, MESSAGE, MemoVersion, Ns, Simple, name_of};
use crate::memo::sequence::Misfit;
use crate::memo::values::{self, is_xml_char};

const XSI: &str = "http://www.w3.org/2001/XMLSchema-instance";

impl Parser<'_> {
    pub(super) fn check_attributes(
        &mut self,
        e: &BytesStart,
        decl: &'static Child,
        at: usize,
    ) -> Result<(), MemoError> {
        let is_root = std::ptr::eq(decl, &MESSAGE);
        let mut version = None;
        let mut schema_version = None;
        for attr in e.attributes() {
            let attr =
                attr.map_err(|err| self.err(at, format!("not well-formed attribute: {err}")))?;
            if attr.key.as_namespace_binding().is_some() {
                continue;
            }
            let (res, local) = self.reader.resolver().resolve_attribute(attr.key);
            let local = local.into_inner();
            let place = format!("attribute {} on {}", attr.key.into_inner(), name_of(decl));
            match res {
                ResolveResult::Unbound
                    if is_root && (local == "memoVersion" || local == "memoSchVersion") =>
                {
                    let value = attr
                        .normalized_value(XmlVersion::Implicit1_0)
                        .map_err(|err| self.err(at, format!("{place}: {err}")))?
                        .into_owned();
                    if let Some(c) = value.chars().find(|c| !is_xml_char(*c)) {
                        return Err(self.err(
                            at,
                            format!(
                                "{place}: character U+{:04X} is not allowed in XML",
                                c as u32
                            ),
                        ));
                    }
                    if local == "memoVersion" {
                        version = Some(value);
                    } else {
                        schema_version = Some(value);
                    }
                }
                ResolveResult::Bound(ns) if ns.into_inner() == XSI => {
                    if !matches!(local, "schemaLocation" | "noNamespaceSchemaLocation") {
                        return Err(self.err(at, format!("{place} is not accepted (xsi:type and xsi:nil are not used by MeMo)")));
                    }
                }
                ResolveResult::Unknown(prefix) => {
                    return Err(self.err(
                        at,
                        format!("{place}: namespace prefix {prefix:?} is not declared"),
                    ));
                }
                _ => return Err(self.err(at, format!("{place} is not allowed by the schema"))),
            }
        }
        if is_root {
            self.attrs = Some(self.root_attrs(version, schema_version, at)?);
        }
        Ok(())
    }

    fn root_attrs(
        &self,
        version: Option<String>,
        schema_version: Option<String>,
        at: usize,
    ) -> Result<RootAttrs, MemoError> {
        let Some(v) = version else {
            return Err(self.err(
                at,
                "attribute memoVersion is missing: say memoVersion=\"1.1\" or \"1.2\"",
            ));
        };
        let version = match values::decimal(&v).as_deref() {
            Some("1.1") => MemoVersion::V1_1,
            Some("1.2") => MemoVersion::V1_2,
            Some(_) => {
                return Err(self.err(
                    at,
                    format!(
                        "memoVersion {} is not supported: use 1.1 or 1.2",
                        quote(&v, 20)
                    ),
                ));
            }
            None => {
                return Err(self.err(
                    at,
                    format!("memoVersion {} is not a decimal number", quote(&v, 20)),
                ));
            }
        };
        match (version, &schema_version) {
            (MemoVersion::V1_1, None) => {
                return Err(self.err(
                    at,
                    "attribute memoSchVersion is missing: MeMo 1.1 requires it (memoSchVersion=\"1.1.0\")",
                ));
            }
            (MemoVersion::V1_1, Some(s)) => {
                values::check(Simple::Text, s.clone())
                    .map_err(|p| self.err(at, format!("memoSchVersion: {p}")))?;
            }
            (MemoVersion::V1_2, Some(_)) => {
                return Err(self.err(
                    at,
                    "attribute memoSchVersion is not allowed in MeMo 1.2, which removed it: leave it out, or say memoVersion=\"1.1\"",
                ));
            }
            (MemoVersion::V1_2, None) => {}
        }
        Ok(RootAttrs {
            version,
            schema_version,
        })
    }
}

/// When a child does not fit but belongs here in the other MeMo version, say so: a 1.2 element
/// in a 1.1 message (or the reverse) is the likely mistake, not the order.
pub(super) fn version_hint(
    complex: Complex,
    version: MemoVersion,
    ns: Option<Ns>,
    local: &str,
    misfit: &Misfit,
) -> Option<String> {
    if matches!(misfit, Misfit::TooMany { .. }) {
        return None;
    }
    let ns = ns?;
    let in_this = complex
        .particles(version)
        .iter()
        .flat_map(|p| p.alts.iter())
        .any(|c| c.ns == ns && c.name == local);
    let in_other = complex
        .particles(version.other())
        .iter()
        .flat_map(|p| p.alts.iter())
        .find(|c| c.ns == ns && c.name == local)?;
    if in_this {
        return None;
    }
    Some(format!(
        "{} is part of MeMo {}, not of MeMo {version}, which this message declares (memoVersion=\"{version}\")",
        name_of(in_other),
        version.other(),
    ))
}
