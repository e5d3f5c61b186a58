//! docx to text: the archive is checked for decompression bombs before and while the
//! main document part is inflated, then the visible text of its WordprocessingML is
//! collected.

use std::borrow::Cow;
use std::io::{Cursor, Read};

use quick_xml::events::Event;

use super::{
    DocumentFormat, ExtractError, ExtractLimits, RATIO_GRACE_BYTES, SUPPORTED, corrupt, normalise,
    unsupported,
};

const DOCX_MAIN_PART: &str = "word/document.xml";

pub(super) fn docx_corrupt(detail: impl Into<String>) -> ExtractError {
    corrupt(DocumentFormat::Docx, detail)
}

pub(super) fn bomb(detail: impl Into<String>) -> ExtractError {
    ExtractError::DecompressionBomb {
        detail: detail.into(),
    }
}

pub(super) fn docx_to_text(bytes: &[u8], limits: &ExtractLimits) -> Result<String, ExtractError> {
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
    use super::super::tests::limits;
    use super::super::*;
    use std::io::{Cursor, Write};
    use std::time::{Duration, Instant};

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
}
