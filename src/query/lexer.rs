//! A lexer for SQL fragments, just deep enough to find the positional parameters (`$1`, `$2`,
//! ...) the way PostgreSQL's own scanner (`scan.l`) does, so that the library can renumber them
//! when it combines fragments. A `$1` inside any of these is text, not a parameter:
//!
//! * string literals: `'...'` and `N'...'` (`''` is a quote; a backslash is an ordinary
//!   character with `standard_conforming_strings` on, an escape with it off), `E'...'`
//!   (backslash escapes always), `B'...'`, `X'...'`, `U&'...'`; a literal followed by
//!   whitespace holding a newline (`--` comments allowed) and another `'...'` continues in
//!   that segment, in the same mode (reported in [`Lexed::continued_string`]);
//! * quoted identifiers `"..."` (`""` is a quote) and `U&"..."`;
//! * dollar-quoted strings `$tag$...$tag$` and `$$...$$` (a tag is an identifier without `$`);
//! * comments: `--` to the end of the line, and `/* ... */`, which nest;
//! * identifiers, which may contain `$` (`a$1` is one identifier).
//!
//! Everything else (operators, `::` casts, numbers, punctuation) is skipped byte by byte,
//! except parentheses, whose nesting is tracked. The lexer never fails: what it found is
//! reported in [`Lexed`], and the caller decides what is an error (see `params.rs`).

/// A `$k` found outside literals, identifiers and comments.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ParamRef {
    /// Byte offset of the `$`.
    pub start: usize,
    /// Byte offset just past the last digit.
    pub end: usize,
    /// `k`, or `None` when it does not fit in a `u32`.
    pub number: Option<u32>,
    /// The digits are directly followed by an identifier character (`$1abc`), which
    /// PostgreSQL rejects ("trailing junk after parameter").
    pub junk: bool,
}

/// A construct the fragment opens and never closes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Open {
    /// A string literal (any kind) starting at this byte.
    String(usize),
    /// A quoted identifier starting at this byte.
    QuotedIdent(usize),
    /// A dollar-quoted string starting at this byte, with its delimiter (`$tag$`).
    DollarQuote(usize, String),
    /// A `/*` comment starting at this byte.
    BlockComment(usize),
}

impl Open {
    /// Where the construct starts, and what it is, for error messages.
    pub fn describe(&self) -> String {
        match self {
            Open::String(at) => format!("a string literal opened at byte {at}"),
            Open::QuotedIdent(at) => format!("a quoted identifier opened at byte {at}"),
            Open::DollarQuote(at, delim) => {
                format!("a dollar-quoted string ({delim}) opened at byte {at}")
            }
            Open::BlockComment(at) => format!("a /* comment opened at byte {at}"),
        }
    }
}

/// What [`lex`] found in a fragment.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Lexed {
    /// Every parameter reference, in order.
    pub params: Vec<ParamRef>,
    /// The fragment ends inside this construct.
    pub open: Option<Open>,
    /// The fragment ends inside a `--` comment (text appended after it on the same line
    /// would be commented out).
    pub ends_in_line_comment: bool,
    /// The first `)` that closes a parenthesis the fragment did not open (byte offset).
    pub unmatched_close: Option<usize>,
    /// `(` left open at the end (byte offsets, outermost first).
    pub unclosed_open: Vec<usize>,
    /// The first string literal continued after a newline (PostgreSQL's `quotecontinue`:
    /// `'a'` then whitespace holding a newline, `--` comments allowed, then `'b'` is the one
    /// constant `'ab'`, the second segment lexed in the first one's mode): the byte where the
    /// literal starts and the byte of the quote that continues it.
    pub continued_string: Option<(usize, usize)>,
}

/// `standard_conforming_strings`: whether a backslash in a plain `'...'` literal is an
/// ordinary character (on, PostgreSQL's default since 9.1) or an escape (off).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Strings {
    Standard,
    BackslashEscapes,
}

fn ident_start(b: u8) -> bool {
    b.is_ascii_alphabetic() || b == b'_' || b >= 0x80
}

fn ident_cont(b: u8) -> bool {
    ident_start(b) || b.is_ascii_digit() || b == b'$'
}

/// A dollar-quote tag character (an identifier character other than `$`).
fn dolq_cont(b: u8) -> bool {
    ident_start(b) || b.is_ascii_digit()
}

/// Lex `sql`; `strings` says how plain `'...'` literals treat backslashes.
pub fn lex(sql: &str, strings: Strings) -> Lexed {
    let b = sql.as_bytes();
    let n = b.len();
    let mut out = Lexed::default();
    let mut i = 0;
    while i < n {
        let c = b[i];
        match c {
            b'-' if b.get(i + 1) == Some(&b'-') => {
                match b[i..].iter().position(|&x| x == b'\n' || x == b'\r') {
                    Some(p) => i += p + 1,
                    None => {
                        out.ends_in_line_comment = true;
                        i = n;
                    }
                }
            }
            b'/' if b.get(i + 1) == Some(&b'*') => match block_comment_end(b, i) {
                Some(end) => i = end,
                None => {
                    out.open = Some(Open::BlockComment(i));
                    i = n;
                }
            },
            b'\'' => {
                let escapes = strings == Strings::BackslashEscapes;
                i = string_end(b, i, i, escapes, &mut out);
            }
            b'"' => i = quoted_end(b, i, b'"', false, &mut out.open, Open::QuotedIdent(i)),
            b'$' => {
                if b.get(i + 1).is_some_and(u8::is_ascii_digit) {
                    let mut j = i + 1;
                    while j < n && b[j].is_ascii_digit() {
                        j += 1;
                    }
                    out.params.push(ParamRef {
                        start: i,
                        end: j,
                        number: sql[i + 1..j].parse().ok(),
                        junk: j < n && ident_start(b[j]),
                    });
                    i = j;
                } else if let Some(delim_end) = dollar_delimiter(b, i) {
                    let delim = &sql[i..delim_end];
                    match sql[delim_end..].find(delim) {
                        Some(p) => i = delim_end + p + delim.len(),
                        None => {
                            out.open = Some(Open::DollarQuote(i, delim.to_string()));
                            i = n;
                        }
                    }
                } else {
                    i += 1;
                }
            }
            b'(' => {
                out.unclosed_open.push(i);
                i += 1;
            }
            b')' => {
                if out.unclosed_open.pop().is_none() && out.unmatched_close.is_none() {
                    out.unmatched_close = Some(i);
                }
                i += 1;
            }
            c if ident_start(c) => {
                let start = i;
                while i < n && ident_cont(b[i]) {
                    i += 1;
                }
                // A one-letter identifier directly followed by a quote is a literal prefix
                // (PostgreSQL's longest match: `E'` beats the identifier `E`).
                let word = &b[start..i];
                match (word, b.get(i), b.get(i + 1)) {
                    ([b'e' | b'E'], Some(b'\''), _) => {
                        i = string_end(b, start, i, true, &mut out);
                    }
                    // N'' is a plain literal for the scanner (only the type differs), so it
                    // follows standard_conforming_strings like '...'.
                    ([b'n' | b'N'], Some(b'\''), _) => {
                        let escapes = strings == Strings::BackslashEscapes;
                        i = string_end(b, start, i, escapes, &mut out);
                    }
                    ([b'b' | b'B' | b'x' | b'X'], Some(b'\''), _) => {
                        i = string_end(b, start, i, false, &mut out);
                    }
                    ([b'u' | b'U'], Some(b'&'), Some(b'\'')) => {
                        i = string_end(b, start, i + 1, false, &mut out);
                    }
                    ([b'u' | b'U'], Some(b'&'), Some(b'"')) => {
                        let open = Open::QuotedIdent(start);
                        i = quoted_end(b, i + 1, b'"', false, &mut out.open, open);
                    }
                    _ => {}
                }
            }
            c if c.is_ascii_digit() => {
                // A number (and any junk glued to it, which the server rejects); never `$`.
                while i < n && (b[i].is_ascii_alphanumeric() || b[i] == b'_' || b[i] == b'.') {
                    i += 1;
                }
            }
            _ => i += 1,
        }
    }
    out
}

/// The end (exclusive) of the quoted construct whose opening `quote` is at `start`: a
/// doubled quote stands for itself, and with `escapes` a backslash escapes the next byte.
/// Unterminated: records `open` and returns the end of input.
fn quoted_end(
    b: &[u8],
    start: usize,
    quote: u8,
    escapes: bool,
    open_slot: &mut Option<Open>,
    open: Open,
) -> usize {
    let mut i = start + 1;
    while i < b.len() {
        let c = b[i];
        if escapes && c == b'\\' {
            i += 2;
        } else if c == quote {
            if b.get(i + 1) == Some(&quote) {
                i += 2;
            } else {
                return i + 1;
            }
        } else {
            i += 1;
        }
    }
    *open_slot = Some(open);
    b.len()
}

/// The end (exclusive) of the string literal (prefix at `start`, opening quote at `quote_at`)
/// with all its continuation segments (see [`continuation_quote`]), each lexed in the same
/// mode; the first continuation is recorded in `out.continued_string`.
fn string_end(b: &[u8], start: usize, quote_at: usize, escapes: bool, out: &mut Lexed) -> usize {
    let mut at = quote_at;
    loop {
        let end = quoted_end(b, at, b'\'', escapes, &mut out.open, Open::String(start));
        if out.open.is_some() {
            return end;
        }
        match continuation_quote(b, end) {
            Some(q) => {
                out.continued_string.get_or_insert((start, q));
                at = q;
            }
            None => return end,
        }
    }
}

/// PostgreSQL's `{whitespace_with_newline}{quote}` at `i` (just past a string literal's
/// closing quote): horizontal space and `--` comments, a newline, then any whitespace and
/// `--` comments ended by a newline, then a quote. Returns the byte of that quote. `\v`
/// counts as whitespace (PostgreSQL 16 and later), so this errs towards finding one.
fn continuation_quote(b: &[u8], mut i: usize) -> Option<usize> {
    let mut newline = false;
    while i < b.len() {
        match b[i] {
            b'\n' | b'\r' => {
                newline = true;
                i += 1;
            }
            b' ' | b'\t' | b'\x0c' | b'\x0b' => i += 1,
            b'-' if b.get(i + 1) == Some(&b'-') => {
                // a comment runs to the end of the line; the newline is taken above
                i += b[i..].iter().position(|&x| x == b'\n' || x == b'\r')?;
            }
            b'\'' if newline => return Some(i),
            _ => return None,
        }
    }
    None
}

/// The end (exclusive) of the nested `/* */` comment starting at `start`, if it is closed.
fn block_comment_end(b: &[u8], start: usize) -> Option<usize> {
    let mut depth = 0usize;
    let mut i = start;
    while i + 1 < b.len() {
        match (b[i], b[i + 1]) {
            (b'/', b'*') => {
                depth += 1;
                i += 2;
            }
            (b'*', b'/') => {
                depth -= 1;
                i += 2;
                if depth == 0 {
                    return Some(i);
                }
            }
            _ => i += 1,
        }
    }
    None
}

/// If a dollar-quote delimiter (`$$` or `$tag$`) starts at `i` (a `$` not followed by a
/// digit), the end (exclusive) of that delimiter.
fn dollar_delimiter(b: &[u8], i: usize) -> Option<usize> {
    let mut j = i + 1;
    if j < b.len() && ident_start(b[j]) {
        while j < b.len() && dolq_cont(b[j]) {
            j += 1;
        }
    }
    (b.get(j) == Some(&b'$')).then_some(j + 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The parameter numbers found, in order.
    fn nums(sql: &str) -> Vec<u32> {
        lex(sql, Strings::Standard)
            .params
            .iter()
            .map(|p| p.number.unwrap())
            .collect()
    }

    #[test]
    fn plain_parameters_and_casts() {
        assert_eq!(nums("a = $1"), [1]);
        assert_eq!(nums("$2::int > $1::numeric AND x = $10"), [2, 1, 10]);
        assert_eq!(nums("x::text=$1"), [1]);
        assert_eq!(nums("f($1,$2)"), [1, 2]);
        assert_eq!(nums("(a)::text[] @> ARRAY[$3]"), [3]);
        let p = lex("  $12 ", Strings::Standard).params[0];
        assert_eq!((p.start, p.end, p.number, p.junk), (2, 5, Some(12), false));
    }

    #[test]
    fn string_literals_hide_parameters() {
        assert_eq!(nums("x = '$1'"), Vec::<u32>::new());
        assert_eq!(nums("x = 'it''s $1' AND y = $1"), [1]);
        // standard_conforming_strings on: the backslash is ordinary, the literal ends there.
        assert_eq!(nums(r"x = 'a\' AND y = $1"), [1]);
        // E'' strings: \' is an escaped quote, \\ a backslash.
        assert_eq!(nums(r"x = E'a\' $1' AND y = $2"), [2]);
        assert_eq!(nums(r"x = E'a\\' AND y = $2"), [2]);
        assert_eq!(nums(r"x = e'\'''$1' AND $3 = 1"), [3]);
        // other prefixes behave as plain literals
        assert_eq!(nums("N'$1' || B'01' || X'1F' || U&'d\\0061$1' || $4"), [4]);
        // a word ending in e is an identifier followed by a plain literal
        assert_eq!(nums(r"some'a\' $1"), [1]);
    }

    #[test]
    fn standard_conforming_strings_off_makes_backslash_an_escape() {
        let off = lex(r"x = 'a\' AND y = $1'", Strings::BackslashEscapes);
        assert!(off.params.is_empty());
        assert_eq!(off.open, None);
        let on = lex(r"x = 'a\' AND y = $1'", Strings::Standard);
        assert_eq!(on.params.len(), 1);
        assert_eq!(on.open, Some(Open::String(19)));
    }

    #[test]
    fn quoted_identifiers_hide_parameters() {
        assert_eq!(nums(r#""col$1" = $1"#), [1]);
        assert_eq!(nums(r#""a""$2" = $1"#), [1]);
        assert_eq!(nums(r#"U&"d$1" = $2"#), [2]);
        // identifiers may contain $ and digits
        assert_eq!(nums("a$1 = b$2$ AND _x$3 = $4"), [4]);
    }

    #[test]
    fn dollar_quotes_hide_parameters() {
        assert_eq!(nums("x = $$ $1 $$ AND y = $2"), [2]);
        assert_eq!(nums("x = $tag$ $1 $$ $other$ $1 $tag$ AND y = $3"), [3]);
        // a tag is case-sensitive and the first matching delimiter closes it
        assert_eq!(nums("$a$ $A$ $1 $a$ = $2"), [2]);
        // `$x$` inside `$xy$ ... $xy$` is text
        assert_eq!(nums("$xy$ $x$ $1 $xy$ || $5"), [5]);
        // a `$` that starts no delimiter is just a character
        assert_eq!(nums("a $ b = $1"), [1]);
        let l = lex("x = $q$ never closed $1", Strings::Standard);
        assert!(l.params.is_empty());
        assert_eq!(l.open, Some(Open::DollarQuote(4, "$q$".into())));
    }

    #[test]
    fn comments_hide_parameters() {
        assert_eq!(nums("x = 1 -- $1\n AND y = $2"), [2]);
        assert_eq!(nums("x = 1 --$1\r AND y = $2"), [2]);
        assert_eq!(nums("/* $1 */ $2"), [2]);
        // comments nest
        assert_eq!(nums("/* a /* $1 */ $2 */ $3"), [3]);
        // an operator running into -- or /* starts a comment
        assert_eq!(nums("1 +-- $1\n$2"), [2]);
        let l = lex("x = $1 -- trailing", Strings::Standard);
        assert!(l.ends_in_line_comment);
        assert_eq!(l.params.len(), 1);
        let l = lex("x = $1 /* /* */", Strings::Standard);
        assert_eq!(l.open, Some(Open::BlockComment(7)));
        assert!(!lex("-- a\nx", Strings::Standard).ends_in_line_comment);
    }

    #[test]
    fn numbers_and_junk() {
        assert_eq!(nums("1.5e3 = $1"), [1]);
        let l = lex("$1abc", Strings::Standard);
        assert!(l.params[0].junk);
        assert!(!lex("$1::int", Strings::Standard).params[0].junk);
        assert_eq!(lex("$0", Strings::Standard).params[0].number, Some(0));
        assert_eq!(
            lex("$99999999999", Strings::Standard).params[0].number,
            None
        );
    }

    #[test]
    fn unterminated_constructs_are_reported() {
        assert_eq!(
            lex("x = 'abc", Strings::Standard).open,
            Some(Open::String(4))
        );
        assert_eq!(
            lex("x = E'abc\\'", Strings::Standard).open,
            Some(Open::String(4))
        );
        assert_eq!(
            lex("\"abc", Strings::Standard).open,
            Some(Open::QuotedIdent(0))
        );
        assert_eq!(lex("x = 'a''b'", Strings::Standard).open, None);
    }

    #[test]
    fn parentheses_are_tracked() {
        let l = lex("(a) AND (b OR (c))", Strings::Standard);
        assert_eq!((l.unmatched_close, l.unclosed_open.len()), (None, 0));
        let l = lex("true) OR (true", Strings::Standard);
        assert_eq!(l.unmatched_close, Some(4));
        let l = lex("f(x, '(' ) AND (y", Strings::Standard);
        assert_eq!(
            (l.unmatched_close, l.unclosed_open.clone()),
            (None, vec![15])
        );
        // parentheses in literals, identifiers and comments do not count
        let l = lex("')' = \")\" /* ) */ -- )", Strings::Standard);
        assert_eq!((l.unmatched_close, l.unclosed_open.len()), (None, 0));
    }

    #[test]
    fn literals_continue_after_a_newline_in_the_same_mode() {
        let cont = |sql: &str| lex(sql, Strings::Standard).continued_string;
        assert_eq!(cont("x = 'a'\n'b'"), Some((4, 8)));
        assert_eq!(cont("x = 'a' \t\r\n  \n 'b'"), Some((4, 15)));
        assert_eq!(cont("'a' -- c\n'b'"), Some((0, 9)));
        assert_eq!(cont("'a'\n-- c\n\n'b'"), Some((0, 10)));
        assert_eq!(cont("E'a'\n'b'"), Some((0, 5)));
        assert_eq!(cont("U&'a'\n'b'"), Some((0, 6)));
        assert_eq!(cont("B'1'\n'0'"), Some((0, 5)));
        // no newline, a /* */ comment, or a line comment running into the quote: two tokens
        assert_eq!(cont("'a' 'b'"), None);
        assert_eq!(cont("'a' /* */\n'b'"), None);
        assert_eq!(cont("'a'\n-- c 'b'"), None);
        assert_eq!(cont("\"a\"\n\"b\""), None);
        assert_eq!(cont("$$a$$\n'b'"), None);
        // the continuation keeps E'' escapes: `\'` does not end it, so `$1` is inside it
        let l = lex("E'x'\n'\\' = $1 --'", Strings::Standard);
        assert!(l.params.is_empty(), "{l:?}");
        assert_eq!(l.open, None);
        // and a plain continuation keeps the plain rule
        let l = lex("'x'\n'\\' = $1", Strings::Standard);
        assert_eq!(l.params.len(), 1);
        // every segment is followed: the third one is found too
        let l = lex("'a'\n'b'\n'c' = $1", Strings::Standard);
        assert_eq!((l.continued_string, l.params.len()), (Some((0, 4)), 1));
        let l = lex("'a'\n'b", Strings::Standard);
        assert_eq!(l.open, Some(Open::String(0)));
    }

    #[test]
    fn n_literals_follow_standard_conforming_strings() {
        let off = lex(r"N'\' $1'", Strings::BackslashEscapes);
        assert!(off.params.is_empty());
        assert_eq!(off.open, None);
        let on = lex(r"N'\' $1'", Strings::Standard);
        assert_eq!(on.params.len(), 1);
        assert_eq!(on.open, Some(Open::String(7)));
        // B'' and X'' never take escapes
        assert_eq!(lex(r"B'\' $1", Strings::BackslashEscapes).params.len(), 1);
    }

    #[test]
    fn non_ascii_text_is_handled_bytewise() {
        assert_eq!(
            nums("données = $1 AND 'é$1' = $2 AND $é$ $3 $é$ = $3"),
            [1, 2, 3]
        );
        assert_eq!(nums("Ω$1 = $1"), [1]);
    }
}
