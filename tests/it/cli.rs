//! The CLI's surface pinned by trycmd cases in `tests/cmd/`.

#[test]
fn cli_cases() {
    let home = tempfile::tempdir().unwrap();
    let git = std::process::Command::new("sh")
        .args(["-c", "command -v git"])
        .output()
        .expect("find git");
    let git = String::from_utf8_lossy(&git.stdout).trim().to_owned();
    trycmd::TestCases::new()
        .register_bin(
            "git-sprint",
            trycmd::schema::Bin::Path(super::support::BIN.into()),
        )
        .register_bin("git", trycmd::schema::Bin::Path(git.into()))
        .env("HOME", home.path().display().to_string())
        .env(
            "XDG_CONFIG_HOME",
            home.path().join(".config").display().to_string(),
        )
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("LC_ALL", "C")
        .env("USER", "tester")
        .env("GIT_AUTHOR_NAME", "Tester")
        .env("GIT_AUTHOR_EMAIL", "tester@example.com")
        .env("GIT_COMMITTER_NAME", "Tester")
        .env("GIT_COMMITTER_EMAIL", "tester@example.com")
        .env("GIT_AUTHOR_DATE", "2026-01-01T00:00:00Z")
        .env("GIT_COMMITTER_DATE", "2026-01-01T00:00:00Z")
        .env("GIT_SPRINT_NOW", "1800000000")
        .env("COLUMNS", "100")
        .case("tests/cmd/*.trycmd");
}
