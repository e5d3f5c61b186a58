//! pdf to text with pdf-extract, after a preflight walk that refuses the structures on
//! which pdf-extract would recurse or loop without bound. Error details are fixed
//! descriptions: the library's own messages can quote the file.

use std::borrow::Cow;
use std::cell::RefCell;
use std::rc::Rc;

use super::{DocumentFormat, ExtractError, corrupt, normalise, unsupported};

/// Same steps as `pdf_extract::extract_text_from_mem`, with [`pdf_preflight`] between
/// loading and text extraction.
pub(super) fn pdf_to_text(bytes: &[u8]) -> Result<String, ExtractError> {
    let pdf_err = |e| pdf_error(pdf_extract::OutputError::PdfError(e));
    let mut doc = pdf_extract::Document::load_mem(bytes).map_err(pdf_err)?;
    if doc.is_encrypted() {
        // Many pdfs are "encrypted" with an empty user password (permissions only).
        doc.decrypt("").map_err(pdf_err)?;
    }
    pdf_preflight(&doc)?;
    let text = Rc::new(RefCell::new(String::new()));
    {
        let mut output = PageMarks {
            inner: pdf_extract::PlainTextOutput::new(SharedText(Rc::clone(&text))),
            text: Rc::clone(&text),
            pages: 0,
        };
        pdf_extract::output_doc(&doc, &mut output).map_err(pdf_error)?;
    }
    Ok(normalise(Cow::Owned(text.take())))
}

/// The page break mark in the parser's output (a form feed, as `pdftotext` writes):
/// [`super::split_pages`] removes it and keeps where each page starts.
pub(super) const PAGE_BREAK: char = '\u{c}';

/// The text being written, shared by the plain-text output and [`PageMarks`].
struct SharedText(Rc<RefCell<String>>);

impl pdf_extract::ConvertToFmt for SharedText {
    type Writer = SharedText;
    fn convert(self) -> SharedText {
        self
    }
}

impl std::fmt::Write for SharedText {
    fn write_str(&mut self, text: &str) -> std::fmt::Result {
        // A form feed drawn on a page is not a page break: it reads as a space.
        self.0.borrow_mut().push_str(&text.replace(PAGE_BREAK, " "));
        Ok(())
    }
}

/// pdf-extract's plain-text output, with a [`PAGE_BREAK`] before each page but the first,
/// so the page a character offset is on is known (issue 13: the viewer shows the original
/// page of a cited passage).
struct PageMarks {
    inner: pdf_extract::PlainTextOutput<SharedText>,
    text: Rc<RefCell<String>>,
    pages: u32,
}

impl pdf_extract::OutputDev for PageMarks {
    fn begin_page(
        &mut self,
        page_num: u32,
        media_box: &pdf_extract::MediaBox,
        art_box: Option<(f64, f64, f64, f64)>,
    ) -> Result<(), pdf_extract::OutputError> {
        if self.pages > 0 {
            self.text.borrow_mut().push(PAGE_BREAK);
        }
        self.pages += 1;
        self.inner.begin_page(page_num, media_box, art_box)
    }
    fn end_page(&mut self) -> Result<(), pdf_extract::OutputError> {
        self.inner.end_page()
    }
    fn output_character(
        &mut self,
        trm: &pdf_extract::Transform,
        width: f64,
        spacing: f64,
        font_size: f64,
        char: &str,
    ) -> Result<(), pdf_extract::OutputError> {
        self.inner
            .output_character(trm, width, spacing, font_size, char)
    }
    fn begin_word(&mut self) -> Result<(), pdf_extract::OutputError> {
        self.inner.begin_word()
    }
    fn end_word(&mut self) -> Result<(), pdf_extract::OutputError> {
        self.inner.end_word()
    }
    fn end_line(&mut self) -> Result<(), pdf_extract::OutputError> {
        self.inner.end_line()
    }
}

/// Page-tree parent links followed before a chain is declared broken (lopdf uses the
/// same bound for the page tree's depth).
const PDF_MAX_PARENT_HOPS: usize = 256;
/// Nesting of form XObjects (`Do` inside a form drawn with `Do`); real files use a few.
const PDF_MAX_FORM_DEPTH: usize = 32;
/// Form XObject invocations across the whole document, counting repeats.
const PDF_MAX_FORM_INVOCATIONS: u64 = 100_000;

fn pdf_corrupt(detail: &str) -> ExtractError {
    corrupt(DocumentFormat::Pdf, detail)
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
pub(super) fn pdf_preflight(doc: &pdf_extract::Document) -> Result<(), ExtractError> {
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
    corrupt(DocumentFormat::Pdf, detail)
}

#[cfg(test)]
mod tests {
    use super::super::tests::limits;
    use super::super::*;
    use std::path::{Path, PathBuf};
    use std::time::{Duration, Instant};

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

    /// Issue 13: the page starts index the extracted text where each page's own text
    /// begins, checked against pdf-extract's page-by-page extraction of the same file.
    #[test]
    fn issue_13_page_starts_mark_where_each_page_of_the_hosting_agreement_begins() {
        let bytes = std::fs::read(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fixtures/hosting-agreement.pdf"
        ))
        .unwrap();
        let extracted = extract(&bytes, "hosting-agreement.pdf", &limits()).unwrap();
        let by_page = pdf_extract::extract_text_from_mem_by_pages(&bytes).unwrap();
        assert!(by_page.len() > 1, "a multi-page fixture");
        assert_eq!(extracted.page_starts.len(), by_page.len());
        assert_eq!(extracted.page_starts[0], 0);
        assert!(!extracted.text.contains(super::PAGE_BREAK));
        let chars: Vec<char> = extracted.text.chars().collect();
        let mut ends = extracted.page_starts[1..].to_vec();
        ends.push(chars.len() as u64);
        for (page, (start, end)) in extracted.page_starts.iter().zip(ends).enumerate() {
            let ours: String = chars[*start as usize..end as usize].iter().collect();
            assert_eq!(
                squash(&ours),
                squash(&by_page[page]),
                "page {} differs",
                page + 1
            );
        }
        // Other formats have no pages.
        let text = extract(b"Plain terms.", "a.txt", &limits()).unwrap();
        assert!(text.page_starts.is_empty());
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
}
