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
//! (html, pdf, docx) runs confined ([`Confinement`]): in the server and the CLI, in a
//! child process of its own under resource limits and a hard kill ([`child`]), because
//! `lopdf` inflates streams without bound and `pdf-extract`/`lopdf` can panic or spin on
//! malformed files; in library use without the binary, on a worker thread under
//! `catch_unwind` with a timeout. Plain text never leaves the process.
//!
//! What this module must not do: log document text or file names (both are tenant
//! content; logs carry only formats, sizes and durations), and know anything about
//! tenants, storage or HTTP. Errors carry no document content either, so callers may show
//! or log them as they are.
//!
//! Layout: [`sniff`] decides the format from the bytes, [`child`] runs a parser in a
//! confined child process, [`worker`] runs one on a thread of its own under a timeout, and [`html`], [`pdf`] and [`docx`] each turn one
//! format into text.

mod child;
mod docx;
mod html;
mod pdf;
mod sniff;
mod worker;

use std::borrow::Cow;
use std::fmt;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use docx::docx_to_text;
use html::html_to_text;
use pdf::pdf_to_text;
use sniff::{Sniffed, sniff};
use worker::run_isolated;

pub use child::{INTERNAL_COMMAND, serve_child};

/// Formats the appliance accepts. (The serde derives are for the child-process protocol
/// of [`child`], not a wire type.)
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
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

    /// The format whose [`content_type`](Self::content_type) is exactly `content_type`.
    pub fn from_content_type(content_type: &str) -> Option<DocumentFormat> {
        [
            DocumentFormat::Text,
            DocumentFormat::Markdown,
            DocumentFormat::Html,
            DocumentFormat::Pdf,
            DocumentFormat::Docx,
        ]
        .into_iter()
        .find(|format| format.content_type() == content_type)
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

/// Names the binary to re-execute as the confined parser (`bulkhead __extract`), for
/// library users and tests whose own executable is not `bulkhead`.
pub const EXTRACTOR_ENV: &str = "BULKHEAD_EXTRACTOR";

/// Where the third-party parsers (html, pdf, docx) run.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Confinement {
    /// On a worker thread of this process, under `catch_unwind` and a timeout that can
    /// only abandon the thread: no memory limit. For library use where no `bulkhead`
    /// binary is at hand (unit tests); the server and the CLI never use it.
    Thread,
    /// In a child process, `program __extract`, under rlimits and a hard kill.
    Process { program: PathBuf },
}

impl Confinement {
    /// The child process when [`EXTRACTOR_ENV`] names a binary, else the thread.
    pub fn from_env() -> Confinement {
        match std::env::var_os(EXTRACTOR_ENV) {
            Some(program) if !program.is_empty() => Confinement::Process {
                program: PathBuf::from(program),
            },
            _ => Confinement::Thread,
        }
    }

    /// A child process re-executing the running binary (the server and the CLI).
    /// `/proc/self/exe` names the running image even after an upgrade replaced the file.
    pub fn this_executable() -> Confinement {
        let program = if cfg!(target_os = "linux") {
            PathBuf::from("/proc/self/exe")
        } else {
            std::env::current_exe().unwrap_or_else(|_| PathBuf::from("bulkhead"))
        };
        Confinement::Process { program }
    }
}

/// Resource limits for one extraction.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
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
    /// Address space of the parser process (`RLIMIT_AS`); a document that needs more is
    /// failed as a possible bomb. Only enforced with [`Confinement::Process`].
    pub parser_memory_bytes: u64,
    /// Where the parsers run.
    pub confinement: Confinement,
}

impl Default for ExtractLimits {
    fn default() -> Self {
        ExtractLimits {
            max_file_bytes: 50 * 1024 * 1024,
            max_decompressed_bytes: 200 * 1024 * 1024,
            max_compression_ratio: 100,
            timeout: Duration::from_secs(30),
            parser_memory_bytes: 1024 * 1024 * 1024,
            confinement: Confinement::Thread,
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
    /// Where each page starts in `text`, in characters (the first is 0): a pdf's pages;
    /// empty for formats without pages.
    pub page_starts: Vec<u64>,
}

/// Why a document could not be turned into text. Messages never contain document content.
/// (The serde derives carry it across the child-process protocol of [`child`].)
#[derive(thiserror::Error, Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
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
    /// The confined parser was killed or refused memory: not retried, since the same
    /// file would do the same again.
    #[error(
        "the document needs more memory or time than allowed to parse: it may be malformed or a decompression bomb; re-save or re-export it and try again"
    )]
    ParserLimit,
    #[error("the document parser could not run ({detail}): upload the document again later")]
    ParserUnavailable { detail: String },
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
        Sniffed::Html(text) => (
            DocumentFormat::Html,
            parse_confined(DocumentFormat::Html, text.as_bytes(), limits)?,
        ),
        Sniffed::Pdf => (
            DocumentFormat::Pdf,
            parse_confined(DocumentFormat::Pdf, bytes, limits)?,
        ),
        Sniffed::Zip => (
            DocumentFormat::Docx,
            parse_confined(DocumentFormat::Docx, bytes, limits)?,
        ),
    };

    let (text, page_starts) = if format == DocumentFormat::Pdf {
        split_pages(&text)
    } else {
        (text, Vec::new())
    };
    if text.trim().is_empty() {
        return Err(match format {
            DocumentFormat::Text | DocumentFormat::Markdown => ExtractError::Empty,
            other => ExtractError::NoText { format: other },
        });
    }
    Ok(Extracted {
        format,
        text,
        page_starts,
    })
}

/// Removes a pdf's page breaks ([`pdf::PAGE_BREAK`]) and returns the text with the
/// character offset where each page starts.
fn split_pages(marked: &str) -> (String, Vec<u64>) {
    let mut text = String::with_capacity(marked.len());
    let mut starts = vec![0];
    let mut chars = 0u64;
    for c in marked.chars() {
        if c == pdf::PAGE_BREAK {
            starts.push(chars);
        } else {
            text.push(c);
            chars += 1;
        }
    }
    (text, starts)
}

/// Runs the parser for `format` where `limits.confinement` says.
fn parse_confined(
    format: DocumentFormat,
    input: &[u8],
    limits: &ExtractLimits,
) -> Result<String, ExtractError> {
    match &limits.confinement {
        Confinement::Process { program } => child::parse_in_child(program, format, input, limits),
        Confinement::Thread => {
            let owned = input.to_vec();
            let worker_limits = limits.clone();
            run_isolated(format, limits.timeout, move || {
                parse(format, &owned, &worker_limits)
            })
        }
    }
}

/// The parser for one of the parser-backed formats; `input` is the html's text (UTF-8)
/// or the file's bytes.
fn parse(
    format: DocumentFormat,
    input: &[u8],
    limits: &ExtractLimits,
) -> Result<String, ExtractError> {
    match format {
        DocumentFormat::Html => {
            let html = std::str::from_utf8(input)
                .map_err(|_| corrupt(DocumentFormat::Html, "it is not valid UTF-8"))?;
            html_to_text(html)
        }
        DocumentFormat::Pdf => pdf_to_text(input),
        DocumentFormat::Docx => docx_to_text(input, limits),
        DocumentFormat::Text | DocumentFormat::Markdown => {
            Err(unsupported("plain text has no parser"))
        }
    }
}

fn unsupported(detail: impl Into<String>) -> ExtractError {
    ExtractError::Unsupported {
        detail: detail.into(),
    }
}

/// A `Corrupt` error for `format`; `detail` says what is wrong without quoting the file.
fn corrupt(format: DocumentFormat, detail: impl Into<String>) -> ExtractError {
    ExtractError::Corrupt {
        format,
        detail: detail.into(),
    }
}

fn normalise(text: Cow<'_, str>) -> String {
    if text.contains("\r\n") {
        text.replace("\r\n", "\n")
    } else {
        text.into_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use docx::{bomb, docx_corrupt};

    pub(super) fn limits() -> ExtractLimits {
        ExtractLimits::default()
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
