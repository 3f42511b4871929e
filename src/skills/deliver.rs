//! Handing a task's skills to its agent, in the ways each CLI understands.
//!
//! Every agent gets them in its prompt (the `{skills}` section). CLIs that
//! load skills from disk get them natively too: Claude Code reads
//! `.claude/skills/<name>/SKILL.md` in its working directory, so its
//! worktree gets a copy of each skill's directory there.
//!
//! Those copies must never be committed by the agent or the wrapper's
//! save of its work. Git reads `info/exclude` only from the common git
//! directory, shared by every worktree (and the main one), so excluding them
//! there would hide a person's own files too. Instead each copied directory
//! holds a `.gitignore` of `*` that ignores the directory, itself included:
//! local to that directory, never shown by `git status`, and the mark by
//! which the next run (a pooled worktree re-used for another task) finds
//! and removes what an earlier run wrote. A skill directory the repository
//! itself tracks is left alone.

use std::path::{Path, PathBuf};

use super::{Skill, SkillError};
use crate::worker::profile::AgentProfile;
use crate::worker::stream::OutputFormat;

/// Where Claude Code looks for project skills, relative to the worktree.
pub(crate) const CLAUDE_DIR: &str = ".claude/skills";

/// The first line of the `.gitignore` that marks a directory as ours.
const MARK: &str = "# Written by git-sprint for one agent run; never committed.";

/// The prompt's skills section (empty when there are none).
pub(crate) fn prompt_section(skills: &[&Skill]) -> String {
    if skills.is_empty() {
        return String::new();
    }
    let mut out = String::from(
        "\n# Skills\nThe project gives you these skills for this task. Follow them where they apply.\n",
    );
    for s in skills {
        out.push_str(&format!(
            "\n## Skill: {} (version {})\n{}\n",
            s.name, s.version, s.description
        ));
        if !s.body.is_empty() {
            out.push('\n');
            out.push_str(&s.body);
            out.push('\n');
        }
    }
    out
}

/// The role's prompt from `template` and `vars`, with the skills section in
/// `{skills}`, or after the rest when a repository's own template has no
/// such placeholder.
pub(crate) fn render(
    template: &str,
    mut vars: std::collections::BTreeMap<&'static str, String>,
    skills: &[Skill],
) -> String {
    let refs: Vec<&Skill> = skills.iter().collect();
    let section = prompt_section(&refs);
    vars.insert("skills", section.clone());
    into_prompt(
        template.contains("{skills}"),
        crate::prompt::render(template, &vars),
        &section,
    )
}

/// `rendered` with the skills section in place of `{skills}`, or appended
/// when a repository's own template has no such placeholder.
pub(crate) fn into_prompt(
    template_has_placeholder: bool,
    rendered: String,
    section: &str,
) -> String {
    if template_has_placeholder || section.is_empty() {
        rendered
    } else {
        format!("{}\n{section}", rendered.trim_end())
    }
}

/// Whether the profile's CLI reads skill files from its worktree.
pub(crate) fn reads_native(profile: &AgentProfile) -> bool {
    profile.output == OutputFormat::Claude
}

/// Makes `worktree` hold exactly `skills` as native files for `profile`:
/// removes what an earlier run wrote, then (for a CLI that reads them)
/// writes each skill's directory. Returns the directories written.
pub(crate) fn write_native(
    worktree: &Path,
    profile: &AgentProfile,
    skills: &[&Skill],
) -> Result<Vec<PathBuf>, SkillError> {
    let root = worktree.join(CLAUDE_DIR);
    remove_ours(&root)?;
    if !reads_native(profile) || skills.is_empty() {
        return Ok(Vec::new());
    }
    let mut written = Vec::new();
    for s in skills {
        let dir = root.join(&s.name);
        if dir.exists() {
            // The repository's own skill of that name: it stays as committed.
            tracing::info!(dir = %dir.display(), "a skill directory the worktree already has is kept");
            continue;
        }
        let io = |doing: &'static str, path: &Path| {
            let path = path.to_owned();
            move |source| SkillError::Io {
                doing,
                path,
                source,
            }
        };
        std::fs::create_dir_all(&dir).map_err(io("creating", &dir))?;
        let ignore = dir.join(".gitignore");
        std::fs::write(&ignore, format!("{MARK}\n*\n")).map_err(io("writing", &ignore))?;
        for (rel, bytes) in &s.files {
            let path = dir.join(rel);
            if let Some(parent) = path.parent() {
                std::fs::create_dir_all(parent).map_err(io("creating", parent))?;
            }
            std::fs::write(&path, bytes).map_err(io("writing", &path))?;
        }
        written.push(dir);
    }
    Ok(written)
}

/// Removes every directory under `root` that an earlier run wrote.
fn remove_ours(root: &Path) -> Result<(), SkillError> {
    let Ok(entries) = std::fs::read_dir(root) else {
        return Ok(()); // none yet
    };
    for e in entries.flatten() {
        let dir = e.path();
        let ours = std::fs::read_to_string(dir.join(".gitignore"))
            .map(|t| t.starts_with(MARK))
            .unwrap_or(false);
        // Not through a link: only a real directory we made is removed.
        if ours && e.file_type().map(|t| t.is_dir()).unwrap_or(false) {
            std::fs::remove_dir_all(&dir).map_err(|source| SkillError::Io {
                doing: "removing an earlier run's skill",
                path: dir.clone(),
                source,
            })?;
        }
    }
    Ok(())
}
