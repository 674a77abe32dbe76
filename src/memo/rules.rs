//! Digital Post's production rules beyond the XSD, in force since 10 September 2025 for both
//! MeMo 1.1 and 1.2 (announced by Digitaliseringsstyrelsen on digitaliser.dk, "Øget validering
//! af filnavne og URI i Actions", 15 November 2024): filenames without the characters listed in
//! [`FORBIDDEN_IN_FILENAMES`], and Action addresses (`EntryPoint/url`) absolute `https` URLs.
//! Production refuses a message that breaks either, so the gateway refuses it at the door, where
//! the sender can still fix it, instead of at hand-off.
//!
//! Also here: the media types Digital Post accepts, the default of `limits.allowed_media_types`.

/// Characters Digital Post refuses in a filename: the ones Windows does not allow in file names,
/// the line breaks, and the Unicode space characters that look like a plain space but are not.
pub const FORBIDDEN_IN_FILENAMES: &[(char, &str)] = &[
    ('<', "less-than sign"),
    ('>', "greater-than sign"),
    (':', "colon"),
    ('"', "quotation mark"),
    ('/', "slash"),
    ('\\', "backslash"),
    ('|', "vertical bar"),
    ('?', "question mark"),
    ('*', "asterisk"),
    ('\r', "carriage return"),
    ('\n', "line feed"),
    ('\u{00A0}', "no-break space"),
    ('\u{2000}', "en quad"),
    ('\u{2001}', "em quad"),
    ('\u{2002}', "en space"),
    ('\u{2003}', "em space"),
    ('\u{2004}', "three-per-em space"),
    ('\u{2005}', "four-per-em space"),
    ('\u{2006}', "six-per-em space"),
    ('\u{2007}', "figure space"),
    ('\u{2008}', "punctuation space"),
    ('\u{2009}', "thin space"),
    ('\u{200A}', "hair space"),
    ('\u{2028}', "line separator"),
    ('\u{205F}', "medium mathematical space"),
    ('\u{2060}', "word joiner"),
    ('\u{3000}', "ideographic space"),
];

/// The media types Digital Post accepts for documents: PDF, plain text, HTML, XML, Word, Excel,
/// the OpenDocument text, spreadsheet and presentation formats, and the common image formats
/// (after Digitaliseringsstyrelsen's "Tilladte filtyper i Digital Post").
pub const DIGITAL_POST_MEDIA_TYPES: &[&str] = &[
    "application/pdf",
    "text/plain",
    "text/html",
    "application/xml",
    "text/xml",
    "application/msword",
    "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
    "application/vnd.ms-excel",
    "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    "application/vnd.oasis.opendocument.text",
    "application/vnd.oasis.opendocument.spreadsheet",
    "application/vnd.oasis.opendocument.presentation",
    "image/jpeg",
    "image/png",
    "image/gif",
    "image/tiff",
    "image/bmp",
];

/// A filename Digital Post accepts: none of [`FORBIDDEN_IN_FILENAMES`].
pub fn check_filename(name: &str) -> Result<(), String> {
    for (i, c) in name.chars().enumerate() {
        if let Some((_, what)) = FORBIDDEN_IN_FILENAMES.iter().find(|(f, _)| *f == c) {
            return Err(format!(
                "filename has a {what} (U+{:04X}) at character {}: Digital Post refuses filenames with < > : \" / \\ | ? *, line breaks or special spaces",
                c as u32,
                i + 1
            ));
        }
    }
    Ok(())
}

/// An Action address Digital Post accepts: an absolute URL with scheme `https` and a host.
pub fn check_action_url(url: &str) -> Result<(), String> {
    let refuse = |why: &str| {
        Err(format!(
            "action URL {} {why}: Digital Post requires absolute https:// addresses",
            super::error::quote(url, 60)
        ))
    };
    let Some((scheme, rest)) = url.split_once(':') else {
        return refuse("is not absolute");
    };
    if !scheme.eq_ignore_ascii_case("https") {
        return if scheme.eq_ignore_ascii_case("http") {
            refuse("uses http")
        } else if scheme.is_empty()
            || !scheme
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c))
        {
            refuse("is not absolute")
        } else {
            refuse("has another scheme than https")
        };
    }
    let Some(after) = rest.strip_prefix("//") else {
        return refuse("has no host");
    };
    let authority = after.split(['/', '?', '#']).next().unwrap_or_default();
    let host = authority.rsplit('@').next().unwrap_or_default();
    let host = match host.strip_prefix('[') {
        // An IPv6 literal: the port comes after the bracket.
        Some(v6) => v6.split(']').next().unwrap_or_default(),
        None => host.split(':').next().unwrap_or_default(),
    };
    if host.is_empty() {
        return refuse("has no host");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_forbidden_character_is_refused_and_named() {
        for (c, what) in FORBIDDEN_IN_FILENAMES {
            let name = format!("brev{c}1.pdf");
            let e = check_filename(&name).unwrap_err();
            assert!(e.contains(what), "{e}");
            assert!(e.contains(&format!("U+{:04X}", *c as u32)), "{e}");
            assert!(e.contains("at character 5"), "{e}");
        }
    }

    #[test]
    fn ordinary_names_pass_spaces_and_danish_letters_included() {
        for ok in [
            "brev.pdf",
            "Årsopgørelse 2025.pdf",
            "a-b_c (1).docx",
            "x\u{200B}y.txt",
        ] {
            assert_eq!(check_filename(ok), Ok(()), "{ok}");
        }
    }

    #[test]
    fn action_urls_must_be_absolute_https() {
        for ok in [
            "https://borger.dk",
            "HTTPS://example.dk/a?b=c#d",
            "https://user@host.dk:8443/x",
            "https://[2001:db8::1]/",
        ] {
            assert_eq!(check_action_url(ok), Ok(()), "{ok}");
        }
        for (bad, why) in [
            ("http://borger.dk", "uses http"),
            ("/relative/path", "is not absolute"),
            ("borger.dk", "is not absolute"),
            ("ftp://borger.dk", "another scheme"),
            ("https:borger.dk", "no host"),
            ("https:///path", "no host"),
            ("https://user@:443/", "no host"),
        ] {
            let e = check_action_url(bad).unwrap_err();
            assert!(e.contains(why), "{bad}: {e}");
        }
    }
}
