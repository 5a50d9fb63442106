//! Binaries of the workspace's other packages that tests run: `env!("CARGO_BIN_EXE_…")` only
//! names the binaries of the package under test, so these are built on first use with the
//! cargo that runs the tests (a no-op when `cargo test` at the root already built them).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

/// The fake Claude CLI (`tools/fake-claude`).
pub fn fake_claude() -> &'static Path {
    static PATH: OnceLock<PathBuf> = OnceLock::new();
    PATH.get_or_init(|| build("fake-claude", "fake-claude"))
}

/// Builds `bin` of `package` in this test binary's profile and target directory.
fn build(package: &str, bin: &str) -> PathBuf {
    // <target>/<profile>/deps/it-<hash>: the profile directory is two levels up.
    let exe = std::env::current_exe().expect("the test binary's path");
    let profile_dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("the test binary lives in <target>/<profile>/deps");
    let target_dir = profile_dir.parent().expect("<target>/<profile>");
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.args(["build", "--quiet", "--package", package, "--bin", bin])
        .arg("--target-dir")
        .arg(target_dir)
        .current_dir(env!("CARGO_MANIFEST_DIR"));
    if !cfg!(debug_assertions) {
        cmd.arg("--release");
    }
    let status = cmd.status().expect("running cargo build");
    assert!(status.success(), "cargo build -p {package} failed");
    let path = profile_dir.join(bin);
    assert!(path.is_file(), "{} was not built", path.display());
    path
}
