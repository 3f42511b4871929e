//! git-sprint: run many AI coding agents on one codebase, with every decision
//! recorded as a commit on `refs/ai-sprint`.
//!
//! The binary (`src/main.rs`) is a thin clap layer over this library; tests and
//! benchmarks call the library directly.
//!
//! The public surface is what those three use: the binary, the integration
//! tests (`tests/`) and the benches (`benches/`). Everything else is
//! `pub(crate)`, so the compiler's dead-code check sees the whole crate and an
//! item nothing calls shows up as a warning instead of hiding behind `pub`.

pub(crate) mod board;
pub mod clock;
pub mod commands;
pub(crate) mod config;
pub(crate) mod control;
pub mod daemon;
pub mod fleet;
pub mod gates;
pub mod hint;
pub(crate) mod hooks;
pub mod ingest;
pub mod machines;
pub(crate) mod names;
pub(crate) mod notify;
pub(crate) mod policy;
pub(crate) mod prompt;
pub mod refinery;
pub(crate) mod router;
pub(crate) mod skills;
pub mod spec;
pub(crate) mod stages;
pub mod state;
pub(crate) mod sync;
pub(crate) mod view;
pub mod worker;

#[cfg(test)]
mod house {
    use std::path::Path;

    fn rust_files(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                rust_files(&path, out);
            } else if path.extension().is_some_and(|e| e == "rs") {
                out.push(path);
            }
        }
    }

    /// Every `unsafe` block says why it holds, in a `// SAFETY:` comment
    /// just above it.
    #[test]
    fn every_unsafe_block_has_a_safety_note() {
        let mut files = Vec::new();
        rust_files(
            &Path::new(env!("CARGO_MANIFEST_DIR")).join("src"),
            &mut files,
        );
        let mut blocks = 0;
        let mut bare = Vec::new();
        for path in &files {
            let text = std::fs::read_to_string(path).unwrap();
            let lines: Vec<&str> = text.lines().collect();
            for (i, line) in lines.iter().enumerate() {
                let code = line.split("//").next().unwrap_or("");
                if !code.contains("unsafe {") || code.contains('"') {
                    continue;
                }
                blocks += 1;
                let above = &lines[i.saturating_sub(6)..i];
                if !above
                    .iter()
                    .any(|l| l.trim_start().starts_with("// SAFETY:"))
                {
                    bare.push(format!("{}:{}", path.display(), i + 1));
                }
            }
        }
        assert!(blocks > 0, "no unsafe block found: is the scan broken?");
        assert!(
            bare.is_empty(),
            "unsafe blocks without a // SAFETY: note: {bare:?}"
        );
    }
}
