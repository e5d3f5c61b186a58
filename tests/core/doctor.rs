//! `bulkhead doctor`: says what to fix, and passes on a ready appliance.

use std::os::unix::fs::PermissionsExt;

use crate::support::{cli, stderr, stdout};

#[test]
fn doctor_names_what_to_fix_and_passes_once_it_is_fixed() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");

    // Not initialised: a failure that says to run init (and no key was created).
    let output = cli(&data, &["doctor"]);
    assert_eq!(output.status.code(), Some(1), "{}", stdout(&output));
    assert!(
        stdout(&output).contains("bulkhead --data-dir"),
        "{}",
        stdout(&output)
    );
    assert!(stdout(&output).contains("init"), "{}", stdout(&output));
    assert!(
        stderr(&output).contains("check(s) failed"),
        "{}",
        stderr(&output)
    );
    assert!(!data.join("master.key").exists(), "doctor creates no key");

    assert!(cli(&data, &["init"]).status.success());
    let output = cli(&data, &["doctor"]);
    assert!(
        output.status.success(),
        "{}\n{}",
        stdout(&output),
        stderr(&output)
    );
    assert!(
        stdout(&output).contains("the appliance is ready"),
        "{}",
        stdout(&output)
    );

    // A key readable by others fails, naming the fix.
    let key = data.join("master.key");
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
    let output = cli(&data, &["doctor"]);
    assert_eq!(output.status.code(), Some(1), "{}", stdout(&output));
    assert!(stdout(&output).contains("chmod 600"), "{}", stdout(&output));

    // TLS files that are not PEM fail.
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();
    let junk = dir.path().join("junk.pem");
    std::fs::write(&junk, "not a certificate").unwrap();
    let junk = junk.to_str().unwrap();
    let output = cli(&data, &["doctor", "--tls-cert", junk, "--tls-key", junk]);
    assert_eq!(output.status.code(), Some(1), "{}", stdout(&output));
    assert!(
        stdout(&output).contains("holds no PEM certificate"),
        "{}",
        stdout(&output)
    );
}
