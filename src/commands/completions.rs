//! `git sprint completions <shell>`: tab completion generated from the same
//! clap definitions as `--help`, so it never lags behind a new flag.
//!
//! The scripts complete the `git-sprint` command; the bash one also defines
//! `_git_sprint`, the function git's own bash completion calls for
//! `git sprint <TAB>`, by handing it the words after `git` as if the user
//! had typed `git-sprint`.

use super::{Ctx, Result};

/// Print a shell completion script for bash, zsh or fish
///
/// bash: add 'eval "$(git sprint completions bash)"' to ~/.bashrc; that
/// completes both 'git sprint <TAB>' (through git's completion) and
/// 'git-sprint <TAB>'. zsh: 'git sprint completions zsh >
/// ~/.zfunc/_git-sprint' with ~/.zfunc in fpath before compinit. fish: 'git
/// sprint completions fish > ~/.config/fish/completions/git-sprint.fish'.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The shell to print the script for
    pub(crate) shell: Shell,
}

/// The shells a script is printed for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum Shell {
    Bash,
    Zsh,
    Fish,
}

/// The command the scripts complete: git runs `git sprint` as `git-sprint`.
const BIN: &str = "git-sprint";

/// The name the bash script is generated for: its function is `_gitsprint`.
const BASH_NAME: &str = "gitsprint";

/// For git's bash completion (git-completion.bash), which calls
/// `_git_<subcommand>` with `words`/`cword` (and COMP_WORDS/COMP_CWORD)
/// covering the whole `git … sprint …` line: find `sprint`, drop what comes
/// before it, and ask the `git-sprint` completion.
const GIT_BASH: &str = r#"
# git's bash completion calls this for 'git sprint <TAB>'.
_git_sprint() {
    local i start=0
    for ((i = 1; i < COMP_CWORD; i++)); do
        if [[ ${COMP_WORDS[i]} == sprint ]]; then
            start=$i
            break
        fi
    done
    [[ $start -gt 0 ]] || return 0
    local COMP_WORDS=(git-sprint "${COMP_WORDS[@]:start+1}")
    local COMP_CWORD=$((COMP_CWORD - start))
    local cur=${COMP_WORDS[COMP_CWORD]} prev=${COMP_WORDS[COMP_CWORD-1]}
    _gitsprint git-sprint "$cur" "$prev"
}
"#;

/// `cli` without its hidden commands (the hook and wrapper entry points),
/// which clap_complete would offer: a copy of the root's arguments and its
/// visible commands.
fn without_hidden(cli: clap::Command) -> clap::Command {
    let mut root = clap::Command::new(BIN)
        .version(env!("CARGO_PKG_VERSION"))
        .subcommand_required(true);
    for arg in cli.get_arguments().filter(|a| !a.is_hide_set()) {
        // clap adds --help and --version itself.
        if !["help", "version"].contains(&arg.get_id().as_str()) {
            root = root.arg(arg.clone());
        }
    }
    for sub in cli.get_subcommands().filter(|s| !s.is_hide_set()) {
        root = root.subcommand(sub.clone());
    }
    root
}

/// Writes the script for `args.shell`, generated from `cli` (the parser
/// `main` built).
pub fn run(ctx: &mut Ctx<'_>, args: &Args, cli: clap::Command) -> Result {
    let mut cli = without_hidden(cli);
    let mut script = Vec::new();
    match args.shell {
        Shell::Bash => {
            // clap_complete's bash script names its per-command cases
            // inconsistently when the name has a '-' (the dispatch turns it
            // into `__`, the cases into `__subcmd__`), so it is generated for
            // a name without one and bound to `git-sprint` afterwards.
            clap_complete::generate(clap_complete::Shell::Bash, &mut cli, BASH_NAME, &mut script);
            let text = String::from_utf8_lossy(&script);
            for line in text.lines() {
                match line.strip_suffix(&format!(" {BASH_NAME}")) {
                    Some(head) if line.trim_start().starts_with("complete -F") => {
                        writeln!(ctx.out, "{head} {BIN}")?
                    }
                    _ => writeln!(ctx.out, "{line}")?,
                }
            }
            ctx.out.write_all(GIT_BASH.as_bytes())?;
        }
        Shell::Zsh => {
            clap_complete::generate(clap_complete::Shell::Zsh, &mut cli, BIN, &mut script);
            ctx.out.write_all(&script)?;
        }
        Shell::Fish => {
            clap_complete::generate(clap_complete::Shell::Fish, &mut cli, BIN, &mut script);
            ctx.out.write_all(&script)?;
        }
    }
    Ok(())
}
