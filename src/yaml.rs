//! A YAML document as a tree of nodes that each know where they stand in the text.
//!
//! serde derives stop at the first problem and forget locations; an operator wants every
//! problem of a file at once, each pointing at its line. So YAML is read once into this
//! spanned tree (serde-saphyr does the syntax, duplicate keys and size budget), and the
//! runbook and inventory readers walk it, collecting diagnostics as they go.

use std::fmt;

use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};

use crate::source::Span;

mod yaml11;

/// One YAML node and where it starts.
#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    pub value: Value,
    pub span: Span,
}

/// The shapes a YAML node can take. Scalars keep their text so that a reader decides
/// what they mean (`5m` is a duration, `"5"` a string, `5` a number).
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
    Seq(Vec<Node>),
    Map(Vec<(Key, Node)>),
}

/// A mapping key: keys are strings in every format this tool reads.
#[derive(Debug, Clone, PartialEq)]
pub struct Key {
    pub name: String,
    pub span: Span,
}

impl Node {
    /// A short name of the node's kind, for "expected a mapping, found a list".
    #[must_use]
    pub fn kind(&self) -> &'static str {
        match self.value {
            Value::Null => "nothing",
            Value::Bool(_) => "a boolean",
            Value::Int(_) | Value::Float(_) => "a number",
            Value::Str(_) => "a string",
            Value::Seq(_) => "a list",
            Value::Map(_) => "a mapping",
        }
    }

    /// The node as text when it is a scalar (numbers and booleans as written).
    #[must_use]
    pub fn as_scalar(&self) -> Option<String> {
        match &self.value {
            Value::Str(s) => Some(s.clone()),
            Value::Int(i) => Some(i.to_string()),
            Value::Float(f) => Some(f.to_string()),
            Value::Bool(b) => Some(b.to_string()),
            Value::Null | Value::Seq(_) | Value::Map(_) => None,
        }
    }

    #[must_use]
    pub fn as_map(&self) -> Option<&[(Key, Node)]> {
        match &self.value {
            Value::Map(m) => Some(m),
            _ => None,
        }
    }

    #[must_use]
    pub fn as_seq(&self) -> Option<&[Node]> {
        match &self.value {
            Value::Seq(s) => Some(s),
            _ => None,
        }
    }

    #[must_use]
    pub fn is_null(&self) -> bool {
        matches!(self.value, Value::Null)
    }

    /// The value of `key` in a mapping node.
    #[must_use]
    pub fn get(&self, key: &str) -> Option<&Node> {
        self.as_map()?
            .iter()
            .find(|(k, _)| k.name == key)
            .map(|(_, v)| v)
    }

    /// The node as a JSON value, for inventories' free-form variables.
    #[must_use]
    pub fn to_json(&self) -> serde_json::Value {
        use serde_json::Value as J;
        match &self.value {
            Value::Null => J::Null,
            Value::Bool(b) => J::Bool(*b),
            Value::Int(i) => J::from(*i),
            Value::Float(f) => serde_json::Number::from_f64(*f).map_or(J::Null, J::Number),
            Value::Str(s) => J::String(s.clone()),
            Value::Seq(items) => J::Array(items.iter().map(Node::to_json).collect()),
            Value::Map(entries) => J::Object(
                entries
                    .iter()
                    .map(|(k, v)| (k.name.clone(), v.to_json()))
                    .collect(),
            ),
        }
    }
}

/// Why a text is not a YAML document this tool can read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyntaxError {
    pub message: String,
    pub span: Span,
    /// What to do about it, when the problem has a usual fix (tabs, duplicate keys).
    pub help: Option<String>,
}

/// Files above this size are refused before parsing: no runbook or inventory is near it,
/// and a huge file must not exhaust the memory of the machine running a recovery.
pub const MAX_FILE_BYTES: usize = 4 * 1024 * 1024;

/// What plain scalar values mean.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scalars {
    /// YAML 1.2: only `true`/`false` are booleans. Runbooks use this, so `on: ...` stays `on`.
    Yaml12,
    /// YAML 1.1 as Ansible's parser reads values (`yes`, `off`, `0755` octal, `1e3` a
    /// string…), for inventories; keys stay as written.
    Yaml11,
}

/// Parses one YAML 1.2 document into a spanned tree. An empty document is `Null`.
///
/// # Errors
/// The syntax problem (including duplicate keys) with its location.
pub fn parse(text: &str) -> Result<Node, SyntaxError> {
    parse_with(text, Scalars::Yaml12)
}

/// Parses one YAML document with the given scalar rules.
///
/// # Errors
/// The syntax problem (including duplicate keys) with its location.
pub fn parse_with(text: &str, scalars: Scalars) -> Result<Node, SyntaxError> {
    if text.len() > MAX_FILE_BYTES {
        return Err(SyntaxError {
            message: format!(
                "the file is {} bytes, more than the {} bytes a runbook or inventory may have",
                text.len(),
                MAX_FILE_BYTES
            ),
            span: Span::new(1, 1, 0),
            help: None,
        });
    }
    if text.trim().is_empty() {
        return Ok(Node {
            value: Value::Null,
            span: Span::new(1, 1, 0),
        });
    }
    let options = serde_saphyr::options! {
        duplicate_keys: serde_saphyr::DuplicateKeyPolicy::Error,
        strict_booleans: true,
    };
    serde_saphyr::from_str_with_options::<Option<Node>>(text, options)
        .map(|node| {
            let mut node = node.unwrap_or(Node {
                value: Value::Null,
                span: Span::new(1, 1, 0),
            });
            if scalars == Scalars::Yaml11 {
                yaml11::resolve(&mut node, text);
            }
            node
        })
        .map_err(|e| {
            let span = e.location().map_or(Span::new(1, 1, 0), span_of);
            syntax_error(&e.to_string(), span, text)
        })
}

/// serde-saphyr's message in an operator's words: without the position (the renderer
/// shows it) and without advice meant for programmers (`set DuplicateKeyPolicy…`).
fn syntax_error(raw: &str, span: Span, text: &str) -> SyntaxError {
    let line = first_line(raw);
    let rest = line.strip_prefix("error: ").unwrap_or(&line);
    let rest = match rest.strip_prefix("line ").and_then(|r| r.split_once(": ")) {
        Some((position, tail)) if position.contains("column") => tail,
        _ => rest,
    };
    if let Some(key) = rest.strip_prefix("duplicate mapping key: ") {
        let key = key.split_once(", set ").map_or(key, |(k, _)| k);
        return SyntaxError {
            message: format!("duplicate key `{key}`"),
            span: span.with_len(key.chars().count()),
            help: Some(format!(
                "`{key}` is already set above in the same mapping: keep one of them"
            )),
        };
    }
    if rest.starts_with("multiple YAML documents") {
        return SyntaxError {
            message: "a second YAML document starts here".into(),
            span: span.with_len(3),
            help: Some(
                "a runbook or inventory is one document: remove this `---` or split the file"
                    .into(),
            ),
        };
    }
    if rest.contains("tab") {
        // The scanner reports where the token before the tab started; point at the tab.
        let tab = text
            .lines()
            .enumerate()
            .skip(span.line.saturating_sub(1) as usize)
            .find_map(|(i, l)| l.find('\t').map(|at| (i, l[..at].chars().count())));
        let span = tab.map_or(span, |(i, col)| {
            Span::new(
                u32::try_from(i + 1).unwrap_or(u32::MAX),
                u32::try_from(col + 1).unwrap_or(u32::MAX),
                1,
            )
        });
        return SyntaxError {
            message: "a tab character where YAML allows only spaces".into(),
            span,
            help: Some("indent with spaces: YAML does not accept tabs for indentation".into()),
        };
    }
    SyntaxError {
        message: rest.to_string(),
        span,
        help: None,
    }
}

/// A saphyr location as our span (lines beyond `u32` do not occur: files are capped).
fn span_of(loc: serde_saphyr::Location) -> Span {
    let clamp = |n: u64| u32::try_from(n).unwrap_or(u32::MAX);
    Span::new(clamp(loc.line()), clamp(loc.column()), 1)
}

impl Span {
    /// Underline a scalar's text; containers are pointed at by their first character.
    fn with_len_of(self, value: &Value) -> Self {
        match value {
            Value::Str(s) => self.with_len(s.lines().next().unwrap_or("").chars().count()),
            _ => self,
        }
    }

    fn with_len(self, chars: usize) -> Self {
        Self::new(
            self.line,
            self.col,
            u32::try_from(chars.max(1)).unwrap_or(1),
        )
    }
}

fn first_line(message: &str) -> String {
    // serde-saphyr appends its own snippet; ours is drawn by the diagnostic renderer.
    message
        .lines()
        .next()
        .unwrap_or("invalid YAML")
        .trim()
        .to_string()
}

impl<'de> Deserialize<'de> for Node {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let spanned = serde_saphyr::Spanned::<ValueSeed>::deserialize(deserializer)?;
        let value = spanned.value.0;
        let span = span_of(spanned.referenced).with_len_of(&value);
        Ok(Node { value, span })
    }
}

/// `Value` behind a visitor that never buffers, so nested spans survive.
struct ValueSeed(Value);

impl<'de> Deserialize<'de> for ValueSeed {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(ValueVisitor).map(ValueSeed)
    }
}

struct ValueVisitor;

impl<'de> Visitor<'de> for ValueVisitor {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any YAML value")
    }
    fn visit_unit<E: de::Error>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_none<E: de::Error>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        d.deserialize_any(ValueVisitor)
    }
    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Value, E> {
        Ok(Value::Int(v))
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Value, E> {
        Ok(i64::try_from(v).map_or(Value::Str(v.to_string()), Value::Int))
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Value, E> {
        Ok(Value::Float(v))
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Value, E> {
        Ok(Value::Str(v.to_string()))
    }
    fn visit_string<E: de::Error>(self, v: String) -> Result<Value, E> {
        Ok(Value::Str(v))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element::<Node>()? {
            items.push(item);
        }
        Ok(Value::Seq(items))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut entries = Vec::new();
        while let Some(key) = map.next_key::<serde_saphyr::Spanned<KeyText>>()? {
            let value = map.next_value::<Node>()?;
            let loc = key.referenced;
            entries.push((
                Key {
                    span: span_of(loc).with_len(key.value.0.chars().count()),
                    name: key.value.0,
                },
                value,
            ));
        }
        Ok(Value::Map(entries))
    }
}

/// A mapping key read as text whatever its YAML type (`8080:` and `yes:` are keys too).
struct KeyText(String);

impl<'de> Deserialize<'de> for KeyText {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct KeyVisitor;
        impl Visitor<'_> for KeyVisitor {
            type Value = String;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a mapping key")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<String, E> {
                Ok(v.to_string())
            }
            fn visit_bool<E: de::Error>(self, v: bool) -> Result<String, E> {
                Ok(v.to_string())
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<String, E> {
                Ok(v.to_string())
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<String, E> {
                Ok(v.to_string())
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<String, E> {
                Ok(v.to_string())
            }
            fn visit_unit<E: de::Error>(self) -> Result<String, E> {
                Ok(String::new())
            }
        }
        deserializer.deserialize_any(KeyVisitor).map(KeyText)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nested_nodes_keep_their_line_and_column() {
        let node = parse("name: x\nsteps:\n  - id: a\n    run: echo hi\n").unwrap();
        let steps = node.get("steps").unwrap().as_seq().unwrap();
        let run = steps[0].get("run").unwrap();
        assert_eq!(run.as_scalar().as_deref(), Some("echo hi"));
        assert_eq!((run.span.line, run.span.col), (4, 10));
        let (key, _) = &steps[0].as_map().unwrap()[0];
        assert_eq!((key.span.line, key.span.col, key.span.len), (3, 5, 2));
    }

    #[test]
    fn duplicate_keys_are_a_syntax_error_with_a_line() {
        let err = parse("a: 1\nb: 2\na: 3\n").unwrap_err();
        assert_eq!(err.span.line, 3);
    }

    #[test]
    fn syntax_errors_read_without_library_advice() {
        let err = parse("a: 1\nb: 2\na: 3\n").unwrap_err();
        assert_eq!(err.message, "duplicate key `a`");
        assert_eq!(err.span, Span::new(3, 1, 1));
        let err = parse("a: [1, 2\n").unwrap_err();
        assert!(!err.message.starts_with("error"), "{}", err.message);
        assert!(!err.message.contains("line "), "{}", err.message);
    }

    #[test]
    fn a_tab_is_pointed_at() {
        let err = parse("name: x\n\tsteps: []\n").unwrap_err();
        assert_eq!(err.span, Span::new(2, 1, 1));
        assert!(err.help.unwrap().contains("spaces"));
    }

    #[test]
    fn yes_is_a_string_in_yaml_1_2_and_true_in_yaml_1_1_values() {
        let text = "on: yes\nlist: [off, 0755, '0755', 1e3, y]\nmap: { a: No, b: \"No\" }\n";
        let node = parse(text).unwrap();
        assert_eq!(node.get("on").unwrap().as_scalar().as_deref(), Some("yes"));
        let node = parse_with(text, Scalars::Yaml11).unwrap();
        assert_eq!(node.get("on").unwrap().value, Value::Bool(true));
        let list: Vec<Value> = node
            .get("list")
            .unwrap()
            .as_seq()
            .unwrap()
            .iter()
            .map(|n| n.value.clone())
            .collect();
        assert_eq!(
            list,
            [
                Value::Bool(false),
                Value::Int(493),
                Value::Str("0755".into()),
                Value::Str("1e3".into()),
                Value::Str("y".into())
            ]
        );
        let map = node.get("map").unwrap();
        assert_eq!(map.get("a").unwrap().value, Value::Bool(false));
        assert_eq!(map.get("b").unwrap().value, Value::Str("No".into()));
    }

    #[test]
    fn empty_text_is_null() {
        assert!(parse("  \n# only a comment\n").unwrap().is_null());
    }
}
