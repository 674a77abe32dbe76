//! Checks of simple-typed values, as XSD 1.0 defines the types MeMo uses: whitespace handling,
//! lexical form and facets. Each check returns the value brevdue keeps (whitespace collapsed for
//! the types whose XSD whitespace facet is "collapse") or the problem in words.

use time::format_description::well_known::Rfc3339;
use time::{Date, Month, OffsetDateTime};

use super::error::quote;
use super::rules;
use super::schema::{
    COMMENT_MAX, GLN_MAX, LANGUAGE_MAX, LICENSE_NUMBER_MAX, NOTIFICATION_MAX, NOTIFICATION_MAX_1_2,
    PNUMBER_MAX, Simple, TEXT_MAX, URI_MAX,
};

/// Characters XML 1.0 allows in a document.
pub fn is_xml_char(c: char) -> bool {
    matches!(c, '\t' | '\n' | '\r' | '\u{20}'..='\u{D7FF}' | '\u{E000}'..='\u{FFFD}' | '\u{10000}'..)
}

pub fn is_xml_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | b'\r')
}

/// XSD's "collapse": trim, and turn every inner run of whitespace into one space.
fn collapse(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for part in s.split(|c: char| c.is_ascii() && is_xml_space(c as u8)) {
        if part.is_empty() {
            continue;
        }
        if !out.is_empty() {
            out.push(' ');
        }
        out.push_str(part);
    }
    out
}

/// Most bytes a value of this type can have, to stop reading early: `None` when unbounded.
pub fn max_bytes(ty: Simple) -> Option<usize> {
    let chars = match ty {
        Simple::Text | Simple::MimeType | Simple::Filename => TEXT_MAX,
        Simple::Comment => COMMENT_MAX,
        Simple::Notification => NOTIFICATION_MAX,
        Simple::NotificationV1_2 => NOTIFICATION_MAX_1_2,
        Simple::Uri | Simple::ActionUrl => URI_MAX,
        Simple::LicenseNumber => LICENSE_NUMBER_MAX,
        Simple::Base64 => return None,
        // Short lexical forms; room for surrounding whitespace.
        _ => 64,
    };
    // 4 bytes per character at most, plus whitespace the collapsing types may drop.
    Some(chars * 4 + 1024)
}

fn max_chars(s: &str, max: usize, what: &str) -> Result<(), String> {
    let n = s.chars().count();
    if n > max {
        Err(format!(
            "{what} is {n} characters, {} over the limit of {max}",
            n - max
        ))
    } else {
        Ok(())
    }
}

/// Checks `raw` (the element's text, entities resolved, line ends normalised) against `ty`.
pub fn check(ty: Simple, raw: String) -> Result<String, String> {
    match ty {
        Simple::Text => max_chars(&raw, TEXT_MAX, "the text").map(|()| raw),
        Simple::Comment => max_chars(&raw, COMMENT_MAX, "the comment").map(|()| raw),
        Simple::Notification => max_chars(&raw, NOTIFICATION_MAX, "the notification").map(|()| raw),
        Simple::NotificationV1_2 => {
            max_chars(&raw, NOTIFICATION_MAX_1_2, "the notification").map(|()| raw)
        }
        Simple::Filename => {
            max_chars(&raw, TEXT_MAX, "the filename")?;
            rules::check_filename(&raw)?;
            Ok(raw)
        }
        Simple::LicenseNumber => {
            max_chars(&raw, LICENSE_NUMBER_MAX, "the licence number").map(|()| raw)
        }
        Simple::MessageType => match raw.as_str() {
            "DIGITALPOST" | "NEMSMS" => Ok(raw),
            _ => Err(format!(
                "{} is not a message type: use DIGITALPOST or NEMSMS",
                quote(&raw, 40)
            )),
        },
        Simple::Uuid => {
            check_uuid(&raw)?;
            Ok(raw)
        }
        Simple::MimeType => {
            max_chars(&raw, TEXT_MAX, "the encoding format")?;
            check_mime(&raw)?;
            Ok(raw)
        }
        Simple::DateTime => {
            let v = collapse(&raw);
            parse_datetime(&v)?;
            Ok(v)
        }
        Simple::Date => {
            let v = collapse(&raw);
            parse_date(&v)?;
            Ok(v)
        }
        Simple::Boolean | Simple::BooleanDefaultFalse => {
            if raw.is_empty() && ty == Simple::BooleanDefaultFalse {
                // XSD: an empty element takes the declared default.
                return Ok("false".to_string());
            }
            match collapse(&raw).as_str() {
                "true" | "1" => Ok("true".to_string()),
                "false" | "0" => Ok("false".to_string()),
                _ => Err(format!(
                    "{} is not a boolean: use true or false",
                    quote(&raw, 40)
                )),
            }
        }
        Simple::Language => {
            let v = collapse(&raw);
            let ok = !v.is_empty()
                && v.len() <= LANGUAGE_MAX
                && v.bytes().all(|b| b.is_ascii_alphabetic());
            if ok {
                Ok(v)
            } else {
                Err(format!(
                    "{} is not a language code of 1 or 2 letters (e.g. \"da\")",
                    quote(&raw, 40)
                ))
            }
        }
        Simple::Uri => {
            let v = collapse(&raw);
            max_chars(&v, URI_MAX, "the URI")?;
            Ok(v)
        }
        Simple::ActionUrl => {
            let v = collapse(&raw);
            max_chars(&v, URI_MAX, "the URI")?;
            rules::check_action_url(&v)?;
            Ok(v)
        }
        Simple::Gln => check_long(&raw, GLN_MAX, "a global location number"),
        Simple::PNumber => check_long(&raw, PNUMBER_MAX, "a production unit number"),
        // Decoded while streaming; never reaches here.
        Simple::Base64 => Ok(raw),
    }
}

fn check_long(raw: &str, max: i64, what: &str) -> Result<String, String> {
    let v = collapse(raw);
    let digits = v.strip_prefix(['+', '-']).unwrap_or(&v);
    let value = if !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()) {
        v.parse::<i64>().ok()
    } else {
        None
    };
    match value {
        Some(n) if n <= max => Ok(v),
        Some(_) => Err(format!("{} is larger than {max}", quote(raw, 40))),
        None => Err(format!("{} is not {what} (an integer)", quote(raw, 40))),
    }
}

/// `dt:memoUuidType`: 8-4-4-4-12 hexadecimal digits, version 4, RFC 4122 variant.
pub fn check_uuid(s: &str) -> Result<(), String> {
    let b = s.as_bytes();
    let shape = b.len() == 36
        && b.iter().enumerate().all(|(i, &c)| match i {
            8 | 13 | 18 | 23 => c == b'-',
            _ => c.is_ascii_hexdigit(),
        });
    if !shape {
        return Err(format!(
            "{} is not a UUID (8-4-4-4-12 hexadecimal digits)",
            quote(s, 40)
        ));
    }
    if b[14] != b'4' || !matches!(b[19], b'8' | b'9' | b'a' | b'b' | b'A' | b'B') {
        return Err(format!(
            "{} is not a random (version 4) UUID, which MeMo requires",
            quote(s, 40)
        ));
    }
    Ok(())
}

/// RFC 6838 restricted name: a letter or digit, then up to 126 of these.
fn is_mime_name(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b.len() <= 127
        && b[0].is_ascii_alphanumeric()
        && b.iter()
            .all(|&c| c.is_ascii_alphanumeric() || b"!#$&-^_.+".contains(&c))
}

fn is_token(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|c| c.is_ascii_graphic() && !b"()<>@,;:\\\"/[]?=".contains(&c))
}

/// `type/subtype`, optionally followed by `; name=value` parameters.
pub fn check_mime(s: &str) -> Result<(), String> {
    let bad = || {
        format!(
            "{} is not a MIME type (type/subtype, e.g. application/pdf)",
            quote(s, 60)
        )
    };
    let mut parts = s.split(';');
    let essence = parts.next().unwrap_or_default();
    let (ty, sub) = essence.split_once('/').ok_or_else(bad)?;
    if !is_mime_name(ty) || !is_mime_name(sub) {
        return Err(bad());
    }
    for param in parts {
        let param = param.trim_matches(|c| c == ' ' || c == '\t');
        let (name, value) = param.split_once('=').ok_or_else(bad)?;
        let quoted = value.len() >= 2 && value.starts_with('"') && value.ends_with('"');
        if !is_token(name) || !(quoted || is_token(value)) {
            return Err(bad());
        }
    }
    Ok(())
}

/// `dt:memoDateTimeType`: `YYYY-MM-DDThh:mm:ss[.fff]Z`.
pub fn parse_datetime(v: &str) -> Result<OffsetDateTime, String> {
    let b = v.as_bytes();
    let shape = b.len() >= 20
        && b[..4].iter().all(u8::is_ascii_digit)
        && b[4] == b'-'
        && b[10] == b'T'
        && b.last() == Some(&b'Z');
    if !shape {
        return Err(format!(
            "{} is not a UTC date and time (YYYY-MM-DDThh:mm:ssZ)",
            quote(v, 40)
        ));
    }
    if b.get(17..19).is_some_and(|s| s >= &b"60"[..]) {
        return Err(format!("{}: seconds must be below 60", quote(v, 40)));
    }
    OffsetDateTime::parse(v, &Rfc3339)
        .map_err(|e| format!("{} is not a valid date and time: {e}", quote(v, 40)))
}

/// `xs:date` without a time zone: `YYYY-MM-DD`.
pub fn parse_date(v: &str) -> Result<Date, String> {
    let b = v.as_bytes();
    if b.len() > 10 && b.len() <= 16 && b[..10].iter().all(|c| c.is_ascii_digit() || *c == b'-') {
        return Err(format!(
            "{}: give the date without a time zone (YYYY-MM-DD)",
            quote(v, 40)
        ));
    }
    let shape = b.len() == 10
        && b.iter().enumerate().all(|(i, &c)| match i {
            4 | 7 => c == b'-',
            _ => c.is_ascii_digit(),
        });
    if !shape {
        return Err(format!("{} is not a date (YYYY-MM-DD)", quote(v, 40)));
    }
    let num = |r: std::ops::Range<usize>| v[r].parse::<u16>().unwrap_or(0);
    let (year, month, day) = (num(0..4), num(5..7), num(8..10));
    let date = Month::try_from(month as u8)
        .ok()
        .filter(|_| year > 0)
        .and_then(|m| Date::from_calendar_date(i32::from(year), m, day as u8).ok());
    date.ok_or_else(|| format!("{} is not a date in the calendar", quote(v, 40)))
}

/// The canonical value of an `xs:decimal` ("01.10" is "1.1"), or `None` if it is not one.
pub fn decimal(raw: &str) -> Option<String> {
    let v = raw.trim_matches(|c: char| c.is_ascii() && is_xml_space(c as u8));
    let (neg, v) = match v.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, v.strip_prefix('+').unwrap_or(v)),
    };
    let (int, frac) = v.split_once('.').unwrap_or((v, ""));
    let digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    if (int.is_empty() && frac.is_empty()) || !digits(int) || !digits(frac) {
        return None;
    }
    let int = int.trim_start_matches('0');
    let frac = frac.trim_end_matches('0');
    let mut out = String::new();
    if neg && !(int.is_empty() && frac.is_empty()) {
        out.push('-');
    }
    out.push_str(if int.is_empty() { "0" } else { int });
    if !frac.is_empty() {
        out.push('.');
        out.push_str(frac);
    }
    Some(out)
}

pub fn format_date(d: Date) -> String {
    format!("{:04}-{:02}-{:02}", d.year(), u8::from(d.month()), d.day())
}

pub fn format_datetime(t: OffsetDateTime) -> String {
    // Rfc3339 cannot fail for a UTC time with a four-digit year, which is all parse accepts.
    t.to_offset(time::UtcOffset::UTC)
        .format(&Rfc3339)
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(ty: Simple, s: &str) -> String {
        check(ty, s.to_string()).unwrap()
    }

    fn err(ty: Simple, s: &str) -> String {
        check(ty, s.to_string()).unwrap_err()
    }

    #[test]
    fn text_lengths_count_characters() {
        assert_eq!(ok(Simple::Text, &"æ".repeat(256)), "æ".repeat(256));
        assert_eq!(
            err(Simple::Text, &"x".repeat(260)),
            "the text is 260 characters, 4 over the limit of 256"
        );
        assert!(err(Simple::Notification, &"x".repeat(151)).contains("limit of 150"));
        // Strings keep their whitespace.
        assert_eq!(ok(Simple::Text, "  a  "), "  a  ");
    }

    #[test]
    fn uuids_are_version_4_in_either_case() {
        ok(Simple::Uuid, "8C2EA15D-61FB-4BA9-9366-42F8B194C114");
        ok(Simple::Uuid, "6f1c7d1e-4b1a-4c55-9d6e-0a1b2c3d4e5f");
        assert!(err(Simple::Uuid, "6f1c7d1e-4b1a-1c55-9d6e-0a1b2c3d4e5f").contains("version 4"));
        assert!(err(Simple::Uuid, "6f1c7d1e-4b1a-4c55-7d6e-0a1b2c3d4e5f").contains("version 4"));
        assert!(err(Simple::Uuid, " 6f1c7d1e-4b1a-4c55-9d6e-0a1b2c3d4e5f").contains("not a UUID"));
        assert!(err(Simple::Uuid, "nope").contains("not a UUID"));
    }

    #[test]
    fn booleans_dates_and_times() {
        assert_eq!(ok(Simple::Boolean, " 1 "), "true");
        assert_eq!(ok(Simple::BooleanDefaultFalse, ""), "false");
        assert!(err(Simple::Boolean, "").contains("not a boolean"));
        assert!(err(Simple::BooleanDefaultFalse, "yes").contains("not a boolean"));
        assert_eq!(ok(Simple::Date, " 2025-09-15\n"), "2025-09-15");
        assert!(err(Simple::Date, "2025-02-30").contains("calendar"));
        assert!(err(Simple::Date, "2025-09-15Z").contains("time zone"));
        assert!(err(Simple::Date, "2025-09-15+01:00").contains("time zone"));
        assert!(err(Simple::Date, "15-09-2025").contains("not a date"));
        ok(Simple::DateTime, "2018-05-03T12:00:00Z");
        ok(Simple::DateTime, "2018-05-03T12:00:00.250Z");
        assert!(err(Simple::DateTime, "2018-05-03T12:00:00+01:00").contains("UTC"));
        assert!(err(Simple::DateTime, "2018-05-03 12:00:00Z").contains("UTC"));
        assert!(err(Simple::DateTime, "2018-05-03T25:00:00Z").contains("not a valid"));
        assert!(err(Simple::DateTime, "2018-05-03T23:59:60Z").contains("below 60"));
        let t = parse_datetime("2018-05-03T12:00:00.25Z").unwrap();
        assert_eq!(parse_datetime(&format_datetime(t)).unwrap(), t);
    }

    #[test]
    fn decimals_are_canonical() {
        assert_eq!(decimal("1.1").as_deref(), Some("1.1"));
        assert_eq!(decimal(" 01.10 ").as_deref(), Some("1.1"));
        assert_eq!(decimal("+1.2").as_deref(), Some("1.2"));
        assert_eq!(decimal("1").as_deref(), Some("1"));
        assert_eq!(decimal(".5").as_deref(), Some("0.5"));
        assert_eq!(decimal("-0.0").as_deref(), Some("0"));
        assert_eq!(decimal("1.1.0"), None);
        assert_eq!(decimal("."), None);
        assert_eq!(decimal("v1"), None);
    }

    #[test]
    fn mime_types_languages_numbers() {
        ok(Simple::MimeType, "application/pdf");
        ok(Simple::MimeType, "text/plain; charset=utf-8");
        ok(
            Simple::MimeType,
            "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
        );
        for bad in [
            "pdf",
            "application/",
            "/pdf",
            "application/pdf; x",
            " text/plain",
            "a/b c",
        ] {
            assert!(
                err(Simple::MimeType, bad).contains("not a MIME type"),
                "{bad}"
            );
        }
        assert_eq!(ok(Simple::Language, " da "), "da");
        assert!(err(Simple::Language, "dan").contains("1 or 2 letters"));
        assert_eq!(ok(Simple::Gln, "5798000012345"), "5798000012345");
        assert!(err(Simple::Gln, "99999999999999").contains("larger"));
        assert!(err(Simple::PNumber, "12a").contains("integer"));
        assert!(err(Simple::PNumber, "99999999999999999999").contains("integer"));
        assert!(err(Simple::MessageType, "digitalpost").contains("DIGITALPOST or NEMSMS"));
    }
}
