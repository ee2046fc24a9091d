//! Plain scalars as YAML 1.1 reads them, the way Ansible's parser (`PyYAML`) does: `yes` and
//! `off` are booleans, `0755` is octal, `1_000` and `1:30` are integers, while `1e3` and `y`
//! stay strings. Inventories are read so, since `ansible-inventory` must agree with ours.
//!
//! The document is parsed with YAML 1.2 rules first (keys stay as written); then each plain
//! scalar value is read again from its text in the source.

use super::{Node, Value};

/// Re-reads every plain scalar value under `node` by YAML 1.1 rules. `text` is the source.
pub(super) fn resolve(node: &mut Node, text: &str) {
    let lines: Vec<&str> = text.lines().collect();
    walk(node, &lines);
}

fn walk(node: &mut Node, lines: &[&str]) {
    match &mut node.value {
        Value::Seq(items) => items.iter_mut().for_each(|item| walk(item, lines)),
        Value::Map(entries) => entries.iter_mut().for_each(|(_, value)| walk(value, lines)),
        // Empty, `~` and `null` mean the same in both versions.
        Value::Null => {}
        value => {
            let Some(token) = plain_text(lines, node.span.line, node.span.col, value) else {
                return;
            };
            *value = scalar(&token).unwrap_or(Value::Str(token));
        }
    }
}

/// The text of the plain scalar at `line:col` holding `value`; `None` when the scalar is
/// quoted, a block, or behind an anchor or tag (those keep their 1.2 reading).
fn plain_text(lines: &[&str], line: u32, col: u32, value: &Value) -> Option<String> {
    let line = lines.get(usize::try_from(line).ok()?.checked_sub(1)?)?;
    let start = line
        .char_indices()
        .nth(usize::try_from(col).ok()?.checked_sub(1)?)
        .map(|(at, _)| at)?;
    let rest = &line[start..];
    if rest.starts_with(['\'', '"', '|', '>', '&', '!', '*']) {
        return None;
    }
    // A plain string is its own text (one that spans lines matches no pattern anyway);
    // a number or boolean is the word as written, up to what ends it.
    if let Value::Str(s) = value {
        return rest.starts_with(s.as_str()).then(|| s.clone());
    }
    let end = rest
        .find(|c: char| c.is_whitespace() || matches!(c, ',' | ']' | '}' | '#'))
        .unwrap_or(rest.len());
    Some(rest[..end].to_owned())
}

/// What a plain scalar means in YAML 1.1, unless it is a string.
fn scalar(text: &str) -> Option<Value> {
    match text {
        "yes" | "Yes" | "YES" | "true" | "True" | "TRUE" | "on" | "On" | "ON" => {
            Some(Value::Bool(true))
        }
        "no" | "No" | "NO" | "false" | "False" | "FALSE" | "off" | "Off" | "OFF" => {
            Some(Value::Bool(false))
        }
        "" | "~" | "null" | "Null" | "NULL" => Some(Value::Null),
        _ => integer(text)
            .map(Value::Int)
            .or_else(|| float(text).map(Value::Float)),
    }
}

fn signed(text: &str) -> (f64, &str) {
    match text.as_bytes().first() {
        Some(b'-') => (-1.0, &text[1..]),
        Some(b'+') => (1.0, &text[1..]),
        _ => (1.0, text),
    }
}

/// Digits of `radix` and underscores, at least one character.
fn digits(text: &str, radix: u32) -> bool {
    !text.is_empty() && text.chars().all(|c| c == '_' || c.is_digit(radix))
}

/// `[0-5]?[0-9]`: one sexagesimal place after the first.
fn sixty(part: &str) -> bool {
    let b = part.as_bytes();
    match b {
        [d] => d.is_ascii_digit(),
        [t, d] => (b'0'..=b'5').contains(t) && d.is_ascii_digit(),
        _ => false,
    }
}

/// `0b…`, `0x…`, `0…` (octal), decimal, and `1:30` (base 60), all with `_` allowed.
fn integer(text: &str) -> Option<i64> {
    let negative = text.starts_with('-');
    let body = text.strip_prefix(['-', '+']).unwrap_or(text);
    let number =
        |digits_only: &str, radix| i64::from_str_radix(&digits_only.replace('_', ""), radix);
    let value = if let Some(bin) = body.strip_prefix("0b") {
        digits(bin, 2).then(|| number(bin, 2))?.ok()?
    } else if let Some(hex) = body.strip_prefix("0x") {
        digits(hex, 16).then(|| number(hex, 16))?.ok()?
    } else if body == "0" {
        0
    } else if let Some(octal) = body.strip_prefix('0') {
        digits(octal, 8).then(|| number(octal, 8))?.ok()?
    } else if body.starts_with(|c: char| c.is_ascii_digit()) {
        let mut parts = body.split(':');
        let first = parts.next()?;
        if !digits(first, 10) {
            return None;
        }
        let mut value = number(first, 10).ok()?;
        for part in parts {
            if !sixty(part) {
                return None;
            }
            value = value
                .checked_mul(60)?
                .checked_add(part.parse::<i64>().ok()?)?;
        }
        value
    } else {
        return None;
    };
    Some(if negative { -value } else { value })
}

/// `1.5`, `1.`, `.5`, `1.5e+3` (the exponent's sign is required), `1:30.5`, `.inf`, `.nan`.
fn float(text: &str) -> Option<f64> {
    let (sign, body) = signed(text);
    match body {
        ".inf" | ".Inf" | ".INF" => return Some(sign * f64::INFINITY),
        ".nan" | ".NaN" | ".NAN" if body.len() == text.len() => return Some(f64::NAN),
        _ => {}
    }
    let (mantissa, exponent) = match body.find(['e', 'E']) {
        Some(at) => (&body[..at], Some(&body[at + 1..])),
        None => (body, None),
    };
    if let Some(exponent) = exponent {
        let digits_after = exponent.strip_prefix(['-', '+'])?;
        if digits_after.is_empty() || !digits_after.chars().all(|c| c.is_ascii_digit()) {
            return None;
        }
    }
    let (whole, fraction) = mantissa.split_once('.')?;
    if !fraction.chars().all(|c| c == '_' || c.is_ascii_digit()) {
        return None;
    }
    let fraction_value: f64 = format!("0.{}", fraction.replace('_', "")).parse().ok()?;
    let whole_value = if whole.is_empty() {
        // `.5`: no sign allowed, and a digit must follow the point.
        if body.len() != text.len() || !fraction.starts_with(|c: char| c.is_ascii_digit()) {
            return None;
        }
        0.0
    } else if whole.contains(':') {
        if exponent.is_some() {
            return None;
        }
        let mut parts = whole.split(':');
        let first = parts.next()?;
        if !first.starts_with(|c: char| c.is_ascii_digit()) || !digits(first, 10) {
            return None;
        }
        let mut value: f64 = first.replace('_', "").parse().ok()?;
        for part in parts {
            if !sixty(part) {
                return None;
            }
            value = value * 60.0 + part.parse::<f64>().ok()?;
        }
        value
    } else {
        if !whole.starts_with(|c: char| c.is_ascii_digit()) || !digits(whole, 10) {
            return None;
        }
        whole.replace('_', "").parse().ok()?
    };
    let exponent: i32 = exponent.map_or(Ok(0), str::parse).ok()?;
    Some(sign * (whole_value + fraction_value) * 10f64.powi(exponent))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(text: &str) -> Option<Value> {
        scalar(text)
    }

    #[test]
    fn booleans_include_yes_no_on_off_but_not_y_or_n() {
        for t in [
            "yes", "Yes", "YES", "on", "On", "ON", "true", "True", "TRUE",
        ] {
            assert_eq!(read(t), Some(Value::Bool(true)), "{t}");
        }
        for f in [
            "no", "No", "NO", "off", "Off", "OFF", "false", "False", "FALSE",
        ] {
            assert_eq!(read(f), Some(Value::Bool(false)), "{f}");
        }
        for s in ["y", "n", "Y", "N", "yES", "enabled"] {
            assert_eq!(read(s), None, "{s}");
        }
    }

    #[test]
    fn integers_in_every_base_with_underscores() {
        let cases = [
            ("0", 0),
            ("42", 42),
            ("-42", -42),
            ("+7", 7),
            ("1_000", 1000),
            ("0755", 493),
            ("0b1010", 10),
            ("0x1F", 31),
            ("-0x10", -16),
            ("1:30", 90),
            ("190:20:30", 685_230),
        ];
        for (text, value) in cases {
            assert_eq!(read(text), Some(Value::Int(value)), "{text}");
        }
        for s in ["08", "0o17", "1:60", "0x", "12a", "1__x", "10.0.0.1"] {
            assert_eq!(integer(s), None, "{s}");
        }
    }

    #[test]
    fn floats_need_a_point_and_a_signed_exponent() {
        let cases = [
            ("1.5", 1.5),
            ("-1.5", -1.5),
            ("1.", 1.0),
            (".5", 0.5),
            ("1.5e+3", 1500.0),
            ("1_000.5", 1000.5),
            ("1:30.5", 90.5),
        ];
        for (text, value) in cases {
            assert_eq!(read(text), Some(Value::Float(value)), "{text}");
        }
        assert_eq!(read(".inf"), Some(Value::Float(f64::INFINITY)));
        assert_eq!(read("-.inf"), Some(Value::Float(f64::NEG_INFINITY)));
        assert!(matches!(read(".nan"), Some(Value::Float(f)) if f.is_nan()));
        for s in [
            "1e3", "1.5e3", "-.5", "10.0.0.1", "1.2.3", ".", "-.nan", "3.10b",
        ] {
            assert_eq!(read(s), None, "{s}");
        }
    }

    #[test]
    fn null_words() {
        for n in ["~", "null", "Null", "NULL"] {
            assert_eq!(read(n), Some(Value::Null), "{n}");
        }
    }
}
