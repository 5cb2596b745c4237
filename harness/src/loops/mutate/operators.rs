//! Mutants of one line of kernel C: the small, local changes a reviewer would call a bug
//! (a condition negated or made always true, a call or a jump deleted, another errno, a
//! constant off by one, `&&` for `||`, a comparison shifted by one, an early return). Written
//! here rather than taken from a general tool: universalmutator's regular expressions make
//! hundreds of mutants per line of kernel C, most of which do not compile or change nothing
//! (comments, strings, macro arguments), and each mutant costs a kernel build and a boot.
//!
//! A mutant is one line replaced by one line; what does not parse on its line (a condition
//! that goes on past it) makes none.

/// What the function a line is in returns: the early-return operator's `return;` or
/// `return 0;` (0 is also NULL and false).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Returns {
    /// `void`: `return;`.
    Void,
    /// Anything else: `return 0;`.
    Value,
}

/// One mutant of a line: the operator's name and the line as it becomes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LineMutant {
    /// The operator's name, as reports give it.
    pub operator: &'static str,
    /// The whole line as the mutant has it.
    pub text: String,
}

/// Every mutant of `line` (without its newline), each a different text.
pub fn of_line(line: &str, returns: Returns) -> Vec<LineMutant> {
    let code = code_part(line);
    let trimmed = code.trim();
    if trimmed.is_empty() || trimmed.starts_with('#') || trimmed.starts_with("//") {
        return Vec::new();
    }
    let mut out: Vec<LineMutant> = Vec::new();
    let mut add = |operator: &'static str, text: Option<String>| {
        if let Some(text) = text {
            if text != line && !out.iter().any(|m| m.text == text) {
                out.push(LineMutant { operator, text });
            }
        }
    };
    let condition = condition_span(code);
    if let Some((open, close)) = condition {
        let inner = &code[open + 1..close];
        add(
            "negate condition",
            Some(format!(
                "{}(!({inner})){}",
                &line[..open],
                &line[close + 1..]
            )),
        );
        add(
            "condition always true",
            Some(format!("{}(1){}", &line[..open], &line[close + 1..])),
        );
    }
    if condition.is_none() && is_statement(trimmed) {
        let indent = &line[..line.len() - line.trim_start().len()];
        add(
            "delete statement",
            Some(format!("{indent}; /* fpt mutant: deleted */")),
        );
        if !trimmed.starts_with("return") && !trimmed.starts_with("goto") {
            let ret = match returns {
                Returns::Void => "return;",
                Returns::Value => "return 0;",
            };
            add(
                "return early",
                Some(format!("{indent}{ret} {}", line.trim_start())),
            );
        }
    }
    add("replace errno", replace_errno(line, code.len()));
    add("swap && and ||", swap_logical(line, code.len()));
    add("shift comparison", shift_comparison(line, code.len()));
    add("replace constant", replace_constant(line, code.len()));
    out
}

/// The line up to a `//` or `/*` comment, and with string and character literals blanked
/// out (same length), so that no operator reaches into them.
fn code_part(line: &str) -> &str {
    let bytes = line.as_bytes();
    let mut in_str: Option<u8> = None;
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        match in_str {
            Some(_) if b == b'\\' => i += 1,
            Some(q) if b == q => in_str = None,
            Some(_) => {}
            None if b == b'"' || b == b'\'' => in_str = Some(b),
            None if b == b'/' && matches!(bytes.get(i + 1), Some(b'/') | Some(b'*')) => {
                return &line[..i];
            }
            None => {}
        }
        i += 1;
    }
    line
}

/// Where a line's code has a string or character literal (byte positions to skip).
fn in_literal(code: &str) -> Vec<bool> {
    let bytes = code.as_bytes();
    let mut mask = vec![false; bytes.len()];
    let mut in_str: Option<u8> = None;
    let mut escaped = false;
    for (i, &b) in bytes.iter().enumerate() {
        match in_str {
            Some(q) => {
                mask[i] = true;
                if escaped {
                    escaped = false;
                } else if b == b'\\' {
                    escaped = true;
                } else if b == q {
                    in_str = None;
                }
            }
            None if b == b'"' || b == b'\'' => {
                in_str = Some(b);
                mask[i] = true;
            }
            None => {}
        }
    }
    mask
}

/// The parentheses of an `if (...)` or `while (...)` whose condition closes on this line.
fn condition_span(code: &str) -> Option<(usize, usize)> {
    let trimmed = code.trim_start();
    let start = code.len() - trimmed.len();
    let keyword = ["if", "} else if", "else if", "while"]
        .into_iter()
        .find(|k| trimmed.starts_with(k) && trimmed[k.len()..].trim_start().starts_with('('))?;
    let open = start + keyword.len() + trimmed[keyword.len()..].find('(')?;
    let mask = in_literal(code);
    let mut depth = 0;
    for (i, b) in code.bytes().enumerate().skip(open) {
        if mask[i] {
            continue;
        }
        match b {
            b'(' => depth += 1,
            b')' => {
                depth -= 1;
                if depth == 0 {
                    return Some((open, i));
                }
            }
            _ => {}
        }
    }
    None
}

/// A whole statement on one line that can go: a call, an assignment, a jump; not a
/// declaration, a label, a brace, or the end of a multi-line statement.
fn is_statement(trimmed: &str) -> bool {
    const NOT: [&str; 16] = [
        "struct ",
        "const ",
        "static ",
        "int ",
        "unsigned ",
        "bool ",
        "long ",
        "u32 ",
        "u64 ",
        "size_t ",
        "ssize_t ",
        "loff_t ",
        "char ",
        "void ",
        "enum ",
        "union ",
    ];
    if !trimmed.ends_with(';') || NOT.iter().any(|t| trimmed.starts_with(t)) {
        return false;
    }
    let first = trimmed.chars().next().unwrap_or(' ');
    if !(first.is_ascii_alphabetic() || first == '_' || first == '*') {
        return false;
    }
    if trimmed.starts_with("break") || trimmed.starts_with("continue") {
        return false;
    }
    // Balanced on its own line: not the tail of a call begun above.
    let opens = trimmed.matches('(').count();
    opens == trimmed.matches(')').count()
}

/// The code bytes of `line` (its first `code_len` bytes) that are not in a literal.
fn code_positions(line: &str, code_len: usize) -> Vec<bool> {
    let mut mask = in_literal(&line[..code_len]);
    for m in &mut mask {
        *m = !*m;
    }
    mask
}

/// The first `-E<NAME>` as another errno: EINVAL becomes EIO, anything else EINVAL.
fn replace_errno(line: &str, code_len: usize) -> Option<String> {
    let code = &line[..code_len];
    let ok = code_positions(line, code_len);
    let at = code
        .match_indices("-E")
        .find(|(i, _)| ok[*i] && code[i + 2..].starts_with(|c: char| c.is_ascii_uppercase()))?
        .0;
    let name_len = code[at + 1..]
        .find(|c: char| !(c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_'))
        .unwrap_or(code.len() - at - 1);
    let name = &code[at + 1..at + 1 + name_len];
    let other = if name == "EINVAL" { "EIO" } else { "EINVAL" };
    Some(format!(
        "{}-{other}{}",
        &line[..at],
        &line[at + 1 + name_len..]
    ))
}

/// The first `&&` as `||`, or the first `||` as `&&`.
fn swap_logical(line: &str, code_len: usize) -> Option<String> {
    let code = &line[..code_len];
    let ok = code_positions(line, code_len);
    let (at, op) = ["&&", "||"]
        .iter()
        .filter_map(|op| code.match_indices(op).find(|(i, _)| ok[*i]))
        .min_by_key(|(i, _)| *i)?;
    let other = if op == "&&" { "||" } else { "&&" };
    Some(format!("{}{other}{}", &line[..at], &line[at + 2..]))
}

/// The first comparison shifted by one (`<` and `<=`, `>` and `>=`) or turned (`==` and `!=`).
fn shift_comparison(line: &str, code_len: usize) -> Option<String> {
    let code = &line[..code_len];
    let bytes = code.as_bytes();
    let ok = code_positions(line, code_len);
    for i in 0..bytes.len() {
        if !ok[i] {
            continue;
        }
        let next = bytes.get(i + 1).copied();
        let prev = if i > 0 { bytes[i - 1] } else { b' ' };
        let (len, with) = match (bytes[i], next) {
            (b'<', Some(b'=')) => (2, "<"),
            (b'>', Some(b'=')) => (2, ">"),
            (b'=', Some(b'=')) => (2, "!="),
            (b'!', Some(b'=')) => (2, "=="),
            // Not a shift (<<, >>), an arrow (->) or an include's <...>.
            (b'<', _) if next != Some(b'<') && prev != b'<' => (1, "<="),
            (b'>', _) if next != Some(b'>') && prev != b'>' && prev != b'-' => (1, ">="),
            _ => continue,
        };
        return Some(format!("{}{with}{}", &line[..i], &line[i + len..]));
    }
    None
}

/// The first decimal integer literal standing alone: 1 becomes 0, any other `N` becomes `N + 1`.
fn replace_constant(line: &str, code_len: usize) -> Option<String> {
    let code = &line[..code_len];
    let bytes = code.as_bytes();
    let ok = code_positions(line, code_len);
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        let prev = if i > 0 { bytes[i - 1] } else { b' ' };
        let starts = b.is_ascii_digit()
            && ok[i]
            && !(prev.is_ascii_alphanumeric() || prev == b'_' || prev == b'.');
        if !starts {
            i += 1;
            continue;
        }
        let end = code[i..]
            .find(|c: char| !c.is_ascii_alphanumeric())
            .map_or(code.len(), |n| i + n);
        let literal = &code[i..end];
        // Decimal integers only (no hex, no suffixes): what a mutant can say plainly.
        let Ok(n) = literal.parse::<u64>() else {
            i = end;
            continue;
        };
        let with = match n {
            1 => "0".to_string(),
            n => (n + 1).to_string(),
        };
        return Some(format!("{}{with}{}", &line[..i], &line[end..]));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn texts(line: &str, returns: Returns) -> Vec<(&'static str, String)> {
        of_line(line, returns)
            .into_iter()
            .map(|m| (m.operator, m.text))
            .collect()
    }

    #[test]
    fn a_condition_is_negated_made_true_shifted_and_its_constant_changed() {
        let got = texts("\tif (ret < 0)", Returns::Value);
        assert_eq!(
            got,
            [
                ("negate condition", "\tif (!(ret < 0))".to_string()),
                ("condition always true", "\tif (1)".to_string()),
                ("shift comparison", "\tif (ret <= 0)".to_string()),
                ("replace constant", "\tif (ret < 1)".to_string()),
            ]
        );
    }

    #[test]
    fn a_call_is_deleted_or_returned_before() {
        let got = texts("\tinode_unlock(inode);", Returns::Void);
        assert_eq!(
            got,
            [
                (
                    "delete statement",
                    "\t; /* fpt mutant: deleted */".to_string()
                ),
                ("return early", "\treturn; inode_unlock(inode);".to_string()),
            ]
        );
        // A jump is deleted, never returned before.
        let got = texts("\t\tgoto out_fput;", Returns::Value);
        assert_eq!(got.len(), 1, "{got:?}");
    }

    #[test]
    fn errnos_logic_and_arrows() {
        let got = texts("\tres = d_is_dir(d) ? -EISDIR : -EINVAL;", Returns::Value);
        assert!(got.contains(&(
            "replace errno",
            "\tres = d_is_dir(d) ? -EINVAL : -EINVAL;".to_string()
        )));
        let got = texts(
            "\tif (!fc->passthrough || !capable(CAP_SYS_ADMIN))",
            Returns::Value,
        );
        assert!(got.contains(&(
            "swap && and ||",
            "\tif (!fc->passthrough && !capable(CAP_SYS_ADMIN))".to_string()
        )));
        // An arrow is not a comparison, and a shift is not either.
        assert!(
            !got.iter().any(|(op, _)| *op == "shift comparison"),
            "{got:?}"
        );
        assert!(texts("\tx = a << 2;", Returns::Value)
            .iter()
            .all(|(op, _)| *op != "shift comparison"));
    }

    #[test]
    fn declarations_comments_strings_and_open_conditions_make_none_of_their_kind() {
        assert!(texts("\tstruct file *file;", Returns::Value).is_empty());
        assert!(texts("\t/* if (x < 1) */", Returns::Value).is_empty());
        assert!(texts("#define X 1", Returns::Value).is_empty());
        // A condition that goes on past its line: not negated (it would not compile).
        let got = texts("\tif (a &&", Returns::Value);
        assert!(
            got.iter().all(|(op, _)| !op.contains("condition")),
            "{got:?}"
        );
        // Numbers and operators in a string stay as they are.
        let got = texts("\tpr_info(\"x < 1 && y\");", Returns::Void);
        assert!(
            got.iter()
                .all(|(op, _)| *op == "delete statement" || *op == "return early"),
            "{got:?}"
        );
    }
}
