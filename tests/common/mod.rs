//! Helpers shared by the test binaries; each includes this file as `mod common`.

use std::path::PathBuf;

/// The bundled sample contract whose file name starts with `prefix`: its name and path.
pub fn sample_file(prefix: &str) -> (String, PathBuf) {
    let dir = bulkhead::config::sample_data_dir().join("contracts");
    let path = std::fs::read_dir(&dir)
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .find(|path| {
            path.file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with(prefix)
        })
        .unwrap_or_else(|| panic!("no sample contract starting with {prefix}"));
    (
        path.file_name().unwrap().to_string_lossy().into_owned(),
        path,
    )
}
