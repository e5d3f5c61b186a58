//! html to text: html2text renders the document without decorations, after a linear
//! scan refuses nesting deep enough to make html5ever quadratic or html2text overflow
//! its stack.

use std::borrow::Cow;

use super::{DocumentFormat, ExtractError, corrupt, normalise};

/// Wide enough that html2text never wraps a line: wrapping would insert newlines that
/// are not in the source.
const HTML_WIDTH: usize = 10_000;
/// Deepest element nesting accepted in html. Real documents stay in the tens.
const HTML_MAX_DEPTH: usize = 2_000;

pub(super) fn html_to_text(html: &str) -> Result<String, ExtractError> {
    // html5ever's tree building is quadratic in nesting depth (20k nested divs take
    // seconds, 100k exceed the timeout and keep a detached worker busy for minutes) and
    // html2text recurses on it, so deep nesting is refused up front.
    if html_nesting_exceeds(html.as_bytes(), HTML_MAX_DEPTH) {
        return Err(corrupt(
            DocumentFormat::Html,
            format!("elements are nested more than {HTML_MAX_DEPTH} levels deep"),
        ));
    }
    // Plain, undecorated output: no `*emphasis*` markers, link footnotes or table
    // borders that are not part of the document's text. html2text skips the content of
    // script and style elements.
    let text = html2text::config::plain_no_decorate()
        .no_table_borders()
        .allow_width_overflow()
        .string_from_read(html.as_bytes(), HTML_WIDTH)
        .map_err(|_| {
            corrupt(
                DocumentFormat::Html,
                "the html could not be rendered to text",
            )
        })?;
    Ok(normalise(Cow::Owned(text)))
}

/// Elements that never add nesting: void elements, and elements whose end tag is
/// optional because the parser closes them implicitly (`<p>`, `<li>`, `<td>`...).
const HTML_FLAT: &[&[u8]] = &[
    b"area",
    b"base",
    b"basefont",
    b"bgsound",
    b"br",
    b"col",
    b"embed",
    b"frame",
    b"hr",
    b"img",
    b"input",
    b"keygen",
    b"link",
    b"meta",
    b"param",
    b"source",
    b"track",
    b"wbr",
    b"p",
    b"li",
    b"dt",
    b"dd",
    b"tr",
    b"td",
    b"th",
    b"thead",
    b"tbody",
    b"tfoot",
    b"option",
    b"optgroup",
    b"rb",
    b"rt",
    b"rtc",
    b"rp",
    b"colgroup",
    b"caption",
    b"html",
    b"head",
    b"body",
];
/// Elements whose content is text up to their end tag (outside svg/math).
const HTML_RAW_TEXT: &[&[u8]] = &[
    b"script",
    b"style",
    b"textarea",
    b"title",
    b"xmp",
    b"iframe",
    b"noembed",
    b"noframes",
];

/// Whether the element nesting of `html` may exceed `max`, estimated with a single
/// linear scan of the tags. It follows the tokenizer where it matters for nesting
/// (comments, raw-text elements, self-closing tags only inside svg/math) and errs
/// towards counting too deep.
pub(super) fn html_nesting_exceeds(html: &[u8], max: usize) -> bool {
    let mut depth = 0usize;
    let mut foreign = 0usize;
    let mut i = 0;
    while let Some(off) = html[i..].iter().position(|&c| c == b'<') {
        let start = i + off;
        let rest = &html[start..];
        if rest.starts_with(b"<!--") {
            i = find_ci(&html[start + 2..], b"-->").map_or(html.len(), |p| start + 2 + p + 3);
            continue;
        }
        let closing = rest.get(1) == Some(&b'/');
        let name_start = start + 1 + usize::from(closing);
        let name_len = html[name_start..]
            .iter()
            .take_while(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b':' | b'_'))
            .count();
        if name_len == 0 || !html[name_start].is_ascii_alphabetic() {
            // `<!doctype`, `<?xml`, bogus comments, or a literal `<` in text.
            i = start + 1;
            continue;
        }
        let name = html[name_start..name_start + name_len].to_ascii_lowercase();
        let tag_end = html[name_start..]
            .iter()
            .position(|&c| c == b'>')
            .map_or(html.len(), |p| name_start + p);
        let self_closing = tag_end > 0 && tag_end < html.len() && html[tag_end - 1] == b'/';
        i = (tag_end + 1).min(html.len());

        let flat = HTML_FLAT.contains(&name.as_slice());
        let is_foreign = name == b"svg" || name == b"math";
        if closing {
            if is_foreign {
                foreign = foreign.saturating_sub(1);
            }
            if !flat {
                depth = depth.saturating_sub(1);
            }
            continue;
        }
        if foreign == 0 && name == b"plaintext" {
            return false; // everything after it is text
        }
        if foreign == 0 && HTML_RAW_TEXT.contains(&name.as_slice()) {
            let mut end_tag = b"</".to_vec();
            end_tag.extend_from_slice(&name);
            i = find_ci(&html[i..], &end_tag).map_or(html.len(), |p| i + p);
            continue;
        }
        if flat || (self_closing && (foreign > 0 || is_foreign)) {
            continue;
        }
        if is_foreign {
            foreign += 1;
        }
        depth += 1;
        if depth > max {
            return true;
        }
    }
    false
}

fn find_ci(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack
        .windows(needle.len())
        .position(|w| w.eq_ignore_ascii_case(needle))
}

#[cfg(test)]
mod tests {
    use super::super::tests::limits;
    use super::super::*;
    use std::time::{Duration, Instant};

    #[test]
    fn html_drops_script_and_style() {
        let html = b"<!DOCTYPE html>\r\n<html><head><title>T</title>\
            <style>body { color: red } .SECRET-STYLE {}</style>\
            <script>var leaked = 'SECRET-SCRIPT';</script></head>\
            <body><h1>Master Agreement</h1><p>The Licensee shall pay <b>all</b> fees.</p>\
            <p>Second &amp; last paragraph, long enough that a narrow renderer would wrap it \
            onto another line if the width were small.</p></body></html>";
        let got = extract(html, "upload.bin", &limits()).expect("html");
        assert_eq!(got.format, DocumentFormat::Html);
        assert!(got.text.contains("Master Agreement"), "{:?}", got.text);
        assert!(
            got.text.contains("The Licensee shall pay all fees."),
            "{:?}",
            got.text
        );
        assert!(got.text.contains("Second & last paragraph, long enough that a narrow renderer would wrap it onto another line if the width were small."), "{:?}", got.text);
        assert!(!got.text.contains("SECRET"), "{:?}", got.text);
        assert!(!got.text.contains("color"), "{:?}", got.text);
    }

    fn nested(open: &str, close: &str, depth: usize) -> String {
        let mut html = String::from("<!doctype html><html><body>");
        html.push_str(&open.repeat(depth));
        html.push_str("deep text");
        html.push_str(&close.repeat(depth));
        html.push_str("</body></html>");
        html
    }

    #[test]
    fn deeply_nested_html_is_refused_quickly() {
        for (open, close) in [
            ("<div>", "</div>"),
            ("<b>", ""),
            ("<div/>", ""),
            ("<x-y a='>'>", ""),
        ] {
            let html = nested(open, close, 200_000);
            let started = Instant::now();
            let err = extract(html.as_bytes(), "a.html", &limits()).expect_err("too deep");
            assert!(
                matches!(&err, ExtractError::Corrupt { format: DocumentFormat::Html, detail } if detail.contains("nested")),
                "{open}: {err:?}"
            );
            assert!(started.elapsed() < Duration::from_secs(1), "{open}");
        }
    }

    #[test]
    fn wide_or_moderately_nested_html_is_accepted() {
        let cases = [
            nested("<div>", "</div>", 500),
            // Implicitly closed and void elements do not nest.
            nested("<p>x", "", 100_000),
            nested("<li>x<br>", "", 100_000),
            // Self-closing is real inside svg.
            format!(
                "<html><body><svg>{}</svg><p>deep text</p></body></html>",
                "<path d='M0 0'/>".repeat(5_000)
            ),
            // Tags inside scripts and comments are text.
            nested(
                "<script>document.write('<div>');</script><!-- <div> -->",
                "",
                5_000,
            ),
        ];
        for html in cases {
            let got = extract(html.as_bytes(), "a.html", &limits()).expect("html");
            assert!(
                got.text.contains("deep text"),
                "{:?}",
                &got.text[..got.text.len().min(200)]
            );
        }
    }
}
