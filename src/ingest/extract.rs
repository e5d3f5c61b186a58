//! Document text extraction: turns an uploaded file (txt, md, html, pdf, docx) into the
//! plain text that the rest of the ingest pipeline chunks, indexes and cites.
//!
//! The format is sniffed from the content (magic bytes); the file name is only a hint used
//! to tell markdown from plain text and to accept tag soup as html. A name never makes a
//! binary file acceptable.
//!
//! Character offsets computed downstream point into [`Extracted::text`], so the only
//! normalisation applied is `\r\n` → `\n` (plus dropping a byte-order mark).
//!
//! Hostile input is expected: sizes are checked before parsing, docx archives are checked
//! for decompression bombs before and while inflating, and every parser-backed format
//! (html, pdf, docx) runs on a dedicated worker thread under `catch_unwind` with a
//! timeout, because `pdf-extract`/`lopdf` can panic or spin on malformed files.
//!
//! What this module must not do: log document text or file names (both are tenant
//! content; logs carry only formats, sizes and durations), and know anything about
//! tenants, storage or HTTP. Errors carry no document content either, so callers may show
//! or log them as they are.

use std::borrow::Cow;
use std::fmt;
use std::io::{Cursor, Read};
use std::panic::{self, AssertUnwindSafe};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Arc, Mutex, Once};
use std::thread;
use std::time::{Duration, Instant};

use quick_xml::events::Event;

/// Formats the appliance accepts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DocumentFormat {
    Text,
    Markdown,
    Html,
    Pdf,
    Docx,
}

impl DocumentFormat {
    /// MIME type of the original upload.
    pub fn content_type(self) -> &'static str {
        match self {
            DocumentFormat::Text => "text/plain",
            DocumentFormat::Markdown => "text/markdown",
            DocumentFormat::Html => "text/html",
            DocumentFormat::Pdf => "application/pdf",
            DocumentFormat::Docx => {
                "application/vnd.openxmlformats-officedocument.wordprocessingml.document"
            }
        }
    }

    /// Short lowercase name, as used in error messages and logs.
    pub fn as_str(self) -> &'static str {
        match self {
            DocumentFormat::Text => "text",
            DocumentFormat::Markdown => "markdown",
            DocumentFormat::Html => "html",
            DocumentFormat::Pdf => "pdf",
            DocumentFormat::Docx => "docx",
        }
    }
}

impl fmt::Display for DocumentFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Resource limits for one extraction.
#[derive(Clone, Debug)]
pub struct ExtractLimits {
    /// Largest accepted upload, checked before any parsing.
    pub max_file_bytes: u64,
    /// Largest total a docx may inflate to (declared sizes of all entries, and bytes
    /// actually inflated).
    pub max_decompressed_bytes: u64,
    /// Largest accepted uncompressed/compressed ratio of a docx entry. Entries smaller
    /// than [`RATIO_GRACE_BYTES`] are exempt, since tiny XML parts compress very well.
    pub max_compression_ratio: u64,
    /// Wall-clock budget for parsing one document.
    pub timeout: Duration,
}

impl Default for ExtractLimits {
    fn default() -> Self {
        ExtractLimits {
            max_file_bytes: 50 * 1024 * 1024,
            max_decompressed_bytes: 200 * 1024 * 1024,
            max_compression_ratio: 100,
            timeout: Duration::from_secs(30),
        }
    }
}

/// Entries that inflate to less than this are not subject to the ratio check: the
/// absolute limits already bound them, and small XML parts legitimately reach high ratios.
pub const RATIO_GRACE_BYTES: u64 = 1024 * 1024;

/// Result of a successful extraction.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Extracted {
    /// Format detected from the content.
    pub format: DocumentFormat,
    /// Plain text, `\r\n` normalised to `\n`; never empty or whitespace-only.
    pub text: String,
}

/// Why a document could not be turned into text. Messages never contain document content.
#[derive(thiserror::Error, Debug, Clone, PartialEq, Eq)]
pub enum ExtractError {
    #[error("document is empty: upload a file with text in it")]
    Empty,
    #[error(
        "document is {bytes} bytes, over the limit of {limit} bytes: split it into smaller files"
    )]
    TooLarge { bytes: u64, limit: u64 },
    #[error("not a supported document: {detail}")]
    Unsupported { detail: String },
    #[error("{format} file is corrupt or unreadable: {detail}")]
    Corrupt {
        format: DocumentFormat,
        detail: String,
    },
    #[error("docx rejected as a possible decompression bomb: {detail}")]
    DecompressionBomb { detail: String },
    #[error(
        "extraction timed out after {seconds} s: the file may be malformed; re-save or re-export it and try again"
    )]
    Timeout { seconds: u64 },
    #[error("{}", no_text_message(*format))]
    NoText { format: DocumentFormat },
}

fn no_text_message(format: DocumentFormat) -> String {
    match format {
        DocumentFormat::Pdf => {
            "pdf has no text layer (scanned image?): run OCR before uploading".to_owned()
        }
        other => format!("{other} file contains no text"),
    }
}

const SUPPORTED: &str = "supported: txt, md, html, pdf, docx";
const DOCX_MAIN_PART: &str = "word/document.xml";
/// Wide enough that html2text never wraps a line: wrapping would insert newlines that
/// are not in the source.
const HTML_WIDTH: usize = 10_000;
const WORKER_NAME: &str = "bulkhead-extract";
/// Generous stack for parser recursion (html2text and lopdf recurse on nesting); it is
/// virtual memory, committed only as used.
const WORKER_STACK_BYTES: usize = 64 * 1024 * 1024;

/// Sniffs the content (magic bytes, never trusting the extension; the name hint may only
/// disambiguate text vs markdown) and extracts plain text.
///
/// Blocking and CPU-bound (up to `limits.timeout`): call it from a blocking context
/// (e.g. `tokio::task::spawn_blocking`), not from an async task.
pub fn extract(
    bytes: &[u8],
    name_hint: &str,
    limits: &ExtractLimits,
) -> Result<Extracted, ExtractError> {
    let started = Instant::now();
    let result = extract_inner(bytes, name_hint, limits);
    // Only sizes, formats and durations are logged: names and text are tenant content.
    match &result {
        Ok(done) => tracing::debug!(
            format = done.format.as_str(),
            input_bytes = bytes.len(),
            text_bytes = done.text.len(),
            elapsed_ms = started.elapsed().as_millis() as u64,
            "document text extracted"
        ),
        Err(err) => tracing::debug!(
            input_bytes = bytes.len(),
            elapsed_ms = started.elapsed().as_millis() as u64,
            error = %err,
            "document text extraction failed"
        ),
    }
    result
}

fn extract_inner(
    bytes: &[u8],
    name_hint: &str,
    limits: &ExtractLimits,
) -> Result<Extracted, ExtractError> {
    if bytes.is_empty() {
        return Err(ExtractError::Empty);
    }
    let len = bytes.len() as u64;
    if len > limits.max_file_bytes {
        return Err(ExtractError::TooLarge {
            bytes: len,
            limit: limits.max_file_bytes,
        });
    }

    let (format, text) = match sniff(bytes, name_hint)? {
        Sniffed::Text { text, format } => {
            // Plain text needs no third-party parser, so it runs inline: linear time,
            // no copy of the upload, no thread.
            (format, normalise(text))
        }
        Sniffed::Html(text) => {
            let html = text.into_owned();
            let out = run_isolated(DocumentFormat::Html, limits.timeout, move || {
                html_to_text(&html)
            })?;
            (DocumentFormat::Html, out)
        }
        Sniffed::Pdf => {
            let owned = bytes.to_vec();
            let out = run_isolated(DocumentFormat::Pdf, limits.timeout, move || {
                pdf_to_text(&owned)
            })?;
            (DocumentFormat::Pdf, out)
        }
        Sniffed::Zip => {
            let owned = bytes.to_vec();
            let docx_limits = limits.clone();
            let out = run_isolated(DocumentFormat::Docx, limits.timeout, move || {
                docx_to_text(&owned, &docx_limits)
            })?;
            (DocumentFormat::Docx, out)
        }
    };

    if text.trim().is_empty() {
        return Err(match format {
            DocumentFormat::Text | DocumentFormat::Markdown => ExtractError::Empty,
            other => ExtractError::NoText { format: other },
        });
    }
    Ok(Extracted { format, text })
}

// ---------------------------------------------------------------------------------------
// Sniffing
// ---------------------------------------------------------------------------------------

enum Sniffed<'a> {
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

fn unsupported(detail: impl Into<String>) -> ExtractError {
    ExtractError::Unsupported {
        detail: detail.into(),
    }
}

fn binary_content() -> ExtractError {
    unsupported(format!("binary content ({SUPPORTED})"))
}

fn sniff<'a>(bytes: &'a [u8], name_hint: &str) -> Result<Sniffed<'a>, ExtractError> {
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

fn normalise(text: Cow<'_, str>) -> String {
    if text.contains("\r\n") {
        text.replace("\r\n", "\n")
    } else {
        text.into_owned()
    }
}

// ---------------------------------------------------------------------------------------
// Isolation: worker thread, panic capture, timeout
// ---------------------------------------------------------------------------------------

/// Runs `job` on a dedicated thread, converting a panic into `Corrupt` and a job that
/// outlives `timeout` into `Timeout`.
///
/// Limitation: Rust cannot kill a thread. On timeout the worker is detached and keeps
/// running (and holding its copy of the document and CPU) until the parser returns on
/// its own; its result is then dropped. Callers should bound the number of concurrent
/// extractions so that a stream of hostile files cannot pile up stuck workers. A stack
/// overflow, an abort or an out-of-memory inside a parser is not catchable and takes the
/// process down: the known recursion hazards are refused up front ([`pdf_preflight`],
/// [`html_nesting_exceeds`]) and the worker stack is large, but only a separate process
/// with resource limits would contain the rest.
fn run_isolated<F>(
    format: DocumentFormat,
    timeout: Duration,
    job: F,
) -> Result<String, ExtractError>
where
    F: FnOnce() -> Result<String, ExtractError> + Send + 'static,
{
    install_quiet_panic_hook();
    // The job sits in a shared slot rather than being moved into the closure, so that
    // it can still be run inline if the OS refuses to start a thread.
    let slot = Arc::new(Mutex::new(Some(job)));
    let worker_slot = Arc::clone(&slot);
    // Capacity 1 so the worker's send never blocks, even after we stopped listening.
    let (tx, rx) = mpsc::sync_channel(1);
    let spawned = thread::Builder::new()
        .name(WORKER_NAME.to_owned())
        .stack_size(WORKER_STACK_BYTES)
        .spawn(move || {
            let outcome =
                panic::catch_unwind(AssertUnwindSafe(|| take_job(&worker_slot).map(|job| job())));
            // The receiver is gone if we timed out; nothing left to do then.
            let _ = tx.send(outcome);
        });
    if let Err(err) = spawned {
        // The OS refused a thread (resource exhaustion, possibly stuck workers). Refusing
        // the document would blame the file; running inline keeps the panic guard and
        // loses only the timeout, under conditions that are already exceptional.
        tracing::warn!(error = %err, "could not start extraction worker; extracting inline");
        return match panic::catch_unwind(AssertUnwindSafe(|| take_job(&slot).map(|job| job()))) {
            Ok(Some(result)) => result,
            Ok(None) | Err(_) => Err(crashed(format)),
        };
    }

    match rx.recv_timeout(timeout) {
        Ok(Ok(Some(result))) => result,
        // The slot was empty: cannot happen, the job is taken exactly once.
        Ok(Ok(None)) => Err(crashed(format)),
        Ok(Err(_payload)) => {
            // The payload is dropped unread: panic messages from parsers can quote
            // document bytes.
            tracing::warn!(format = format.as_str(), "document parser panicked");
            Err(crashed(format))
        }
        Err(RecvTimeoutError::Timeout) => {
            tracing::warn!(
                format = format.as_str(),
                timeout_s = timeout.as_secs_f64(),
                "document extraction timed out; worker thread left running detached"
            );
            Err(ExtractError::Timeout {
                seconds: timeout.as_secs_f64().ceil() as u64,
            })
        }
        // Only reachable if the worker died without unwinding through catch_unwind.
        Err(RecvTimeoutError::Disconnected) => Err(crashed(format)),
    }
}

fn take_job<F>(slot: &Mutex<Option<F>>) -> Option<F> {
    // A poisoned lock only means another holder panicked; the Option is still sound.
    slot.lock()
        .unwrap_or_else(|poison| poison.into_inner())
        .take()
}

fn crashed(format: DocumentFormat) -> ExtractError {
    ExtractError::Corrupt {
        format,
        detail: "the parser crashed on this file; re-save or re-export it and try again".to_owned(),
    }
}

/// Silences the default panic report for extraction workers only.
///
/// The default hook prints the panic message to stderr, and parser panic messages can
/// quote document bytes (e.g. `unwrap()` on a `FromUtf8Error`), which would end up in
/// the service logs. Panics on every other thread are passed to the previous hook
/// unchanged. Installed once per process; an application that later sets its own hook
/// replaces this filter.
fn install_quiet_panic_hook() {
    static INSTALL: Once = Once::new();
    INSTALL.call_once(|| {
        let previous = panic::take_hook();
        panic::set_hook(Box::new(move |info| {
            if thread::current().name() == Some(WORKER_NAME) {
                // Location only: file and line of the parser, no message.
                let location = info
                    .location()
                    .map(|l| format!("{}:{}", l.file(), l.line()))
                    .unwrap_or_default();
                tracing::warn!(%location, "panic in document parser (message suppressed)");
            } else {
                previous(info);
            }
        }));
    });
}

// ---------------------------------------------------------------------------------------
// Format parsers (run on the worker thread)
// ---------------------------------------------------------------------------------------

/// Deepest element nesting accepted in html. Real documents stay in the tens.
const HTML_MAX_DEPTH: usize = 2_000;

fn html_to_text(html: &str) -> Result<String, ExtractError> {
    // html5ever's tree building is quadratic in nesting depth (20k nested divs take
    // seconds, 100k exceed the timeout and keep a detached worker busy for minutes) and
    // html2text recurses on it, so deep nesting is refused up front.
    if html_nesting_exceeds(html.as_bytes(), HTML_MAX_DEPTH) {
        return Err(ExtractError::Corrupt {
            format: DocumentFormat::Html,
            detail: format!("elements are nested more than {HTML_MAX_DEPTH} levels deep"),
        });
    }
    // Plain, undecorated output: no `*emphasis*` markers, link footnotes or table
    // borders that are not part of the document's text. html2text skips the content of
    // script and style elements.
    let text = html2text::config::plain_no_decorate()
        .no_table_borders()
        .allow_width_overflow()
        .string_from_read(html.as_bytes(), HTML_WIDTH)
        .map_err(|_| ExtractError::Corrupt {
            format: DocumentFormat::Html,
            detail: "the html could not be rendered to text".to_owned(),
        })?;
    Ok(normalise(Cow::Owned(text)))
}

/// Same steps as `pdf_extract::extract_text_from_mem`, with [`pdf_preflight`] between
/// loading and text extraction.
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
fn html_nesting_exceeds(html: &[u8], max: usize) -> bool {
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

fn pdf_to_text(bytes: &[u8]) -> Result<String, ExtractError> {
    let pdf_err = |e| pdf_error(pdf_extract::OutputError::PdfError(e));
    let mut doc = pdf_extract::Document::load_mem(bytes).map_err(pdf_err)?;
    if doc.is_encrypted() {
        // Many pdfs are "encrypted" with an empty user password (permissions only).
        doc.decrypt("").map_err(pdf_err)?;
    }
    pdf_preflight(&doc)?;
    let mut text = String::new();
    {
        let mut output = pdf_extract::PlainTextOutput::new(&mut text);
        pdf_extract::output_doc(&doc, &mut output).map_err(pdf_error)?;
    }
    Ok(normalise(Cow::Owned(text)))
}

/// Page-tree parent links followed before a chain is declared broken (lopdf uses the
/// same bound for the page tree's depth).
const PDF_MAX_PARENT_HOPS: usize = 256;
/// Nesting of form XObjects (`Do` inside a form drawn with `Do`); real files use a few.
const PDF_MAX_FORM_DEPTH: usize = 32;
/// Form XObject invocations across the whole document, counting repeats.
const PDF_MAX_FORM_INVOCATIONS: u64 = 100_000;

fn pdf_corrupt(detail: &str) -> ExtractError {
    ExtractError::Corrupt {
        format: DocumentFormat::Pdf,
        detail: detail.to_owned(),
    }
}

/// Rejects structures on which pdf-extract recurses or loops without bound, found by
/// walking the document the way `pdf_extract::output_doc` will.
///
/// These cannot be left to the timeout: a form XObject that draws itself recurses until
/// the worker's stack overflows, which aborts the whole process (not catchable), and a
/// cycle in the page tree's `Parent` links makes its inherited-attribute lookup spin
/// forever in a detached worker. Forms that fan out (each drawing the next one several
/// times) expand exponentially, so invocations are counted, with per-form memoisation to
/// keep this check linear.
fn pdf_preflight(doc: &pdf_extract::Document) -> Result<(), ExtractError> {
    let mut walk = FormWalk {
        doc,
        stack: Vec::new(),
        memo: std::collections::HashMap::new(),
        budget: PDF_MAX_FORM_INVOCATIONS,
    };
    for page_id in doc.page_iter() {
        let Ok(page) = doc.get_dictionary(page_id) else {
            continue;
        };
        let resources = inherited_resources(doc, page)?;
        if xobjects(doc, resources).is_none() {
            continue; // nothing a `Do` could draw: skip decoding the content
        }
        // pdf-extract panics on an unreadable page content (a crash, reported as
        // Corrupt); the preflight only has to cover what it would walk successfully.
        let Ok(content) = doc.get_page_content(page_id) else {
            continue;
        };
        walk.content(&content, resources, 0)?;
    }
    Ok(())
}

/// The page's `Resources`, inherited through `Parent` links like pdf-extract does;
/// fails on a `Parent` cycle.
fn inherited_resources<'a>(
    doc: &'a pdf_extract::Document,
    page: &'a pdf_extract::Dictionary,
) -> Result<Option<&'a pdf_extract::Dictionary>, ExtractError> {
    let mut found = None;
    let mut seen = Vec::new();
    let mut node = page;
    loop {
        if found.is_none() {
            found = deref_dict(doc, node.get(b"Resources").ok());
        }
        let Ok(parent_id) = node
            .get(b"Parent")
            .and_then(pdf_extract::Object::as_reference)
        else {
            return Ok(found);
        };
        if seen.contains(&parent_id) || seen.len() >= PDF_MAX_PARENT_HOPS {
            return Err(pdf_corrupt("its page tree loops back on itself"));
        }
        seen.push(parent_id);
        match doc.get_dictionary(parent_id) {
            Ok(parent) => node = parent,
            Err(_) => return Ok(found),
        }
    }
}

fn deref_dict<'a>(
    doc: &'a pdf_extract::Document,
    obj: Option<&'a pdf_extract::Object>,
) -> Option<&'a pdf_extract::Dictionary> {
    match obj? {
        pdf_extract::Object::Reference(id) => doc.get_object(*id).ok()?.as_dict().ok(),
        other => other.as_dict().ok(),
    }
}

fn xobjects<'a>(
    doc: &'a pdf_extract::Document,
    resources: Option<&'a pdf_extract::Dictionary>,
) -> Option<&'a pdf_extract::Dictionary> {
    resources.and_then(|r| deref_dict(doc, r.get(b"XObject").ok()))
}

struct FormWalk<'a> {
    doc: &'a pdf_extract::Document,
    /// Forms being drawn, outermost first.
    stack: Vec<pdf_extract::ObjectId>,
    /// Invocations inside a form that has its own resources (so its expansion does not
    /// depend on the caller).
    memo: std::collections::HashMap<pdf_extract::ObjectId, u64>,
    budget: u64,
}

impl<'a> FormWalk<'a> {
    fn spend(&mut self, n: u64) -> Result<(), ExtractError> {
        self.budget = self
            .budget
            .checked_sub(n)
            .ok_or_else(|| pdf_corrupt("its form objects expand to an unreasonable size"))?;
        Ok(())
    }

    fn content(
        &mut self,
        content: &[u8],
        resources: Option<&'a pdf_extract::Dictionary>,
        depth: usize,
    ) -> Result<(), ExtractError> {
        let Some(xobjects) = xobjects(self.doc, resources) else {
            return Ok(()); // nothing a `Do` could draw
        };
        // Undecodable content makes pdf-extract panic (reported as Corrupt) before it
        // could recurse, so there is nothing to check here.
        let Ok(content) = pdf_extract::content::Content::decode(content) else {
            return Ok(());
        };
        for op in content.operations.iter().filter(|op| op.operator == "Do") {
            let Some(name) = op.operands.first().and_then(|o| o.as_name().ok()) else {
                continue;
            };
            let Ok(pdf_extract::Object::Reference(id)) = xobjects.get(name) else {
                continue;
            };
            let id = *id;
            let Ok(pdf_extract::Object::Stream(form)) = self.doc.get_object(id) else {
                continue;
            };
            self.spend(1)?;
            if self.stack.contains(&id) {
                return Err(pdf_corrupt(
                    "a form object draws itself (endless recursion)",
                ));
            }
            if depth + 1 > PDF_MAX_FORM_DEPTH {
                return Err(pdf_corrupt("its form objects are nested too deeply"));
            }
            let own = deref_dict(self.doc, form.dict.get(b"Resources").ok());
            if own.is_some()
                && let Some(&inside) = self.memo.get(&id)
            {
                self.spend(inside)?;
                continue;
            }
            // Same decoding as pdf-extract's get_contents.
            let body = if form.filters().is_ok() {
                form.decompressed_content()
                    .unwrap_or_else(|_| form.content.clone())
            } else {
                form.content.clone()
            };
            let before = self.budget;
            self.stack.push(id);
            self.content(&body, own.or(resources), depth + 1)?;
            self.stack.pop();
            if own.is_some() {
                self.memo.insert(id, before - self.budget);
            }
        }
        Ok(())
    }
}

/// Maps a pdf-extract error to a fixed description. The library's own messages are not
/// passed on: some quote dictionary keys or strings taken from the file.
fn pdf_error(err: pdf_extract::OutputError) -> ExtractError {
    use pdf_extract::Error as Pdf;
    use pdf_extract::encryption::DecryptionError;

    let detail = match err {
        pdf_extract::OutputError::PdfError(inner) => match inner {
            Pdf::Decryption(DecryptionError::IncorrectPassword)
            | Pdf::InvalidPassword
            | Pdf::UnsupportedSecurityHandler(_) => {
                return unsupported(
                    "pdf is password-protected: remove the password and upload it again",
                );
            }
            Pdf::Decryption(_) => "its encryption settings could not be read",
            Pdf::Parse(_) | Pdf::IndirectObject { .. } | Pdf::ObjectIdMismatch => {
                "its structure could not be parsed (truncated or damaged file?)"
            }
            Pdf::Xref(_) | Pdf::MissingXrefEntry | Pdf::InvalidOffset(_) => {
                "its cross-reference table is damaged (truncated file?)"
            }
            Pdf::Decompress(_) => "a compressed stream could not be decoded",
            Pdf::Unimplemented(_) => "it uses a pdf feature the extractor does not support",
            _ => "its content could not be read",
        },
        pdf_extract::OutputError::FormatError(_) | pdf_extract::OutputError::IoError(_) => {
            "its text could not be assembled"
        }
    };
    ExtractError::Corrupt {
        format: DocumentFormat::Pdf,
        detail: detail.to_owned(),
    }
}

fn docx_corrupt(detail: impl Into<String>) -> ExtractError {
    ExtractError::Corrupt {
        format: DocumentFormat::Docx,
        detail: detail.into(),
    }
}

fn bomb(detail: impl Into<String>) -> ExtractError {
    ExtractError::DecompressionBomb {
        detail: detail.into(),
    }
}

fn docx_to_text(bytes: &[u8], limits: &ExtractLimits) -> Result<String, ExtractError> {
    let mut archive = zip::ZipArchive::new(Cursor::new(bytes))
        .map_err(|_| docx_corrupt("not a readable zip archive (truncated or damaged file?)"))?;
    let Some(main_index) = archive.index_for_name(DOCX_MAIN_PART) else {
        return Err(unsupported(format!(
            "zip archive that is not a word document ({SUPPORTED})"
        )));
    };

    // Declared sizes come from the central directory and cost nothing to check, so a
    // bomb is refused before a single byte is inflated. Every entry counts, not only the
    // part we read, so that limits do not depend on which parts this module happens to
    // use.
    let mut declared_total: u64 = 0;
    for index in 0..archive.len() {
        let entry = archive
            .by_index_data(index)
            .map_err(|_| docx_corrupt("the zip directory is damaged"))?;
        let size = entry.size();
        declared_total = declared_total.saturating_add(size);
        check_ratio(size, entry.compressed_size(), limits, "declares")?;
    }
    if declared_total > limits.max_decompressed_bytes {
        return Err(bomb(format!(
            "entries declare {declared_total} bytes uncompressed, over the limit of {} bytes",
            limits.max_decompressed_bytes
        )));
    }

    let mut entry = archive.by_index(main_index).map_err(|_| {
        docx_corrupt(
            "the main document part cannot be opened (encrypted or unsupported compression?)",
        )
    })?;
    if entry.encrypted() {
        return Err(unsupported(
            "docx is password-protected: remove the password and upload it again",
        ));
    }
    let declared = entry.size();
    let compressed = entry.compressed_size();
    // Headers can lie, so the declared size is also enforced on the bytes actually
    // inflated: read at most one byte past it and treat that byte as proof of a lie.
    // (zip 9 enforces the same bound itself and reports it as an InvalidData error;
    // both paths end in DecompressionBomb.)
    let forged =
        || bomb("the main document part inflates past its declared size (forged zip header)");
    let mut xml = Vec::with_capacity(usize::try_from(declared.min(16 * 1024 * 1024)).unwrap_or(0));
    (&mut entry)
        .take(declared.saturating_add(1))
        .read_to_end(&mut xml)
        .map_err(|err| {
            if err.kind() == std::io::ErrorKind::InvalidData
                && err.to_string().contains("larger than its declared")
            {
                forged()
            } else {
                docx_corrupt("the main document part cannot be decompressed (damaged file?)")
            }
        })?;
    let inflated = xml.len() as u64;
    if inflated > declared {
        return Err(forged());
    }
    check_ratio(inflated, compressed, limits, "inflates to")?;
    drop(entry);

    document_xml_to_text(&xml)
}

fn check_ratio(
    size: u64,
    compressed: u64,
    limits: &ExtractLimits,
    verb: &str,
) -> Result<(), ExtractError> {
    if size <= RATIO_GRACE_BYTES {
        return Ok(());
    }
    let ratio = size / compressed.max(1);
    if ratio > limits.max_compression_ratio {
        return Err(bomb(format!(
            "an entry {verb} {size} bytes from {compressed} compressed (ratio {ratio}, limit {})",
            limits.max_compression_ratio
        )));
    }
    Ok(())
}

/// Pulls the visible text out of WordprocessingML: `w:t` runs, `w:tab` → tab, `w:br` and
/// `w:cr` → newline, end of `w:p` → newline.
///
/// Elements are matched by local name so that unusual namespace prefixes still work.
/// `w:tab`/`w:br` count only inside a run, because `w:tab` also appears in paragraph
/// properties as a tab-stop definition. `mc:Fallback` is skipped: it repeats the content
/// of its `mc:Choice` sibling (text boxes would otherwise appear twice). Deleted text
/// (`w:delText`) and field codes (`w:instrText`) are not `w:t`, so they are left out.
fn document_xml_to_text(xml: &[u8]) -> Result<String, ExtractError> {
    let mut reader = quick_xml::Reader::from_reader(xml);
    let mut out = String::with_capacity(xml.len() / 4);
    let mut in_text = false;
    let mut run_depth: usize = 0;
    let mut skip_depth: usize = 0;
    let not_xml = |reader: &quick_xml::Reader<&[u8]>| {
        docx_corrupt(format!(
            "the main document part is not well-formed xml (at byte {})",
            reader.error_position()
        ))
    };

    loop {
        let event = reader.read_event().map_err(|_| not_xml(&reader))?;
        match event {
            Event::Eof => break,
            Event::Start(e) => {
                let name = e.local_name();
                let name = name.as_ref();
                if name == b"Fallback" {
                    skip_depth += 1;
                } else if skip_depth == 0 {
                    match name {
                        b"t" => in_text = true,
                        b"r" => run_depth += 1,
                        _ => push_run_content(&mut out, name, run_depth),
                    }
                }
            }
            Event::End(e) => {
                let name = e.local_name();
                let name = name.as_ref();
                if name == b"Fallback" {
                    skip_depth = skip_depth.saturating_sub(1);
                } else if skip_depth == 0 {
                    match name {
                        b"t" => in_text = false,
                        b"r" => run_depth = run_depth.saturating_sub(1),
                        b"p" => out.push('\n'),
                        _ => {}
                    }
                }
            }
            Event::Empty(e) if skip_depth == 0 => {
                let name = e.local_name();
                match name.as_ref() {
                    b"p" => out.push('\n'),
                    other => push_run_content(&mut out, other, run_depth),
                }
            }
            Event::Text(e) if in_text && skip_depth == 0 => {
                let text = e.xml10_content().map_err(|_| not_xml(&reader))?;
                out.push_str(&text);
            }
            Event::CData(e) if in_text && skip_depth == 0 => {
                let text = e.decode().map_err(|_| not_xml(&reader))?;
                out.push_str(&text);
            }
            Event::GeneralRef(e) if in_text && skip_depth == 0 => {
                if let Some(ch) = e.resolve_char_ref().map_err(|_| not_xml(&reader))? {
                    out.push(ch);
                } else {
                    let name = e.decode().map_err(|_| not_xml(&reader))?;
                    // Only the five predefined entities exist in docx (no DTDs); an
                    // unknown one is dropped rather than failing the whole document.
                    if let Some(value) = quick_xml::escape::resolve_xml_entity(&name) {
                        out.push_str(value);
                    }
                }
            }
            _ => {}
        }
    }
    Ok(normalise(Cow::Owned(out)))
}

/// Characters produced by empty run-level elements.
fn push_run_content(out: &mut String, local_name: &[u8], run_depth: usize) {
    if run_depth == 0 {
        return;
    }
    match local_name {
        b"tab" | b"ptab" => out.push('\t'),
        b"br" | b"cr" => out.push('\n'),
        b"noBreakHyphen" => out.push('-'),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::path::{Path, PathBuf};

    const CUAD: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/data/eval/cuad-dev");

    /// (file-name prefix, phrase from the parties field of contracts.json)
    const PDF_PHRASES: &[(&str, &str)] = &[
        ("ADAPTIMMUNE", "Anderson Cancer Center"),
        ("ADUROBIOTECH", "IREYA"),
        ("AFSALA", "Amsterdam Federal Savings"),
        ("AMERICANPHYSICIANS", "Cheeseman"),
        ("ARMSTRONG", "AFI Licensing"),
        ("ASPIRITY", "Redwater"),
        ("AlliedEsports", "WPT Enterprises"),
        ("Apollo", "Establishment Labs"),
        ("BANUESTRA", "El Banco Financial"),
        ("BELLICUM", "Miltenyi Biotec"),
        ("BIOAMBER", "Cargill"),
        ("BOLIVAR", "YourNetPlus"),
    ];

    fn limits() -> ExtractLimits {
        ExtractLimits::default()
    }

    /// Lowercase, whitespace collapsed: pdf text layout differs from the .txt version.
    fn squash(s: &str) -> String {
        s.split_whitespace()
            .collect::<Vec<_>>()
            .join(" ")
            .to_lowercase()
    }

    fn pdf_paths() -> Vec<PathBuf> {
        let mut paths: Vec<PathBuf> = std::fs::read_dir(Path::new(CUAD).join("pdf"))
            .expect("cuad-dev pdf directory")
            .map(|e| e.expect("dir entry").path())
            .filter(|p| p.extension().is_some_and(|e| e.eq_ignore_ascii_case("pdf")))
            .collect();
        paths.sort();
        paths
    }

    fn first_pdf() -> Vec<u8> {
        let path = pdf_paths().into_iter().next().expect("at least one pdf");
        std::fs::read(path).expect("read pdf")
    }

    #[test]
    fn real_pdfs_contain_party_names() {
        let paths = pdf_paths();
        assert_eq!(
            paths.len(),
            PDF_PHRASES.len(),
            "expected the 12 cuad-dev pdfs"
        );
        let mut total = Duration::ZERO;
        for path in &paths {
            let file = path
                .file_name()
                .and_then(|n| n.to_str())
                .expect("utf-8 name");
            let (_, phrase) = PDF_PHRASES
                .iter()
                .find(|(prefix, _)| file.starts_with(prefix))
                .unwrap_or_else(|| panic!("no phrase for {file}"));
            let stem = path.file_stem().and_then(|s| s.to_str()).expect("stem");
            let txt = std::fs::read_to_string(
                Path::new(CUAD)
                    .join("contracts")
                    .join(format!("{stem}.txt")),
            )
            .expect("matching .txt");
            let phrase = squash(phrase);
            assert!(squash(&txt).contains(&phrase), "phrase not in {stem}.txt");

            let bytes = std::fs::read(path).expect("read pdf");
            let started = Instant::now();
            let got = extract(&bytes, file, &limits()).expect("pdf extracts");
            let elapsed = started.elapsed();
            total += elapsed;
            eprintln!(
                "pdf {:>8} bytes -> {:>7} chars in {:>6.1} ms  {file}",
                bytes.len(),
                got.text.chars().count(),
                elapsed.as_secs_f64() * 1000.0
            );
            assert_eq!(got.format, DocumentFormat::Pdf);
            assert!(!got.text.contains("\r\n"));
            assert!(
                squash(&got.text).contains(&phrase),
                "{phrase:?} missing from {file}"
            );
        }
        eprintln!(
            "12 pdfs extracted in {:.1} ms total",
            total.as_secs_f64() * 1000.0
        );
    }

    #[test]
    fn txt_named_file_that_is_a_pdf_is_treated_as_pdf() {
        let got = extract(&first_pdf(), "contract.txt", &limits()).expect("pdf extracts");
        assert_eq!(got.format, DocumentFormat::Pdf);
        assert!(squash(&got.text).contains("anderson cancer center"));
    }

    #[test]
    fn truncated_pdf_is_corrupt_or_no_text_within_timeout() {
        let bytes = first_pdf();
        let mut limits = limits();
        limits.timeout = Duration::from_secs(10);
        for cut in [bytes.len() * 3 / 10, 1024, 9] {
            let started = Instant::now();
            let err = extract(&bytes[..cut], "x.pdf", &limits).expect_err("truncated pdf");
            assert!(
                matches!(
                    err,
                    ExtractError::Corrupt {
                        format: DocumentFormat::Pdf,
                        ..
                    } | ExtractError::NoText {
                        format: DocumentFormat::Pdf
                    }
                ),
                "cut at {cut}: {err:?}"
            );
            assert!(started.elapsed() < limits.timeout);
        }
    }

    #[test]
    fn pdf_without_text_layer_is_no_text() {
        // A valid one-page pdf whose page has no content stream, like a scan whose image
        // was stripped: there is nothing to extract.
        let pdf = minimal_pdf("");
        assert_eq!(
            extract(&pdf, "scan.pdf", &limits()).map(|e| e.text),
            Err(ExtractError::NoText {
                format: DocumentFormat::Pdf
            })
        );
        let msg = ExtractError::NoText {
            format: DocumentFormat::Pdf,
        }
        .to_string();
        assert_eq!(
            msg,
            "pdf has no text layer (scanned image?): run OCR before uploading"
        );
    }

    #[test]
    fn minimal_pdf_with_text_extracts() {
        let pdf = minimal_pdf("BT /F1 12 Tf 72 720 Td (MARKER-PDF-7731) Tj ET");
        let got = extract(&pdf, "", &limits()).expect("pdf extracts");
        assert!(got.text.contains("MARKER-PDF-7731"), "{:?}", got.text);
    }

    /// Builds a one-page pdf with a correct xref table.
    fn minimal_pdf(content: &str) -> Vec<u8> {
        pdf_from(&[
            "<< /Type /Catalog /Pages 2 0 R >>".to_owned(),
            "<< /Type /Pages /Kids [3 0 R] /Count 1 >>".to_owned(),
            "<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R \
             /Resources << /Font << /F1 5 0 R >> >> >>"
                .to_owned(),
            pdf_stream("", content),
            "<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>".to_owned(),
        ])
    }

    fn pdf_stream(dict: &str, content: &str) -> String {
        format!(
            "<< {dict} /Length {} >>\nstream\n{content}\nendstream",
            content.len() + 1
        )
    }

    /// Objects are numbered from 1 in order; object 1 must be the catalog.
    fn pdf_from(objects: &[String]) -> Vec<u8> {
        let mut out = b"%PDF-1.4\n".to_vec();
        let mut offsets = Vec::new();
        for (i, body) in objects.iter().enumerate() {
            offsets.push(out.len());
            out.extend_from_slice(format!("{} 0 obj\n{body}\nendobj\n", i + 1).as_bytes());
        }
        let xref = out.len();
        out.extend_from_slice(format!("xref\n0 {}\n", objects.len() + 1).as_bytes());
        out.extend_from_slice(b"0000000000 65535 f \n");
        for off in offsets {
            out.extend_from_slice(format!("{off:010} 00000 n \n").as_bytes());
        }
        out.extend_from_slice(
            format!(
                "trailer\n<< /Size {} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n",
                objects.len() + 1
            )
            .as_bytes(),
        );
        out
    }

    fn assert_pdf_corrupt(pdf: &[u8], wanted: &str) {
        let started = Instant::now();
        let err = extract(pdf, "a.pdf", &limits()).expect_err("hostile pdf");
        assert!(
            matches!(&err, ExtractError::Corrupt { format: DocumentFormat::Pdf, detail } if detail.contains(wanted)),
            "{err:?}"
        );
        assert!(started.elapsed() < Duration::from_secs(2));
    }

    #[test]
    fn pdf_form_that_draws_itself_is_rejected_not_a_stack_overflow() {
        // Without the preflight this ~600-byte file overflows the worker's stack, which
        // aborts the whole process.
        let pdf = pdf_from(&[
            "<< /Type /Catalog /Pages 2 0 R >>".to_owned(),
            "<< /Type /Pages /Kids [3 0 R] /Count 1 >>".to_owned(),
            "<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R \
             /Resources << /XObject << /X1 5 0 R >> >> >>"
                .to_owned(),
            pdf_stream("", "/X1 Do"),
            pdf_stream(
                "/Type /XObject /Subtype /Form /BBox [0 0 10 10] \
                 /Resources << /XObject << /X1 5 0 R >> >>",
                "/X1 Do",
            ),
        ]);
        assert_pdf_corrupt(&pdf, "draws itself");
    }

    #[test]
    fn pdf_forms_fanning_out_exponentially_are_rejected() {
        // Form k draws form k+1 twice: 2^25 invocations if extracted naively, within
        // the depth limit.
        let forms = 25;
        let mut objects = vec![
            "<< /Type /Catalog /Pages 2 0 R >>".to_owned(),
            "<< /Type /Pages /Kids [3 0 R] /Count 1 >>".to_owned(),
            "<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R \
             /Resources << /XObject << /N 5 0 R >> >> >>"
                .to_owned(),
            pdf_stream("", "/N Do"),
        ];
        for k in 0..forms {
            let id = 5 + k;
            let next = if k + 1 < forms {
                format!("/N {} 0 R", id + 1)
            } else {
                String::new()
            };
            objects.push(pdf_stream(
                &format!("/Type /XObject /Subtype /Form /BBox [0 0 1 1] /Resources << /XObject << {next} >> >>"),
                "/N Do /N Do",
            ));
        }
        assert_pdf_corrupt(&pdf_from(&objects), "unreasonable size");
    }

    #[test]
    fn pdf_page_tree_cycle_is_rejected_not_an_endless_loop() {
        let pdf = pdf_from(&[
            "<< /Type /Catalog /Pages 2 0 R >>".to_owned(),
            "<< /Type /Pages /Kids [3 0 R] /Count 1 /Parent 2 0 R >>".to_owned(),
            "<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R >>".to_owned(),
            pdf_stream("", "BT (hi) Tj ET"),
        ]);
        assert_pdf_corrupt(&pdf, "loops back");
    }

    #[test]
    fn pdf_shared_forms_are_fine() {
        // One form drawn on the page many times, through resources that list the form
        // itself (common in generated files): no cycle, since it never draws itself.
        let pdf = pdf_from(&[
            "<< /Type /Catalog /Pages 2 0 R >>".to_owned(),
            "<< /Type /Pages /Kids [3 0 R] /Count 1 >>".to_owned(),
            "<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R \
             /Resources 6 0 R >>"
                .to_owned(),
            pdf_stream("", &"/Logo Do ".repeat(50)),
            pdf_stream(
                "/Type /XObject /Subtype /Form /BBox [0 0 10 10] /Resources 6 0 R",
                "BT /F1 12 Tf 72 720 Td (SHARED-FORM-TEXT) Tj ET",
            ),
            "<< /Font << /F1 7 0 R >> /XObject << /Logo 5 0 R >> >>".to_owned(),
            "<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>".to_owned(),
        ]);
        let got = extract(&pdf, "a.pdf", &limits()).expect("pdf");
        assert_eq!(
            got.text.matches("SHARED-FORM-TEXT").count(),
            50,
            "{:?}",
            got.text
        );
    }

    fn zip_with(entries: &[(&str, &[u8])]) -> Vec<u8> {
        let mut writer = zip::ZipWriter::new(Cursor::new(Vec::new()));
        let options = zip::write::SimpleFileOptions::default()
            .compression_method(zip::CompressionMethod::Deflated);
        for (name, data) in entries {
            writer.start_file(*name, options).expect("start entry");
            writer.write_all(data).expect("write entry");
        }
        writer.finish().expect("finish zip").into_inner()
    }

    const DOCUMENT_XML: &str = r#"<?xml version="1.0" encoding="UTF-8" standalone="yes"?>
<w:document xmlns:w="http://schemas.openxmlformats.org/wordprocessingml/2006/main" xmlns:mc="http://schemas.openxmlformats.org/markup-compatibility/2006">
  <w:body>
    <w:p><w:pPr><w:tabs><w:tab w:val="left" w:pos="720"/></w:tabs></w:pPr>
      <w:r><w:t>MARKER-DOCX-4411 first</w:t></w:r><w:r><w:t xml:space="preserve"> paragraph</w:t></w:r></w:p>
    <w:p><w:r><w:t>Smith &amp; Jones &lt;Ltd&gt; &#8220;Q&#x201D;</w:t><w:tab/><w:t>after tab</w:t><w:br/><w:t>after break</w:t></w:r></w:p>
    <w:p/>
    <w:p><w:r><w:delText>deleted words</w:delText><w:instrText>PAGE</w:instrText><w:t>third</w:t></w:r></w:p>
    <w:p><w:r><mc:AlternateContent><mc:Choice Requires="wps"><w:t>boxed</w:t></mc:Choice><mc:Fallback><w:t>boxed</w:t></mc:Fallback></mc:AlternateContent></w:r></w:p>
  </w:body>
</w:document>"#;

    #[test]
    fn docx_paragraphs_runs_tabs_breaks_entities() {
        let docx = zip_with(&[
            ("[Content_Types].xml", b"<Types/>"),
            ("word/document.xml", DOCUMENT_XML.as_bytes()),
        ]);
        let got = extract(&docx, "contract.pdf", &limits()).expect("docx extracts");
        assert_eq!(got.format, DocumentFormat::Docx);
        assert_eq!(
            got.text,
            "MARKER-DOCX-4411 first paragraph\n\
             Smith & Jones <Ltd> \u{201C}Q\u{201D}\tafter tab\nafter break\n\
             \n\
             third\n\
             boxed\n"
        );
    }

    #[test]
    fn docx_without_text_is_no_text_and_broken_xml_is_corrupt() {
        let empty = zip_with(&[(
            "word/document.xml",
            b"<w:document xmlns:w=\"x\"><w:body><w:p/></w:body></w:document>",
        )]);
        assert_eq!(
            extract(&empty, "a.docx", &limits()).map(|e| e.text),
            Err(ExtractError::NoText {
                format: DocumentFormat::Docx
            })
        );
        let broken = zip_with(&[("word/document.xml", b"<w:document><w:p><w:t>x</w:p>")]);
        assert!(matches!(
            extract(&broken, "a.docx", &limits()),
            Err(ExtractError::Corrupt {
                format: DocumentFormat::Docx,
                ..
            })
        ));
        let docx = zip_with(&[("word/document.xml", DOCUMENT_XML.as_bytes())]);
        let truncated = &docx[..docx.len() / 2];
        assert!(matches!(
            extract(truncated, "a.docx", &limits()),
            Err(ExtractError::Corrupt {
                format: DocumentFormat::Docx,
                ..
            })
        ));
    }

    #[test]
    fn zip_that_is_not_docx_is_unsupported() {
        let zip = zip_with(&[("notes.txt", b"hello")]);
        let err = extract(&zip, "a.docx", &limits()).expect_err("plain zip");
        assert!(
            matches!(&err, ExtractError::Unsupported { detail } if detail.contains("not a word document")),
            "{err:?}"
        );
    }

    /// A deflated entry of `size` zeros, written in chunks so the test never holds the
    /// uncompressed data.
    fn zeros_docx(size: usize) -> Vec<u8> {
        let mut writer = zip::ZipWriter::new(Cursor::new(Vec::new()));
        let options = zip::write::SimpleFileOptions::default()
            .compression_method(zip::CompressionMethod::Deflated)
            .large_file(false);
        writer
            .start_file("word/document.xml", options)
            .expect("start entry");
        let chunk = vec![0u8; 1024 * 1024];
        let mut left = size;
        while left > 0 {
            let n = left.min(chunk.len());
            writer.write_all(&chunk[..n]).expect("write");
            left -= n;
        }
        writer.finish().expect("finish").into_inner()
    }

    #[test]
    fn docx_zip_bomb_is_rejected_before_inflating() {
        let bomb = zeros_docx(300 * 1024 * 1024);
        assert!(bomb.len() < 2 * 1024 * 1024, "bomb is {} bytes", bomb.len());
        let started = Instant::now();
        let err = extract(&bomb, "bomb.docx", &limits()).expect_err("bomb");
        let elapsed = started.elapsed();
        assert!(
            matches!(err, ExtractError::DecompressionBomb { .. }),
            "{err:?}"
        );
        assert!(elapsed < Duration::from_millis(500), "took {elapsed:?}");
    }

    #[test]
    fn docx_over_total_limit_is_rejected_even_with_a_low_ratio() {
        let docx = zeros_docx(3 * 1024 * 1024);
        let mut limits = limits();
        limits.max_compression_ratio = u64::MAX;
        limits.max_decompressed_bytes = 2 * 1024 * 1024;
        let err = extract(&docx, "a.docx", &limits).expect_err("over total");
        assert!(
            matches!(&err, ExtractError::DecompressionBomb { detail } if detail.contains("declare")),
            "{err:?}"
        );
    }

    #[test]
    fn docx_with_forged_sizes_is_caught_while_inflating() {
        let mut docx = zeros_docx(10 * 1024 * 1024);
        // Rewrite the uncompressed size to 2000 in the local header (offset 22) and the
        // central directory header (offset 24): small enough to pass every check made
        // before inflating.
        let forged = 2000u32.to_le_bytes();
        assert_eq!(&docx[..4], b"PK\x03\x04");
        docx[22..26].copy_from_slice(&forged);
        let central = docx
            .windows(4)
            .rposition(|w| w == b"PK\x01\x02")
            .expect("central directory header");
        docx[central + 24..central + 28].copy_from_slice(&forged);

        let started = Instant::now();
        let err = extract(&docx, "a.docx", &limits()).expect_err("forged");
        assert!(
            matches!(&err, ExtractError::DecompressionBomb { detail } if detail.contains("declared size")),
            "{err:?}"
        );
        assert!(started.elapsed() < Duration::from_millis(500));
    }

    #[test]
    fn empty_and_whitespace_only_are_empty() {
        assert_eq!(
            extract(b"", "a.txt", &limits()).map(|e| e.text),
            Err(ExtractError::Empty)
        );
        assert_eq!(
            extract(b" \r\n\t\n", "a.md", &limits()).map(|e| e.text),
            Err(ExtractError::Empty)
        );
        assert_eq!(
            extract(b"\xEF\xBB\xBF", "a.txt", &limits()).map(|e| e.text),
            Err(ExtractError::Empty)
        );
        assert_eq!(
            extract(b"<html><body> </body></html>", "a.html", &limits()).map(|e| e.text),
            Err(ExtractError::NoText {
                format: DocumentFormat::Html
            })
        );
    }

    #[test]
    fn too_large_is_refused_before_parsing() {
        let mut limits = limits();
        limits.max_file_bytes = 10;
        // Content that would be Unsupported if parsed.
        assert_eq!(
            extract(&[0xFF; 11], "a.txt", &limits).map(|e| e.text),
            Err(ExtractError::TooLarge {
                bytes: 11,
                limit: 10
            })
        );
        assert!(extract(b"0123456789", "a.txt", &limits).is_ok());
    }

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

    #[test]
    fn large_text_is_fast() {
        let line = "The Supplier shall indemnify the Customer against all losses.\r\n";
        let text = line.repeat(300_000 / line.len() + 1);
        assert!(text.chars().count() >= 300_000);
        let started = Instant::now();
        let got = extract(text.as_bytes(), "big.txt", &limits()).expect("text");
        let elapsed = started.elapsed();
        eprintln!(
            "300k-char text extracted in {:.2} ms",
            elapsed.as_secs_f64() * 1000.0
        );
        assert_eq!(got.text.len(), text.len() - text.matches("\r\n").count());
        assert!(elapsed < Duration::from_millis(100), "took {elapsed:?}");
    }

    #[test]
    fn worker_timeout_and_panic_are_contained() {
        let started = Instant::now();
        let err = run_isolated(DocumentFormat::Pdf, Duration::from_millis(100), || {
            thread::sleep(Duration::from_secs(3));
            Ok(String::new())
        })
        .expect_err("timeout");
        assert_eq!(err, ExtractError::Timeout { seconds: 1 });
        assert!(started.elapsed() < Duration::from_secs(1));

        let err = run_isolated(DocumentFormat::Pdf, Duration::from_secs(5), || {
            panic!("SECRET document text in a panic message")
        })
        .expect_err("panic");
        let ExtractError::Corrupt { format, detail } = &err else {
            panic!("{err:?}")
        };
        assert_eq!(*format, DocumentFormat::Pdf);
        assert!(!detail.contains("SECRET"));
        assert!(!err.to_string().contains("SECRET"));
    }

    #[test]
    fn error_messages_are_lowercase_without_final_period() {
        let errors = [
            ExtractError::Empty,
            ExtractError::TooLarge { bytes: 2, limit: 1 },
            unsupported("binary content"),
            docx_corrupt("x"),
            bomb("x"),
            ExtractError::Timeout { seconds: 30 },
            ExtractError::NoText {
                format: DocumentFormat::Docx,
            },
            ExtractError::NoText {
                format: DocumentFormat::Pdf,
            },
        ];
        for err in errors {
            let msg = err.to_string();
            let first = msg.chars().next().expect("non-empty");
            assert!(first.is_lowercase(), "{msg}");
            assert!(!msg.ends_with('.'), "{msg}");
        }
        assert_eq!(
            DocumentFormat::Docx.content_type(),
            "application/vnd.openxmlformats-officedocument.wordprocessingml.document"
        );
        assert_eq!(DocumentFormat::Markdown.content_type(), "text/markdown");
    }
}
