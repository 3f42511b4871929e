//! The agent sandbox: Linux Landlock rules under which an agent's whole
//! process tree may read everything but write only where its work belongs.
//!
//! Agents run with their CLI's approvals off, so the kernel keeps the
//! promise: the agent's worktree, the object store, refs and reflogs, its own
//! worktree admin directory, temp directories, a few devices, the preset CLIs'
//! own state under `$HOME` and `sandbox.writable` are writable; the shared
//! `.git/config`, the hooks, the main worktree, other worktrees and the rest of
//! `$HOME` are not (DESIGN.md "Trust model").
//!
//! Landlock rules grant rights beneath a directory and cannot subtract, so a
//! writable place that *contains* a protected one (a repository kept in
//! `/tmp`, a `$HOME` inside `/tmp`) is left out rather than granted, and a
//! private temp directory under the repository's `sprint/tmp/` takes the place
//! of `/tmp` (`TMPDIR` points at it). The plan is worked out in the wrapper;
//! only the finished ruleset's file descriptor crosses into the child, where
//! two system calls confine it just before `exec` ([`Sandbox::confine`]), so
//! the wrapper itself stays free to revert shared files and record the end.
//!
//! Where the kernel has no Landlock the agent runs unconfined and the caller
//! says so in one line ([`Support::unconfined_line`]); the shared-files guard
//! (`guard.rs`) still checks every run.

use std::ffi::OsString;
use std::io;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::path::{Component, Path, PathBuf};
use std::process::Command;

use landlock::{
    path_beneath_rules, Access, AccessFs, Ruleset, RulesetAttr, RulesetCreatedAttr, Scope, ABI,
};

/// The filesystem rights handled: writing, creating, removing, renaming
/// across directories and truncating (ABI 3). Device ioctls and UNIX socket
/// connections (later ABIs) are left alone: agents need terminals and local
/// services, and neither writes a file.
const FS_ABI: ABI = ABI::V3;

/// Places under `$HOME` the preset CLIs keep their own state in (logins,
/// sessions, caches), by the program that needs them. All that exist are
/// writable for every agent; the launched program's missing directories are
/// made first, since creating one would need `$HOME` itself to be writable.
/// Claude Code writes `~/.claude.json` in place when it cannot make its
/// temp file beside it (anthropics/claude-code#30372).
const CLI_STATE: &[(&str, &[&str])] = &[
    (
        "claude",
        &[
            ".claude/",
            ".claude.json",
            ".local/state/claude/",
            ".local/share/claude/",
        ],
    ),
    ("codex", &[".codex/"]),
    ("gemini", &[".gemini/"]),
    (
        "opencode",
        &[
            ".config/opencode/",
            ".local/share/opencode/",
            ".local/state/opencode/",
        ],
    ),
    ("aider", &[".aider/"]),
    // Package managers every CLI above may run (npx, MCP servers).
    ("", &[".cache/", ".npm/"]),
];

/// Devices any program may open for writing.
const DEVICES: &[&str] = &[
    "/dev/null",
    "/dev/zero",
    "/dev/full",
    "/dev/random",
    "/dev/urandom",
    "/dev/tty",
    "/dev/ptmx",
    "/dev/pts",
    "/dev/shm",
];

/// What went wrong building the sandbox.
#[derive(Debug, thiserror::Error)]
pub enum SandboxError {
    #[error("building the Landlock ruleset for the agent")]
    Ruleset(#[source] landlock::RulesetError),
    #[error(
        "`sandbox.writable` entry `{entry}` is not an absolute path: write it as /path or ~/path"
    )]
    Relative { entry: String },
    #[error("creating {}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

/// Whether this kernel can confine agents.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Support {
    /// Landlock works, at this ABI version.
    Landlock { abi: i32 },
    /// Landlock is missing; the reason is for people.
    Missing { reason: &'static str },
}

impl Support {
    /// Asks the kernel (`landlock_create_ruleset` with the version flag).
    pub(crate) fn detect() -> Support {
        const LANDLOCK_CREATE_RULESET_VERSION: libc::c_uint = 1;
        // SAFETY: the version query reads no attribute (null pointer, size 0)
        // and only returns a number.
        let v = unsafe {
            libc::syscall(
                libc::SYS_landlock_create_ruleset,
                std::ptr::null::<libc::c_void>(),
                0usize,
                LANDLOCK_CREATE_RULESET_VERSION,
            )
        };
        if v > 0 {
            return Support::Landlock { abi: v as i32 };
        }
        Support::Missing {
            reason: match io::Error::last_os_error().raw_os_error() {
                Some(libc::EOPNOTSUPP) => {
                    "Landlock is built into this kernel but not enabled (add landlock to the lsm= boot parameter)"
                }
                _ => "this kernel has no Landlock (Linux 5.13 or newer with CONFIG_SECURITY_LANDLOCK)",
            },
        }
    }

    /// The one line `start`, `health` and the agent's log print when agents
    /// run unconfined; `None` when they are sandboxed.
    pub(crate) fn unconfined_line(self, enabled: bool) -> Option<String> {
        let after = "the shared .git/config and hooks are still checked after every run";
        match (enabled, self) {
            (false, _) => Some(format!(
                "sandbox: off (so configured): agents run unconfined; {after}"
            )),
            (true, Support::Missing { reason }) => Some(format!(
                "sandbox: unavailable, {reason}: agents run unconfined; {after}"
            )),
            (true, Support::Landlock { .. }) => None,
        }
    }

    /// `landlock ABI 7`, `unavailable: …`, for JSON and logs.
    pub(crate) fn describe(self) -> String {
        match self {
            Support::Landlock { abi } => format!("landlock ABI {abi}"),
            Support::Missing { reason } => format!("unavailable: {reason}"),
        }
    }
}

/// Where one agent runs, for working out what it may write.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Places<'a> {
    /// The repository's common directory, canonical.
    pub(crate) common_dir: &'a Path,
    /// The agent's worktree.
    pub(crate) worktree: &'a Path,
    /// The main worktree (`None` for a bare repository).
    pub(crate) main_worktree: Option<&'a Path>,
    /// `$HOME`.
    pub(crate) home: Option<&'a Path>,
    /// The worker id (names its private temp directory).
    pub(crate) worker: &'a str,
    /// The agent's program (`claude`, `/usr/bin/codex`).
    pub(crate) program: &'a str,
    /// `sandbox.writable` from the configuration.
    pub(crate) writable: &'a [String],
}

/// What an agent may write, worked out before it starts.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Plan {
    /// Existing paths the agent may write beneath.
    pub(crate) writable: Vec<PathBuf>,
    /// A private temp directory to use as `TMPDIR`, when no shared one
    /// could be granted.
    pub(crate) tmpdir: Option<PathBuf>,
    /// Lines for the agent's log: what was left out and why.
    pub(crate) notes: Vec<String>,
}

impl Plan {
    /// Works out the writable places of the agent at `places`, making the few
    /// directories it needs that do not exist yet.
    pub(crate) fn new(places: &Places<'_>) -> Result<Plan, SandboxError> {
        let common = places.common_dir;
        let mut protected: Vec<PathBuf> = vec![canonical(common)];
        protected.extend(places.main_worktree.map(canonical));
        protected.extend(places.home.map(canonical));
        let own = canonical(places.worktree);
        protected.extend(other_worktrees(common).into_iter().filter(|w| *w != own));

        let mut plan = Plan::default();
        let grant = |plan: &mut Plan, path: PathBuf, why: &str| {
            let path = canonical(&path);
            if let Some(p) = protected.iter().find(|p| p.starts_with(&path)) {
                plan.notes.push(format!(
                    "sandbox: {} ({why}) is not writable: it holds {}",
                    path.display(),
                    p.display()
                ));
                return false;
            }
            if !plan.writable.contains(&path) {
                plan.writable.push(path);
            }
            true
        };

        grant(&mut plan, own.clone(), "the worktree");
        // What git writes for a commit, a branch, a stash or a reflog.
        for dir in ["objects", "refs", "logs/refs"] {
            let path = common.join(dir);
            make_dir(&path)?;
            plan.writable.push(canonical(&path));
        }
        if let Some(admin) = admin_dir(common, places.worktree) {
            plan.writable.push(admin);
        }

        // Temp directories, unless one holds something protected. When the
        // one programs use ($TMPDIR, else /tmp) is left out, they get a
        // private one instead.
        let tmpdir = std::env::var_os("TMPDIR")
            .filter(|t| !t.is_empty())
            .map_or_else(|| PathBuf::from("/tmp"), PathBuf::from);
        let mut usable_tmp = false;
        let mut temps = vec![
            tmpdir.clone(),
            PathBuf::from("/tmp"),
            PathBuf::from("/var/tmp"),
        ];
        temps.dedup();
        for t in temps {
            if t.is_dir() && grant(&mut plan, t.clone(), "a temp directory") && t == tmpdir {
                usable_tmp = true;
            }
        }
        if !usable_tmp {
            let private = common.join("sprint").join("tmp").join(places.worker);
            make_dir(&private)?;
            let private = canonical(&private);
            plan.writable.push(private.clone());
            plan.notes
                .push(format!("sandbox: TMPDIR is {} instead", private.display()));
            plan.tmpdir = Some(private);
        }

        for dev in DEVICES {
            if Path::new(dev).exists() {
                plan.writable.push(PathBuf::from(dev));
            }
        }

        if let Some(home) = places.home {
            let program = Path::new(places.program)
                .file_name()
                .and_then(|n| n.to_str())
                .unwrap_or("");
            for (cli, paths) in CLI_STATE {
                for rel in *paths {
                    let path = home.join(rel.trim_end_matches('/'));
                    let is_dir = rel.ends_with('/');
                    if is_dir && !path.exists() && *cli == program {
                        make_dir(&path)?;
                    }
                    if path.exists() {
                        grant(&mut plan, path, "a CLI's own state");
                    }
                }
            }
        }

        for entry in places.writable {
            let path = expand_home(entry, places.home)?;
            if path.exists() {
                grant(&mut plan, path, "sandbox.writable");
            } else {
                plan.notes.push(format!(
                    "sandbox: {} (sandbox.writable) does not exist, so it is not writable",
                    path.display()
                ));
            }
        }
        Ok(plan)
    }
}

/// `~/x` under `home`; an absolute path as it is; anything else is refused.
pub(crate) fn expand_home(entry: &str, home: Option<&Path>) -> Result<PathBuf, SandboxError> {
    let relative = || SandboxError::Relative {
        entry: entry.to_owned(),
    };
    if entry == "~" {
        return home.map(Path::to_path_buf).ok_or_else(relative);
    }
    if let Some(rest) = entry.strip_prefix("~/") {
        return home.map(|h| h.join(rest)).ok_or_else(relative);
    }
    let path = PathBuf::from(entry);
    if path.is_absolute() {
        Ok(path)
    } else {
        Err(relative())
    }
}

/// A Landlock ruleset ready to confine one agent.
#[derive(Debug)]
pub(crate) struct Sandbox {
    ruleset: OwnedFd,
    abi: i32,
    plan: Plan,
}

impl Sandbox {
    /// Builds the ruleset for `plan`; `None` where the kernel has no Landlock.
    pub(crate) fn build(plan: Plan) -> Result<Option<Sandbox>, SandboxError> {
        let Support::Landlock { abi } = Support::detect() else {
            return Ok(None);
        };
        let created = Ruleset::default()
            .handle_access(AccessFs::from_all(FS_ABI))
            // An agent may not signal the wrapper, the orchestrator or any
            // other process outside its own tree (ABI 6; dropped before).
            .and_then(|r| r.scope(Scope::Signal))
            .and_then(|r| r.create())
            .and_then(|r| r.add_rules(path_beneath_rules(["/"], AccessFs::from_read(FS_ABI))))
            .and_then(|r| {
                r.add_rules(path_beneath_rules(
                    &plan.writable,
                    AccessFs::from_all(FS_ABI),
                ))
            })
            .map_err(SandboxError::Ruleset)?;
        let fd: Option<OwnedFd> = created.into();
        Ok(fd.map(|ruleset| Sandbox { ruleset, abi, plan }))
    }

    /// The variables the confined agent gets: `TMPDIR` when it is private,
    /// and `IS_SANDBOX=1`, with which Claude Code accepts skipped permissions
    /// as root (anthropics/claude-code#3490) — true here, and only here.
    pub(crate) fn env(&self) -> Vec<(String, OsString)> {
        let mut env = vec![("IS_SANDBOX".to_owned(), OsString::from("1"))];
        env.extend(
            self.plan
                .tmpdir
                .iter()
                .map(|t| ("TMPDIR".to_owned(), t.clone().into_os_string())),
        );
        env
    }

    /// The private temp directory made for this run, if one was.
    pub(crate) fn private_tmpdir(&self) -> Option<&Path> {
        self.plan.tmpdir.as_deref()
    }

    /// One line for the agent's log.
    pub(crate) fn summary(&self) -> String {
        format!(
            "sandbox: Landlock ABI {}: the agent may write only {}",
            self.abi,
            self.plan
                .writable
                .iter()
                .map(|p| p.display().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        )
    }

    /// Makes `cmd` confine its child just before `exec`. The sandbox must
    /// outlive the spawn: the child uses the ruleset's descriptor.
    pub(crate) fn confine(&self, cmd: &mut Command) {
        let fd = self.ruleset.as_raw_fd();
        // SAFETY: the closure runs in the forked child before exec and makes
        // only two async-signal-safe system calls with integer arguments; it
        // allocates nothing and touches no lock. The descriptor is open in
        // the child (inherited; close-on-exec drops it at exec).
        unsafe {
            cmd.pre_exec(move || {
                if libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0 {
                    return Err(io::Error::last_os_error());
                }
                if libc::syscall(libc::SYS_landlock_restrict_self, fd, 0) != 0 {
                    return Err(io::Error::last_os_error());
                }
                Ok(())
            });
        }
    }
}

/// The path with symlinks resolved, or as given when it does not exist.
fn canonical(path: &Path) -> PathBuf {
    path.canonicalize().unwrap_or_else(|_| normalize(path))
}

/// `a/./b/../c` → `a/c`, without touching the filesystem.
fn normalize(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for c in path.components() {
        match c {
            Component::CurDir => {}
            Component::ParentDir => {
                out.pop();
            }
            c => out.push(c),
        }
    }
    out
}

fn make_dir(path: &Path) -> Result<(), SandboxError> {
    std::fs::create_dir_all(path).map_err(|source| SandboxError::Io {
        path: path.to_owned(),
        source,
    })
}

/// The worktree's admin directory `<common>/worktrees/<name>`, read from its
/// `.git` file, and only when it really lies there: an earlier agent in the
/// same worktree could have pointed the file anywhere.
fn admin_dir(common: &Path, worktree: &Path) -> Option<PathBuf> {
    let text = std::fs::read_to_string(worktree.join(".git")).ok()?;
    let dir = text.trim().strip_prefix("gitdir:")?.trim();
    let dir = canonical(&worktree.join(dir));
    let parent = canonical(&common.join("worktrees"));
    (dir.parent() == Some(parent.as_path()) && dir.is_dir()).then_some(dir)
}

/// Every linked worktree of the repository, from `<common>/worktrees/*/gitdir`.
fn other_worktrees(common: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(common.join("worktrees")) else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|e| std::fs::read_to_string(e.path().join("gitdir")).ok())
        .filter_map(|g| Path::new(g.trim()).parent().map(canonical))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writable_entries_expand_home_and_refuse_relative_paths() {
        let home = Path::new("/home/alice");
        assert_eq!(
            expand_home("~/.config/x", Some(home)).unwrap(),
            Path::new("/home/alice/.config/x")
        );
        assert_eq!(expand_home("~", Some(home)).unwrap(), home);
        assert_eq!(
            expand_home("/opt/cache", None).unwrap(),
            Path::new("/opt/cache")
        );
        let e = expand_home("cache", Some(home)).unwrap_err().to_string();
        assert!(e.contains("`cache`") && e.contains("~/path"), "{e}");
        assert!(expand_home("~/x", None).is_err());
    }

    #[test]
    fn the_unconfined_line_says_why_and_what_still_holds() {
        let missing = Support::Missing {
            reason: "no landlock here",
        };
        let line = missing.unconfined_line(true).unwrap();
        assert!(
            line.contains("no landlock here") && line.contains("unconfined"),
            "{line}"
        );
        assert!(line.contains("checked after every run"), "{line}");
        assert!(Support::Landlock { abi: 7 }.unconfined_line(true).is_none());
        let off = Support::Landlock { abi: 7 }.unconfined_line(false).unwrap();
        assert!(off.contains("sandbox: off"), "{off}");
    }

    /// A repository in a temp dir, laid out as the fleet lays it out.
    fn layout() -> (tempfile::TempDir, PathBuf, PathBuf, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("repo");
        let common = root.join(".git");
        let wt = common.join("sprint/worktrees/w1");
        let admin = common.join("worktrees/w1");
        std::fs::create_dir_all(&wt).unwrap();
        std::fs::create_dir_all(&admin).unwrap();
        std::fs::write(wt.join(".git"), format!("gitdir: {}\n", admin.display())).unwrap();
        std::fs::write(
            admin.join("gitdir"),
            format!("{}\n", wt.join(".git").display()),
        )
        .unwrap();
        (dir, root, canonical(&common), canonical(&wt))
    }

    #[test]
    fn a_temp_dir_holding_the_repository_is_replaced_by_a_private_one() {
        let (dir, root, common, wt) = layout();
        let home = dir.path().join("home");
        std::fs::create_dir_all(&home).unwrap();
        let plan = Plan::new(&Places {
            common_dir: &common,
            worktree: &wt,
            main_worktree: Some(&root),
            home: Some(&home),
            worker: "w1",
            program: "claude",
            writable: &["~/extra".to_owned(), "/nonexistent-x".to_owned()],
        })
        .unwrap();
        let w = &plan.writable;
        assert!(w.contains(&wt), "{w:?}");
        assert!(w.contains(&common.join("objects")), "{w:?}");
        assert!(w.contains(&common.join("refs")), "{w:?}");
        assert!(w.contains(&common.join("worktrees/w1")), "{w:?}");
        assert!(!w.contains(&common), "{w:?}");
        assert!(
            !w.iter().any(|p| common.starts_with(p)),
            "nothing above the common dir: {w:?}"
        );
        assert!(
            !w.iter().any(|p| root.starts_with(p)),
            "nothing above the main worktree: {w:?}"
        );
        // The test repository lives in the temp dir, so TMPDIR is private.
        let private = common.join("sprint/tmp/w1");
        if canonical(dir.path()).starts_with("/tmp") {
            assert_eq!(plan.tmpdir.as_deref(), Some(private.as_path()));
            assert!(!w.contains(&PathBuf::from("/tmp")), "{w:?}");
        }
        // The launched CLI's own state directory is made and granted.
        assert!(w.contains(&canonical(&home.join(".claude"))), "{w:?}");
        assert!(!home.join(".codex").exists(), "another CLI's is not made");
        assert!(
            plan.notes.iter().any(|n| n.contains("/nonexistent-x")),
            "{:?}",
            plan.notes
        );
    }

    #[test]
    fn a_confined_child_writes_its_worktree_and_nothing_protected() {
        if let Support::Missing { reason } = Support::detect() {
            eprintln!("SKIPPED: no Landlock on this kernel ({reason})");
            return;
        }
        let (_dir, root, common, wt) = layout();
        std::fs::write(common.join("config"), "[core]\n").unwrap();
        let plan = Plan::new(&Places {
            common_dir: &common,
            worktree: &wt,
            main_worktree: Some(&root),
            home: None,
            worker: "w1",
            program: "sh",
            writable: &[],
        })
        .unwrap();
        let sandbox = Sandbox::build(plan).unwrap().expect("landlock");
        let script = "echo ok > in-worktree && echo ok > \"$TMPDIR/t\" && echo ok > /dev/null \
            && ! echo x >> \"$COMMON/config\" && ! touch \"$ROOT/planted\" \
            && ! mkdir \"$COMMON/hooks\" && ! rm \"$COMMON/config\" \
            && ! kill -0 $PPID_OUTSIDE";
        let mut cmd = Command::new("sh");
        cmd.arg("-c")
            .arg(script)
            .current_dir(&wt)
            .env("COMMON", &common)
            .env("ROOT", &root)
            .env("PPID_OUTSIDE", std::process::id().to_string())
            .envs(sandbox.env());
        sandbox.confine(&mut cmd);
        let out = cmd.output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains("Permission denied"), "{stderr}");
        assert!(wt.join("in-worktree").is_file());
        assert_eq!(
            std::fs::read_to_string(common.join("config")).unwrap(),
            "[core]\n"
        );
        assert!(!root.join("planted").exists());
    }

    #[test]
    fn a_forged_admin_dir_is_not_granted() {
        let (_dir, _root, common, wt) = layout();
        std::fs::write(wt.join(".git"), format!("gitdir: {}\n", common.display())).unwrap();
        assert_eq!(admin_dir(&common, &wt), None);
    }
}
