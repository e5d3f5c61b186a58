//! Format sniffing: which of the accepted formats an upload is, decided from its bytes
//! (magic numbers, byte-order marks, UTF-8 validity); the file name may only tell
//! markdown from plain text and let tag soup count as html. A name never makes a
//! binary file acceptable.

use std::borrow::Cow;

use super::{DocumentFormat, ExtractError, SUPPORTED, unsupported};

pub(super) enum Sniffed<'a> {
    Text {
        text: Cow<'a, str>,
        format: DocumentFormat,
    },
    Html(Cow<'a, str>),
    Pdf,
    /// A zip archive; whether it is a docx is decided by the worker, because answering
    /// that means parsing the archive's central directory.
    Zip,
}

fn binary_content() -> ExtractError {
    unsupported(format!("binary content ({SUPPORTED})"))
}

pub(super) fn sniff<'a>(bytes: &'a [u8], name_hint: &str) -> Result<Sniffed<'a>, ExtractError> {
    if bytes.starts_with(b"%PDF-") {
        return Ok(Sniffed::Pdf);
    }
    if bytes.starts_with(b"PK\x03\x04") {
        return Ok(Sniffed::Zip);
    }
    if bytes.starts_with(b"PK\x05\x06") {
        return Err(unsupported(format!("empty zip archive ({SUPPORTED})")));
    }
    // Common formats people upload by mistake get a specific hint; everything else
    // binary falls through to the NUL / UTF-8 checks below.
    if bytes.starts_with(b"\xD0\xCF\x11\xE0\xA1\xB1\x1A\xE1") {
        return Err(unsupported(
            "legacy office file (.doc/.xls) or password-protected office file: \
             save it as an unprotected docx or pdf",
        ));
    }
    if bytes.starts_with(b"{\\rtf") {
        return Err(unsupported("rtf is not supported: save it as docx or pdf"));
    }

    let text: Cow<'a, str> = if let Some(rest) = bytes.strip_prefix(b"\xEF\xBB\xBF") {
        Cow::Borrowed(decode_utf8(rest)?)
    } else if let Some(rest) = bytes.strip_prefix(b"\xFF\xFE") {
        Cow::Owned(decode_utf16(rest, u16::from_le_bytes)?)
    } else if let Some(rest) = bytes.strip_prefix(b"\xFE\xFF") {
        Cow::Owned(decode_utf16(rest, u16::from_be_bytes)?)
    } else {
        Cow::Borrowed(decode_utf8(bytes)?)
    };
    // NUL never occurs in real text; it marks binary data that happened to decode
    // (and UTF-32, whose BOM starts like UTF-16LE's).
    if text.contains('\0') {
        return Err(binary_content());
    }

    let ext = extension(name_hint);
    if looks_like_html(&text, ext.as_deref()) {
        return Ok(Sniffed::Html(text));
    }
    let format = match ext.as_deref() {
        Some("md" | "markdown") => DocumentFormat::Markdown,
        _ => DocumentFormat::Text,
    };
    Ok(Sniffed::Text { text, format })
}

fn decode_utf8(bytes: &[u8]) -> Result<&str, ExtractError> {
    std::str::from_utf8(bytes).map_err(|_| {
        // A NUL in the data is the cheapest reliable sign of binary content; without
        // one, it is most likely text in a legacy encoding (latin-1, windows-1252).
        if bytes.contains(&0) {
            binary_content()
        } else {
            unsupported("text is not valid UTF-8: re-save it as UTF-8")
        }
    })
}

fn decode_utf16(bytes: &[u8], unit: fn([u8; 2]) -> u16) -> Result<String, ExtractError> {
    let invalid = || unsupported("text is not valid UTF-16: re-save it as UTF-8");
    if !bytes.len().is_multiple_of(2) {
        return Err(invalid());
    }
    let units = bytes.chunks_exact(2).map(|pair| unit([pair[0], pair[1]]));
    char::decode_utf16(units)
        .collect::<Result<String, _>>()
        .map_err(|_| invalid())
}

/// Lowercase extension of the hint, if any.
fn extension(name_hint: &str) -> Option<String> {
    let file = name_hint.rsplit(['/', '\\']).next().unwrap_or(name_hint);
    let (stem, ext) = file.rsplit_once('.')?;
    if stem.is_empty() && ext.is_empty() {
        return None;
    }
    Some(ext.to_ascii_lowercase())
}

fn looks_like_html(text: &str, ext: Option<&str>) -> bool {
    let trimmed = text.trim_start();
    // Only the head of the document is inspected: an html marker deep inside a text
    // file (say, a contract quoting markup) must not turn it into html.
    let head = prefix_chars(trimmed, 1024).to_ascii_lowercase();
    if trimmed.starts_with('<') && (head.contains("<!doctype html") || head.contains("<html")) {
        return true;
    }
    matches!(ext, Some("htm" | "html" | "xhtml")) && has_tags(text)
}

fn prefix_chars(s: &str, max_bytes: usize) -> &str {
    if s.len() <= max_bytes {
        return s;
    }
    let mut end = max_bytes;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// Whether the text contains something shaped like a tag: `<a`, `</a`, `<!`.
fn has_tags(text: &str) -> bool {
    let bytes = text.as_bytes();
    bytes
        .windows(2)
        .any(|w| w[0] == b'<' && (w[1].is_ascii_alphabetic() || w[1] == b'/' || w[1] == b'!'))
        && text.contains('>')
}

#[cfg(test)]
mod tests {
    use super::super::tests::limits;
    use super::super::*;

    #[test]
    fn binary_named_pdf_is_unsupported() {
        // Deterministic pseudo-random bytes (xorshift), as a stand-in for any binary.
        let mut state = 0x2545_F491_4F6C_DD1Du64;
        let random: Vec<u8> = (0..4096)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                (state >> 24) as u8
            })
            .collect();
        let mut elf = b"\x7fELF\x02\x01\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00".to_vec();
        elf.extend_from_slice(&random[..256]);
        let png = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR".to_vec();
        for bytes in [random, elf, png] {
            let err = extract(&bytes, "x.pdf", &limits()).expect_err("binary");
            let ExtractError::Unsupported { detail } = &err else {
                panic!("{err:?}")
            };
            assert!(detail.contains("binary content"), "{detail}");
        }
        let err = extract(b"\x7fELF\x02\x01\x01\x00", "x.pdf", &limits()).expect_err("elf");
        assert_eq!(
            err.to_string(),
            "not a supported document: binary content (supported: txt, md, html, pdf, docx)"
        );
        let err = extract(b"{\\rtf1\\ansi hello}", "x.docx", &limits()).expect_err("rtf");
        assert!(matches!(err, ExtractError::Unsupported { .. }));
        let err =
            extract(b"\xD0\xCF\x11\xE0\xA1\xB1\x1A\xE1rest", "x.docx", &limits()).expect_err("ole");
        assert!(matches!(err, ExtractError::Unsupported { .. }));
    }

    #[test]
    fn invalid_utf8_text_is_unsupported() {
        let latin1 = b"Agreement between M\xFCller GmbH and Caf\xE9 Ltd.";
        let err = extract(latin1, "contract.txt", &limits()).expect_err("latin-1");
        assert_eq!(
            err,
            ExtractError::Unsupported {
                detail: "text is not valid UTF-8: re-save it as UTF-8".to_owned()
            }
        );
        assert!(matches!(
            extract(b"\xFF\xFEa", "a.txt", &limits()),
            Err(ExtractError::Unsupported { .. })
        ));
        // Unpaired surrogate in UTF-16.
        assert!(matches!(
            extract(b"\xFF\xFE\x00\xD8a\x00", "a.txt", &limits()),
            Err(ExtractError::Unsupported { .. })
        ));
    }

    #[test]
    fn text_bom_crlf_markdown_and_utf16() {
        let got = extract(
            "\u{FEFF}Line one\r\nLine two\rstays\n".as_bytes(),
            "dir.v2/Notes.TXT",
            &limits(),
        )
        .expect("text");
        assert_eq!(got.format, DocumentFormat::Text);
        assert_eq!(got.text, "Line one\nLine two\rstays\n");

        let got = extract(b"# Title\r\n\r\nbody", "README.Markdown", &limits()).expect("md");
        assert_eq!(got.format, DocumentFormat::Markdown);
        assert_eq!(got.text, "# Title\n\nbody");
        assert_eq!(
            extract(b"# Title", "notes.md.txt", &limits()).map(|e| e.format),
            Ok(DocumentFormat::Text)
        );

        let mut utf16 = vec![0xFF, 0xFE];
        for unit in "Cl\u{e9}ment \u{201C}x\u{201D}\r\n".encode_utf16() {
            utf16.extend_from_slice(&unit.to_le_bytes());
        }
        let got = extract(&utf16, "a.txt", &limits()).expect("utf-16");
        assert_eq!(got.text, "Cl\u{e9}ment \u{201C}x\u{201D}\n");
        let mut utf16be = vec![0xFE, 0xFF];
        for unit in "big endian".encode_utf16() {
            utf16be.extend_from_slice(&unit.to_be_bytes());
        }
        assert_eq!(
            extract(&utf16be, "a.txt", &limits()).map(|e| e.text),
            Ok("big endian".to_owned())
        );
    }

    #[test]
    fn html_by_hint_needs_tags_and_markers_need_the_start() {
        let got = extract(b"<p>Fragment <i>only</i></p>", "page.HTM", &limits()).expect("html");
        assert_eq!(got.format, DocumentFormat::Html);
        assert_eq!(got.text.trim(), "Fragment only");
        // Same content without the hint is text: no html marker.
        assert_eq!(
            extract(b"<p>Fragment</p>", "a.txt", &limits()).map(|e| e.format),
            Ok(DocumentFormat::Text)
        );
        // An .html name without any tags stays text.
        assert_eq!(
            extract(b"just words", "a.html", &limits()).map(|e| e.format),
            Ok(DocumentFormat::Text)
        );
        // A contract that mentions <html> later on is not html.
        assert_eq!(
            extract(b"Clause 1. The site uses <html> pages.", "a.txt", &limits()).map(|e| e.format),
            Ok(DocumentFormat::Text)
        );
    }
}
