//! The four OpenSSH client settings an inventory host inherits: HostName, Port, User and
//! IdentityFile, read from `~/.ssh/config` the way `ssh` reads them.
//!
//! Crates that parse the whole format either reject unknown keywords or merge values
//! last-wins; OpenSSH keeps the *first* value it obtains. Four keys and `Host` blocks are
//! little code, so they are read here, exactly. `Match` blocks need a shell and the
//! network to evaluate, so their settings are not applied; `Include` is not followed.

use std::path::{Path, PathBuf};

use crate::diagnostic::Diagnostic;
use crate::source::Span;

/// The parsed settings of one config file.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SshConfig {
    blocks: Vec<Block>,
}

/// Settings under one `Host` line (or before the first, which apply to every host).
#[derive(Debug, Clone, PartialEq, Eq)]
struct Block {
    /// `None`: settings before any `Host` line. `Some(empty)`: a `Match` block, never applied.
    patterns: Option<Vec<String>>,
    settings: Vec<(Setting, String)>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Setting {
    HostName,
    Port,
    User,
    IdentityFile,
}

/// What the config says about one host.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HostSettings {
    pub hostname: Option<String>,
    pub port: Option<u16>,
    pub user: Option<String>,
    pub identity_files: Vec<PathBuf>,
}

impl SshConfig {
    /// Reads `path`. A missing file is an empty config, as for `ssh`.
    pub fn load(path: &Path) -> Result<Self, Vec<Diagnostic>> {
        match std::fs::read_to_string(path) {
            Ok(text) => Self::parse(path, &text),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Self::default()),
            Err(e) => Err(vec![
                Diagnostic::file_error("ssh-config", path, format!("cannot read: {e}"))
                    .with_help("fix its permissions, or point HOME elsewhere"),
            ]),
        }
    }

    /// Parses config text; only a `Port` that is not a port number is an error (ssh refuses it too).
    pub fn parse(path: &Path, text: &str) -> Result<Self, Vec<Diagnostic>> {
        let mut blocks = vec![Block {
            patterns: None,
            settings: Vec::new(),
        }];
        let mut problems = Vec::new();
        for (index, raw) in text.lines().enumerate() {
            let line_no = u32::try_from(index + 1).unwrap_or(u32::MAX);
            let line = raw.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let (keyword, rest) = split_keyword(line);
            let args = split_args(rest);
            let Some(first) = args.first().cloned() else {
                continue;
            };
            let setting = match keyword.to_ascii_lowercase().as_str() {
                "host" => {
                    blocks.push(Block {
                        patterns: Some(args),
                        settings: Vec::new(),
                    });
                    continue;
                }
                "match" => {
                    blocks.push(Block {
                        patterns: Some(Vec::new()),
                        settings: Vec::new(),
                    });
                    continue;
                }
                "hostname" => Setting::HostName,
                "port" => Setting::Port,
                "user" => Setting::User,
                "identityfile" => Setting::IdentityFile,
                _ => continue,
            };
            if setting == Setting::Port && first.parse::<u16>().map_or(true, |p| p == 0) {
                let col = raw.find(&first).map_or(1, |i| i + 1);
                problems.push(
                    Diagnostic::error(
                        "ssh-config",
                        path,
                        Span::new(
                            line_no,
                            u32::try_from(col).unwrap_or(1),
                            u32::try_from(first.chars().count()).unwrap_or(1),
                        ),
                        format!("`Port {first}` is not a port number"),
                    )
                    .with_help("use a number from 1 to 65535"),
                );
                continue;
            }
            if let Some(block) = blocks.last_mut() {
                block.settings.push((setting, first));
            }
        }
        if problems.is_empty() {
            Ok(Self { blocks })
        } else {
            Err(problems)
        }
    }

    /// The settings for `host` (the name `ssh` would be given): the first value obtained
    /// for each key wins, IdentityFiles accumulate.
    pub fn query(&self, host: &str) -> HostSettings {
        let mut out = HostSettings::default();
        for block in self.blocks.iter().filter(|b| b.applies_to(host)) {
            for (setting, value) in &block.settings {
                match setting {
                    Setting::HostName if out.hostname.is_none() => {
                        out.hostname = Some(value.replace("%h", host).replace("%%", "%"));
                    }
                    Setting::Port if out.port.is_none() => out.port = value.parse().ok(),
                    Setting::User if out.user.is_none() => out.user = Some(value.clone()),
                    Setting::IdentityFile => {
                        let path = expand_home(&value.replace("%h", host));
                        if !out.identity_files.contains(&path) {
                            out.identity_files.push(path);
                        }
                    }
                    _ => {}
                }
            }
        }
        out
    }
}

impl Block {
    /// OpenSSH: a host matches a `Host` line when some pattern matches and no negated one does.
    fn applies_to(&self, host: &str) -> bool {
        let Some(patterns) = &self.patterns else {
            return true;
        };
        let host = host.to_ascii_lowercase();
        let mut matched = false;
        for pattern in patterns {
            let pattern = pattern.to_ascii_lowercase();
            if let Some(negated) = pattern.strip_prefix('!') {
                if glob(negated.as_bytes(), host.as_bytes()) {
                    return false;
                }
            } else if glob(pattern.as_bytes(), host.as_bytes()) {
                matched = true;
            }
        }
        matched
    }
}

/// `Keyword value` or `Keyword=value`.
fn split_keyword(line: &str) -> (&str, &str) {
    let end = line
        .find(|c: char| c.is_whitespace() || c == '=')
        .unwrap_or(line.len());
    let rest = line[end..].trim_start();
    let rest = rest.strip_prefix('=').unwrap_or(rest).trim_start();
    (&line[..end], rest)
}

/// Whitespace-separated arguments; double quotes group words.
fn split_args(rest: &str) -> Vec<String> {
    let mut args = Vec::new();
    let mut current = String::new();
    let mut quoted = false;
    for c in rest.chars() {
        match c {
            '"' => quoted = !quoted,
            c if c.is_whitespace() && !quoted => {
                if !current.is_empty() {
                    args.push(std::mem::take(&mut current));
                }
            }
            c => current.push(c),
        }
    }
    if !current.is_empty() {
        args.push(current);
    }
    args
}

/// `*` any run of characters, `?` exactly one.
fn glob(pattern: &[u8], text: &[u8]) -> bool {
    match pattern.split_first() {
        None => text.is_empty(),
        Some((b'*', rest)) => (0..=text.len()).any(|skip| glob(rest, &text[skip..])),
        Some((b'?', rest)) => !text.is_empty() && glob(rest, &text[1..]),
        Some((c, rest)) => text.first() == Some(c) && glob(rest, &text[1..]),
    }
}

/// `~` and `~/x` become paths under `$HOME`; anything else is kept as written.
pub fn expand_home(path: &str) -> PathBuf {
    let home = std::env::var_os("HOME").map(PathBuf::from);
    match (path.strip_prefix('~'), home) {
        (Some(""), Some(home)) => home,
        (Some(rest), Some(home)) if rest.starts_with('/') => home.join(&rest[1..]),
        _ => PathBuf::from(path),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(text: &str) -> SshConfig {
        SshConfig::parse(Path::new("config"), text).unwrap()
    }

    #[test]
    fn first_obtained_value_wins_as_in_openssh() {
        let c = config("Host db\n  Port 2200\n  User alice\nHost *\n  Port 22\n  User root\n");
        let s = c.query("db");
        assert_eq!((s.port, s.user.as_deref()), (Some(2200), Some("alice")));
        let other = c.query("web");
        assert_eq!(
            (other.port, other.user.as_deref()),
            (Some(22), Some("root"))
        );
    }

    #[test]
    fn hostname_expands_percent_h() {
        let c = config("Host *.lan\n  HostName %h.example.org\n");
        assert_eq!(
            c.query("db.lan").hostname.as_deref(),
            Some("db.lan.example.org")
        );
        assert_eq!(c.query("db").hostname, None);
    }

    #[test]
    fn negated_pattern_excludes_and_several_patterns_per_line() {
        let c = config("Host web? db !db3\n  User ops\n");
        assert_eq!(c.query("web1").user.as_deref(), Some("ops"));
        assert_eq!(c.query("db").user.as_deref(), Some("ops"));
        assert_eq!(c.query("web12").user, None);
        let c = config("Host db* !db3\n  User ops\n");
        assert_eq!(c.query("db2").user.as_deref(), Some("ops"));
        assert_eq!(c.query("db3").user, None);
    }

    #[test]
    fn identity_files_accumulate_with_home_expanded() {
        let home = std::env::var("HOME").unwrap();
        let c = config("Host a\n  IdentityFile ~/.ssh/a\nHost *\n  IdentityFile=/keys/all\n");
        assert_eq!(
            c.query("a").identity_files,
            vec![
                PathBuf::from(format!("{home}/.ssh/a")),
                PathBuf::from("/keys/all")
            ]
        );
    }

    #[test]
    fn match_blocks_are_not_applied_and_keywords_ignore_case() {
        let c = config("Match user x\n  User m\nHOST a\n  user \"u 1\"\n");
        assert_eq!(c.query("a").user.as_deref(), Some("u 1"));
        assert_eq!(c.query("b").user, None);
    }

    #[test]
    fn settings_before_any_host_line_apply_to_all() {
        let c = config("# global\nPort 2022\nHost a\n  Port 1\n");
        assert_eq!(c.query("a").port, Some(2022));
    }

    #[test]
    fn bad_port_is_an_error_with_its_line() {
        let err = SshConfig::parse(Path::new("cfg"), "Host a\n  Port http\n").unwrap_err();
        assert_eq!(err[0].span.map(|s| (s.line, s.col)), Some((2, 8)));
    }

    #[test]
    fn missing_file_is_empty() {
        assert_eq!(
            SshConfig::load(Path::new("/nonexistent/ssh/config")).unwrap(),
            SshConfig::default()
        );
    }
}
