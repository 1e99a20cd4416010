//! The password file (`~/.pgpass`, `passfile`, `PGPASSFILE`), read as libpq does.

use std::path::Path;

/// Read one `:`-terminated field with `\` escapes. Returns the unescaped
/// field, whether it was the bare wildcard `*`, and the rest after the `:`;
/// `None` if the line ends before the `:`.
fn pgpass_field(s: &str) -> Option<(String, bool, &str)> {
    let mut field = String::new();
    let mut it = s.char_indices();
    while let Some((i, c)) = it.next() {
        match c {
            '\\' => {
                if let Some((_, next)) = it.next() {
                    field.push(next);
                }
            }
            ':' => return Some((field, &s[..i] == "*", &s[i + 1..])),
            c => field.push(c),
        }
    }
    None
}

/// Find the password of the first line matching the connection, following
/// libpq's rules. An empty password on the first matching line yields `None`.
pub(super) fn pgpass_lookup<'a>(
    lines: impl Iterator<Item = &'a str>,
    host: &str,
    port: &str,
    dbname: &str,
    user: &str,
) -> Option<String> {
    'lines: for line in lines {
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let mut rest = line;
        for wanted in [host, port, dbname, user] {
            match pgpass_field(rest) {
                Some((field, wildcard, next)) if wildcard || field == wanted => rest = next,
                _ => continue 'lines,
            }
        }
        // The password runs to the next unescaped ':' or the end of line.
        let mut password = String::new();
        let mut chars = rest.chars();
        while let Some(c) = chars.next() {
            match c {
                '\\' => {
                    if let Some(next) = chars.next() {
                        password.push(next);
                    }
                }
                ':' => break,
                c => password.push(c),
            }
        }
        return Some(password).filter(|p| !p.is_empty());
    }
    None
}

/// Look the connection up in a password file. A missing or unreadable file,
/// or (on Unix) one that is not a regular file or grants any permission to
/// group or others, is ignored, as libpq does. Lines that are not valid UTF-8
/// are skipped.
pub(super) fn password_from_file(
    path: &Path,
    host: &str,
    port: &str,
    dbname: &str,
    user: &str,
) -> Option<String> {
    let meta = std::fs::metadata(path).ok()?;
    if !meta.is_file() {
        return None;
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        if meta.permissions().mode() & 0o077 != 0 {
            return None;
        }
    }
    let contents = std::fs::read(path).ok()?;
    let lines = contents
        .split(|&b| b == b'\n')
        .filter_map(|l| std::str::from_utf8(l).ok())
        .map(|l| l.strip_suffix('\r').unwrap_or(l));
    pgpass_lookup(lines, host, port, dbname, user)
}
