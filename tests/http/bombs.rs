//! Issue 11, finding 5: a pdf decompression bomb must fail its document with a clear
//! reason, without growing the server: documents are parsed in a confined child process.

use std::io::Write;

use crate::harness::{Server, client, create_tenant};

/// A zlib stream inflating to `1 + 258 * matches` zero bytes, written by hand: one literal
/// zero, then `matches` copies of length 258 at distance 1, in fixed-Huffman blocks. About
/// 13 bits per 258 bytes, and generating it costs nothing like inflating it.
fn zlib_zeros(matches: u64) -> Vec<u8> {
    struct Bits {
        out: Vec<u8>,
        byte: u8,
        used: u8,
    }
    impl Bits {
        /// `count` bits of `value`, least significant first (header fields).
        fn lsb(&mut self, value: u32, count: u8) {
            for i in 0..count {
                self.bit((value >> i) & 1);
            }
        }
        /// A Huffman code of `count` bits, most significant first.
        fn code(&mut self, value: u32, count: u8) {
            for i in (0..count).rev() {
                self.bit((value >> i) & 1);
            }
        }
        fn bit(&mut self, bit: u32) {
            self.byte |= (bit as u8) << self.used;
            self.used += 1;
            if self.used == 8 {
                self.out.push(self.byte);
                self.byte = 0;
                self.used = 0;
            }
        }
    }
    let mut bits = Bits {
        out: vec![0x78, 0x01],
        byte: 0,
        used: 0,
    };
    bits.lsb(1, 1); // final block
    bits.lsb(1, 2); // fixed Huffman codes
    bits.code(0x30, 8); // literal 0
    for _ in 0..matches {
        bits.code(0b1100_0101, 8); // length code 285: 258 bytes
        bits.code(0, 5); // distance code 0: distance 1
    }
    bits.code(0, 7); // end of block
    if bits.used > 0 {
        bits.out.push(bits.byte);
    }
    // Adler-32 of n zeros: a = 1, b = n (mod 65521).
    let total = 1 + 258 * matches;
    let adler = ((total % 65521) << 16) | 1;
    bits.out.extend_from_slice(&(adler as u32).to_be_bytes());
    bits.out
}

fn zlib(data: &[u8]) -> Vec<u8> {
    let mut encoder = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::best());
    encoder.write_all(data).unwrap();
    encoder.finish().unwrap()
}

/// A one-page pdf whose content stream inflates, through three chained `/FlateDecode`
/// filters, to about `inflated_bytes` zero bytes.
pub fn pdf_bomb(inflated_bytes: u64) -> Vec<u8> {
    let stream = zlib(&zlib(&zlib_zeros(inflated_bytes / 258)));
    let mut objects: Vec<Vec<u8>> = vec![
        b"<< /Type /Catalog /Pages 2 0 R >>".to_vec(),
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>".to_vec(),
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R /Resources << >> >>"
            .to_vec(),
    ];
    let mut content = format!(
        "<< /Length {} /Filter [/FlateDecode /FlateDecode /FlateDecode] >>\nstream\n",
        stream.len()
    )
    .into_bytes();
    content.extend_from_slice(&stream);
    content.extend_from_slice(b"\nendstream");
    objects.push(content);
    let mut pdf = b"%PDF-1.4\n".to_vec();
    let mut offsets = Vec::new();
    for (index, object) in objects.iter().enumerate() {
        offsets.push(pdf.len());
        pdf.extend_from_slice(format!("{} 0 obj\n", index + 1).as_bytes());
        pdf.extend_from_slice(object);
        pdf.extend_from_slice(b"\nendobj\n");
    }
    let xref = pdf.len();
    pdf.extend_from_slice(
        format!("xref\n0 {}\n0000000000 65535 f \n", objects.len() + 1).as_bytes(),
    );
    for offset in offsets {
        pdf.extend_from_slice(format!("{offset:010} 00000 n \n").as_bytes());
    }
    pdf.extend_from_slice(
        format!(
            "trailer\n<< /Size {} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n",
            objects.len() + 1
        )
        .as_bytes(),
    );
    pdf
}

/// Resident and peak resident memory of a process, in MiB (`VmRSS`, `VmHWM`).
fn memory_mib(pid: u32) -> (u64, u64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|line| line.strip_prefix(name))
            .and_then(|rest| {
                rest.trim()
                    .trim_end_matches("kB")
                    .trim()
                    .parse::<u64>()
                    .ok()
            })
            .unwrap_or_else(|| panic!("no {name} in /proc/{pid}/status"))
            / 1024
    };
    (field("VmRSS:"), field("VmHWM:"))
}

/// The server's peak memory may not pass this while it handles bombs (it holds the
/// embedding model, ~250 MiB, once the normal pdf is indexed).
const SERVER_PEAK_MIB: u64 = 600;

#[tokio::test(flavor = "multi_thread")]
async fn issue_11_pdf_bombs_fail_clearly_and_the_server_memory_stays_flat() {
    let server = Server::start(&[]);
    let pid = server.child.id();
    let tenant = create_tenant(&server, "Bombed").await;
    let editor = server.caller(&tenant, "bob", &["editor"]);

    // A normal pdf still indexes (through the child process), and loads the models.
    let fixture = crate::common::hosting_agreement_pdf();
    let (status, body) = editor.upload("hosting-agreement.pdf", fixture, true).await;
    assert_eq!(status, 201, "{body}");
    assert!(body["chunks"].as_u64().unwrap() > 0, "{body}");
    let (rss_before, peak_before) = memory_mib(pid);
    eprintln!("server after a normal pdf: VmRSS {rss_before} MiB, VmHWM {peak_before} MiB");

    for gib in [1u64, 4, 16] {
        let bomb = pdf_bomb(gib << 30);
        assert!(bomb.len() < 4096, "the bomb is {} bytes", bomb.len());
        let started = std::time::Instant::now();
        let (status, body) = editor.upload(&format!("bomb-{gib}g.pdf"), bomb, true).await;
        let (rss, peak) = memory_mib(pid);
        eprintln!(
            "{gib} GiB bomb: {status} in {:.1} s; server VmRSS {rss} MiB, VmHWM {peak} MiB",
            started.elapsed().as_secs_f64()
        );
        assert_eq!(status, 422, "{body}");
        let message = body["error"]["message"].as_str().unwrap();
        assert!(
            message.contains("needs more memory or time than allowed to parse")
                && message.contains("decompression bomb"),
            "{message}"
        );
        assert!(
            peak < SERVER_PEAK_MIB,
            "the server peaked at {peak} MiB after the {gib} GiB bomb"
        );
        let health = client().get(server.url("/healthz")).send().await.unwrap();
        assert_eq!(health.status(), 200);
    }

    // Failed once, for good: no job is left to retry it.
    let (status, listing) = editor.get("/documents").await;
    assert_eq!(status, 200, "{listing}");
    let documents = listing["documents"].as_array().expect("documents");
    let failed: Vec<_> = documents
        .iter()
        .filter(|document| document["status"] == "failed")
        .collect();
    assert_eq!(failed.len(), 3, "{listing}");
    tokio::time::sleep(std::time::Duration::from_secs(2)).await;
    let (_, again) = editor.get("/documents").await;
    assert_eq!(listing, again, "a failed bomb was picked up again");
}
