//! Terminal output as plain text: what `git sprint logs` shows of a pane's log.
//!
//! A pane's log holds what the agent wrote to its terminal: colours and
//! cursor movement (CSI sequences), window titles and hyperlinks (OSC), other
//! escape sequences, and progress lines redrawn in place after a carriage
//! return. [`TerminalText`] turns that into the lines a person would have
//! seen: it drops every escape sequence and keeps one line with a cursor, so
//! `\r` goes back and overwrites, and `ESC[K` erases, as a terminal would.
//!
//! It is a streaming filter, so `logs -f` can feed it chunks that split a
//! sequence or a UTF-8 character anywhere. Text is emitted a line at a time
//! (a line can still be redrawn until its newline). A string sequence (OSC,
//! DCS, …) left unterminated ends at the next newline: a broken escape, say
//! from an agent killed mid-sequence, never hides the lines after it, such
//! as the wrapper's own last words.

/// Where the parser is in an escape sequence (ECMA-48's states, simplified).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Ground,
    /// After ESC.
    Escape,
    /// After ESC and intermediate bytes (e.g. `ESC ( B`).
    EscapeIntermediate,
    /// Inside `ESC [`: parameters until a final byte.
    Csi,
    /// Inside OSC, DCS, SOS, PM or APC: until BEL or `ESC \`.
    Str,
    /// ESC inside a string: `\` ends it, anything else starts a new sequence.
    StrEscape,
}

/// Turns raw terminal output into plain lines; see the module docs.
#[derive(Debug)]
pub(crate) struct TerminalText {
    state: State,
    /// The line being drawn.
    line: String,
    /// The cursor's column in `line`, in characters; may lie past its end.
    col: usize,
    /// Characters in `line`.
    len: usize,
    /// The parameter bytes of the CSI sequence being read.
    params: Vec<u8>,
    /// A UTF-8 character not yet complete, and how long it will be.
    utf8: Vec<u8>,
    utf8_len: usize,
}

impl Default for TerminalText {
    fn default() -> Self {
        TerminalText::new()
    }
}

const ESC: u8 = 0x1b;
const BEL: u8 = 0x07;
/// CAN and SUB abort any sequence.
const CAN: u8 = 0x18;
const SUB: u8 = 0x1a;
/// The rightmost column a cursor movement reaches: `ESC[999999999C` from an
/// agent (untrusted) must not make a line of a billion spaces.
const MAX_COLUMN: usize = 4096;

impl TerminalText {
    pub(crate) fn new() -> TerminalText {
        TerminalText {
            state: State::Ground,
            line: String::new(),
            col: 0,
            len: 0,
            params: Vec::new(),
            utf8: Vec::new(),
            utf8_len: 0,
        }
    }

    /// The plain text of a whole recording.
    pub(crate) fn plain(bytes: &[u8]) -> Vec<u8> {
        let mut t = TerminalText::new();
        let mut out = Vec::with_capacity(bytes.len());
        t.push(bytes, &mut out);
        t.finish(&mut out);
        out
    }

    /// Feeds `bytes`; every line they complete is appended to `out`.
    pub(crate) fn push(&mut self, bytes: &[u8], out: &mut Vec<u8>) {
        for &b in bytes {
            self.byte(b, out);
        }
    }

    /// Ends the input: the unfinished line, if any, is appended to `out`
    /// with a newline.
    pub(crate) fn finish(&mut self, out: &mut Vec<u8>) {
        self.flush_utf8();
        if !self.line.is_empty() {
            self.newline(out);
        }
        self.state = State::Ground;
        self.col = 0;
    }

    fn byte(&mut self, b: u8, out: &mut Vec<u8>) {
        match self.state {
            State::Ground => self.ground(b, out),
            State::Escape => match b {
                b'[' => {
                    self.params.clear();
                    self.state = State::Csi;
                }
                b']' | b'P' | b'X' | b'^' | b'_' => self.state = State::Str,
                ESC => {}
                0x20..=0x2f => self.state = State::EscapeIntermediate,
                0x30..=0x7e => self.state = State::Ground,
                _ => self.abort(b, out),
            },
            State::EscapeIntermediate => match b {
                0x20..=0x2f => {}
                0x30..=0x7e => self.state = State::Ground,
                ESC => self.state = State::Escape,
                _ => self.abort(b, out),
            },
            State::Csi => match b {
                0x30..=0x3f => {
                    if self.params.len() < 32 {
                        self.params.push(b);
                    }
                }
                0x20..=0x2f => {}
                0x40..=0x7e => {
                    self.state = State::Ground;
                    self.csi(b);
                }
                ESC => self.state = State::Escape,
                _ => self.abort(b, out),
            },
            State::Str => match b {
                BEL | CAN | SUB => self.state = State::Ground,
                ESC => self.state = State::StrEscape,
                b'\n' => self.abort(b, out),
                _ => {}
            },
            State::StrEscape => {
                if b == b'\\' {
                    self.state = State::Ground;
                } else {
                    // A new sequence began without ending the string.
                    self.state = State::Escape;
                    self.byte(b, out);
                }
            }
        }
    }

    /// Gives up on the sequence under way; `b` is read as ordinary output.
    fn abort(&mut self, b: u8, out: &mut Vec<u8>) {
        self.state = State::Ground;
        if b != CAN && b != SUB {
            self.ground(b, out);
        }
    }

    fn ground(&mut self, b: u8, out: &mut Vec<u8>) {
        if !self.utf8.is_empty() {
            if b & 0xc0 == 0x80 {
                self.utf8.push(b);
                if self.utf8.len() == self.utf8_len {
                    let c = std::str::from_utf8(&self.utf8)
                        .ok()
                        .and_then(|s| s.chars().next())
                        .unwrap_or(char::REPLACEMENT_CHARACTER);
                    self.utf8.clear();
                    self.put(c);
                }
                return;
            }
            self.flush_utf8();
        }
        match b {
            ESC => self.state = State::Escape,
            b'\n' => self.newline(out),
            b'\r' => self.col = 0,
            0x08 => self.col = self.col.saturating_sub(1),
            b'\t' => self.put('\t'),
            0x20..=0x7e => self.put(b as char),
            0x00..=0x1f | 0x7f => {}
            0xc2..=0xdf => self.start_utf8(b, 2),
            0xe0..=0xef => self.start_utf8(b, 3),
            0xf0..=0xf4 => self.start_utf8(b, 4),
            _ => self.put(char::REPLACEMENT_CHARACTER),
        }
    }

    fn start_utf8(&mut self, b: u8, len: usize) {
        self.utf8.push(b);
        self.utf8_len = len;
    }

    /// An incomplete character counts as one replacement character.
    fn flush_utf8(&mut self) {
        if !self.utf8.is_empty() {
            self.utf8.clear();
            self.put(char::REPLACEMENT_CHARACTER);
        }
    }

    /// Writes `c` at the cursor, over whatever is there; C1 controls
    /// (U+0080–U+009F, which some terminals obey) are dropped like C0 ones.
    fn put(&mut self, c: char) {
        if c != '\t' && c.is_control() {
            return;
        }
        if self.col >= self.len {
            for _ in self.len..self.col {
                self.line.push(' ');
            }
            self.line.push(c);
            self.len = self.col + 1;
        } else {
            let (at, old) = self.line.char_indices().nth(self.col).expect("col < len");
            let mut buf = [0; 4];
            self.line
                .replace_range(at..at + old.len_utf8(), c.encode_utf8(&mut buf));
        }
        self.col += 1;
    }

    fn newline(&mut self, out: &mut Vec<u8>) {
        out.extend_from_slice(self.line.as_bytes());
        out.push(b'\n');
        self.line.clear();
        self.col = 0;
        self.len = 0;
    }

    /// The CSI sequences that change what a line shows; the rest only
    /// colour or move between lines, and are dropped.
    fn csi(&mut self, fin: u8) {
        let first: usize = std::str::from_utf8(&self.params)
            .ok()
            .and_then(|p| p.split(';').next())
            .and_then(|n| n.parse().ok())
            .unwrap_or(0);
        match fin {
            // Erase in line: to the end, to the cursor, or all of it.
            b'K' => match first {
                0 => self.truncate(self.col),
                1 => {
                    let upto = (self.col + 1).min(self.len);
                    let rest: String = self.line.chars().skip(upto).collect();
                    self.line = " ".repeat(upto) + &rest;
                }
                _ => self.truncate(0),
            },
            // Cursor to a column (1-based), back, forward.
            b'G' => self.col = (first.max(1) - 1).min(MAX_COLUMN),
            b'D' => self.col = self.col.saturating_sub(first.max(1)),
            b'C' => self.col = self.col.saturating_add(first.max(1)).min(MAX_COLUMN),
            _ => {}
        }
    }

    /// Drops the characters from column `col` on (the cursor stays).
    fn truncate(&mut self, col: usize) {
        if col < self.len {
            let at = self
                .line
                .char_indices()
                .nth(col)
                .map_or(self.line.len(), |(i, _)| i);
            self.line.truncate(at);
            self.len = col;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::TerminalText;

    fn plain(s: &str) -> String {
        String::from_utf8(TerminalText::plain(s.as_bytes())).unwrap()
    }

    #[test]
    fn a_huge_cursor_move_does_not_make_a_huge_line() {
        let line = plain("a\u{1b}[18446744073709551615Cb\u{1b}[99999999999Gc\n");
        assert!(line.len() < 10_000, "{} bytes", line.len());
        assert!(line.starts_with('a') && line.trim_end().ends_with('c'));
        assert_eq!(plain("x\u{9b}2Jy\n"), "x2Jy\n");
    }

    #[test]
    fn colours_titles_and_other_escapes_are_dropped() {
        assert_eq!(plain("\x1b[1;31mred\x1b[0m plain\n"), "red plain\n");
        assert_eq!(plain("\x1b]0;a title\x07after\n"), "after\n");
        assert_eq!(
            plain("\x1b]8;;https://x.test/\x1b\\link\x1b]8;;\x1b\\ text\n"),
            "link text\n"
        );
        assert_eq!(
            plain("\x1b(Bcharset \x1b=keypad \x1b7saved\n"),
            "charset keypad saved\n"
        );
        assert_eq!(
            plain("\x1b[?25lhidden cursor\x1b[?25h\n"),
            "hidden cursor\n"
        );
        assert_eq!(plain("\x1bPq#0;2;0;0;0\x1b\\sixel gone\n"), "sixel gone\n");
        assert_eq!(plain("bell\x07 and \x00nul\n"), "bell and nul\n");
    }

    #[test]
    fn carriage_returns_overdraw_and_erase_in_line_clears() {
        assert_eq!(plain("progress 10%\rprogress 100%\r\n"), "progress 100%\n");
        assert_eq!(plain("abcdef\rXY\n"), "XYcdef\n");
        assert_eq!(plain("downloading 99%\r\x1b[Kdone\n"), "done\n");
        assert_eq!(plain("long line here\r\x1b[2Kshort\n"), "short\n");
        assert_eq!(plain("abc\x08\x08X\n"), "aXc\n");
        assert_eq!(plain("12345\x1b[3GX\n"), "12X45\n");
        assert_eq!(plain("ab\x1b[2CX\n"), "ab  X\n");
        assert_eq!(plain("line one\r\nline two\r\n"), "line one\nline two\n");
    }

    #[test]
    fn overdraw_keeps_multibyte_characters_whole() {
        assert_eq!(plain("héllo wörld\rHÉ\n"), "HÉllo wörld\n");
        assert_eq!(plain("✓ ok\r✗\n"), "✗ ok\n");
    }

    #[test]
    fn an_unterminated_string_sequence_ends_at_the_newline() {
        assert_eq!(
            plain("cut \x1b]0;title never ended\ngit-sprint: w: agent exited 1\n"),
            "cut \ngit-sprint: w: agent exited 1\n"
        );
        assert_eq!(plain("x\x1b[12\ny\n"), "x\ny\n");
    }

    #[test]
    fn chunks_may_split_sequences_and_characters_anywhere() {
        let input = "\x1b[1;32mgrün\x1b[0m ✓\r\x1b[Kfertig ✓\n\x1b]0;t\x07zwei\n".as_bytes();
        let whole = TerminalText::plain(input);
        for size in 1..input.len() {
            let mut t = TerminalText::new();
            let mut out = Vec::new();
            for chunk in input.chunks(size) {
                t.push(chunk, &mut out);
            }
            t.finish(&mut out);
            assert_eq!(out, whole, "chunks of {size}");
        }
        assert_eq!(String::from_utf8(whole).unwrap(), "fertig ✓\nzwei\n");
    }

    #[test]
    fn lines_are_emitted_when_complete_and_the_rest_on_finish() {
        let mut t = TerminalText::new();
        let mut out = Vec::new();
        t.push(b"one\ntw", &mut out);
        assert_eq!(out, b"one\n");
        t.push(b"o", &mut out);
        assert_eq!(out, b"one\n");
        t.finish(&mut out);
        assert_eq!(out, b"one\ntwo\n");
        // Invalid UTF-8 becomes replacement characters, never a panic.
        assert_eq!(
            TerminalText::plain(b"a\xffb\xe2\x9c\n"),
            "a\u{fffd}b\u{fffd}\n".as_bytes()
        );
    }
}
