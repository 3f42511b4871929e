#!/bin/sh
# check.sh: the notes project's test suite. git-sprint runs it as the review,
# test and post-merge gate (see .git-sprint.yaml); run it yourself any time.
#
# It fails when
#   - a file holds a merge-conflict marker, or
#   - a task whose commits are in HEAD's history left out a file it promises
#     in specs/*/tasks.md (every backticked path with a `/`), or that file does
#     not carry the task's work.

set -u
cd "$(git rev-parse --show-toplevel)" || exit 1
status=0

# Conflict markers: the start and end of a conflict hunk at a line's start.
if git grep -n -I -E '^(<{7}|>{7})( |$)' -- . ; then
    echo "check: FAIL: merge-conflict markers (above)"
    status=1
fi

# Tasks with work in HEAD: commit subjects such as `001-notes/T003: ...`.
tasks=$(git log --format=%s HEAD |
    sed -n 's#^[0-9][0-9]*-[A-Za-z0-9-]*/\(T[0-9][0-9]*\): .*#\1#p' | sort -u)
checked=0
for task in $tasks; do
    line=$(grep -h -E "^- \[[ xX]\] $task " specs/*/tasks.md 2>/dev/null | head -n 1)
    [ -n "$line" ] || continue
    paths=$(printf '%s\n' "$line" | grep -o '`[^` ]*/[^` ]*`' | tr -d '`')
    for path in $paths; do
        checked=$((checked + 1))
        if [ ! -f "$path" ]; then
            echo "check: FAIL: $task promises $path, which is missing"
            status=1
        elif ! grep -q "/$task:" "$path"; then
            echo "check: FAIL: $path does not carry $task's work"
            status=1
        fi
    done
done

if [ "$status" -eq 0 ]; then
    echo "check: ok ($checked promised files present, no conflict markers)"
fi
exit "$status"
