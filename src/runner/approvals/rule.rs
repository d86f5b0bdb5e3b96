//! A remembered "always" rule: a tool and, optionally, what of the tool's input it
//! covers, written in Claude Code's permission-rule syntax (`Bash(npm test:*)`,
//! `Edit(/w/app/src/**)`, `WebFetch(domain:example.com)`, or a bare `Bash`). Source:
//! Claude Code's settings documentation, "Permission rule syntax".
//!
//! What a rule's content matches, by tool:
//! - `Bash`: the `command`. `npm test:*` and `npm test *` cover `npm test` and
//!   `npm test` followed by a space and anything; a `*` elsewhere stands for any text;
//!   without a `*` the command must be exactly the content. A wildcard never covers a
//!   command with a shell operator, substitution or redirection in it (`;`, `&`, `|`,
//!   `` ` ``, `$(`, `<`, `>`, a line break): `npm test:*` does not let
//!   `npm test && rm -rf x` through, the hub asks instead.
//! - The file tools (`Read`, `Edit`, `Write`, `MultiEdit`, `NotebookEdit`, `Glob`,
//!   `Grep`, `LS`): the path (`file_path`, `notebook_path` or `path`) against a glob
//!   (`*` within a folder, `**` across folders); `//abs` is Claude Code's way of writing
//!   the absolute `/abs`. A path with a `..` part is matched only by a content equal to it.
//! - `WebFetch`: `domain:<host>` covers a `url` on that host exactly.
//! - Any other tool: the content must equal the input's `command`, path or `url`.
//!
//! A bare tool name covers every call of the tool (what an "always" answer stored before
//! rules had content).

use serde_json::Value;

/// Tools whose content is a path glob.
const PATH_TOOLS: [&str; 8] = [
    "Read",
    "Edit",
    "Write",
    "MultiEdit",
    "NotebookEdit",
    "Glob",
    "Grep",
    "LS",
];

/// The longest rule the hub takes, in bytes.
pub const MAX_RULE_LEN: usize = 4096;

/// A rule that cannot be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct RuleError(String);

/// A tool, and what of its input the rule covers (`None`: every call).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Rule {
    tool: String,
    content: Option<String>,
}

impl Rule {
    /// A rule of a tool with the given content (`None` or `""`: the whole tool).
    pub fn new(tool: impl Into<String>, content: Option<String>) -> Self {
        Self {
            tool: tool.into(),
            content: content.filter(|c| !c.is_empty()),
        }
    }

    /// Reads `Tool` or `Tool(content)`.
    ///
    /// # Errors
    /// [`RuleError`] for an empty text, one over [`MAX_RULE_LEN`] bytes, a tool name with
    /// a space or parenthesis, an unclosed `(`, an empty `()`, or a path glob that does
    /// not parse.
    pub fn parse(text: &str) -> Result<Self, RuleError> {
        let text = text.trim();
        if text.is_empty() || text.len() > MAX_RULE_LEN {
            return Err(RuleError(format!(
                "a rule is 1 to {MAX_RULE_LEN} bytes, such as Bash(npm test:*) or Read"
            )));
        }
        let (tool, content) = match text.split_once('(') {
            None => (text, None),
            Some((tool, rest)) => {
                let Some(content) = rest.strip_suffix(')') else {
                    return Err(RuleError(format!("the rule {text:?} has no closing ')'")));
                };
                if content.is_empty() {
                    return Err(RuleError(format!(
                        "the rule {text:?} has an empty (); write the bare tool name to cover every call"
                    )));
                }
                (tool, Some(content.to_string()))
            }
        };
        if tool.is_empty() || tool.contains(|c: char| c.is_whitespace() || c == '(' || c == ')') {
            return Err(RuleError(format!(
                "the rule {text:?} does not start with a tool name"
            )));
        }
        let rule = Self::new(tool, content);
        if let (true, Some(content)) = (PATH_TOOLS.contains(&rule.tool.as_str()), &rule.content) {
            glob::Pattern::new(&absolute(content))
                .map_err(|err| RuleError(format!("the path pattern {content:?}: {err}")))?;
        }
        Ok(rule)
    }

    /// The rule CLI `suggestions` offer for this tool: the first `addRules` suggestion's
    /// first rule for `tool` (Claude Code's `permission_suggestions`,
    /// `{type:"addRules", rules:[{toolName, ruleContent?}], behavior}`). `None` when they
    /// offer none; other suggestion types (`setMode`, `addDirectories`) are not rules.
    pub fn suggested(tool: &str, suggestions: &Value) -> Option<Self> {
        suggestions
            .as_array()?
            .iter()
            .filter(|s| s.get("type").and_then(Value::as_str) == Some("addRules"))
            .filter_map(|s| s.get("rules").and_then(Value::as_array))
            .flatten()
            .find(|r| r.get("toolName").and_then(Value::as_str) == Some(tool))
            .map(|r| {
                let content = r
                    .get("ruleContent")
                    .and_then(Value::as_str)
                    .map(str::to_string);
                Self::new(tool, content)
            })
    }

    /// The tool.
    pub fn tool(&self) -> &str {
        &self.tool
    }

    /// The content; `None` for the whole tool.
    pub fn content(&self) -> Option<&str> {
        self.content.as_deref()
    }

    /// Whether the rule covers a call of `tool` with `input`.
    pub fn matches(&self, tool: &str, input: &Value) -> bool {
        if tool != self.tool {
            return false;
        }
        let Some(content) = &self.content else {
            return true;
        };
        let text = |key: &str| input.get(key).and_then(Value::as_str);
        match tool {
            "Bash" => text("command").is_some_and(|command| command_matches(content, command)),
            t if PATH_TOOLS.contains(&t) => ["file_path", "notebook_path", "path"]
                .into_iter()
                .find_map(text)
                .is_some_and(|path| path_matches(content, path)),
            "WebFetch" => text("url").is_some_and(|url| domain_matches(content, url)),
            _ => ["command", "file_path", "notebook_path", "path", "url"]
                .into_iter()
                .find_map(text)
                .is_some_and(|value| value == content),
        }
    }
}

impl std::fmt::Display for Rule {
    /// `Tool` or `Tool(content)`, as [`Rule::parse`] reads it.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.content {
            Some(content) => write!(f, "{}({content})", self.tool),
            None => f.write_str(&self.tool),
        }
    }
}

/// Whether a shell command has something in it that makes it more than one simple
/// command: an operator, a substitution, a redirection or a line break.
fn compound(command: &str) -> bool {
    command.contains(['\n', '\r', ';', '&', '|', '`', '<', '>']) || command.contains("$(")
}

fn command_matches(content: &str, command: &str) -> bool {
    let command = command.trim();
    if !content.contains('*') {
        return command == content;
    }
    if compound(command) {
        return false;
    }
    // `prefix:*` (the older form) and `prefix *`: the prefix alone, or the prefix, a
    // space and anything.
    if let Some(prefix) = content
        .strip_suffix(":*")
        .or_else(|| content.strip_suffix(" *"))
        && !prefix.contains('*')
    {
        return command == prefix
            || command
                .strip_prefix(prefix)
                .is_some_and(|rest| rest.starts_with(char::is_whitespace));
    }
    wildcard(content, command)
}

/// `*` for any text, everything else literal, anchored at both ends.
fn wildcard(pattern: &str, text: &str) -> bool {
    let mut parts = pattern.split('*');
    let first = parts.next().unwrap_or_default();
    let Some(mut rest) = text.strip_prefix(first) else {
        return false;
    };
    let parts: Vec<&str> = parts.collect();
    let Some((last, middle)) = parts.split_last() else {
        return rest.is_empty();
    };
    for part in middle {
        match rest.find(part) {
            Some(at) => rest = &rest[at + part.len()..],
            None => return false,
        }
    }
    rest.len() >= last.len() && rest.ends_with(last)
}

/// Claude Code writes an absolute path pattern `//abs`.
fn absolute(pattern: &str) -> String {
    match pattern.strip_prefix("//") {
        Some(rest) => format!("/{rest}"),
        None => pattern.to_string(),
    }
}

fn path_matches(content: &str, path: &str) -> bool {
    let pattern = absolute(content);
    if path == pattern {
        return true;
    }
    if std::path::Path::new(path)
        .components()
        .any(|c| c == std::path::Component::ParentDir)
    {
        return false;
    }
    let options = glob::MatchOptions {
        case_sensitive: true,
        require_literal_separator: true,
        require_literal_leading_dot: false,
    };
    glob::Pattern::new(&pattern).is_ok_and(|p| p.matches_with(path, options))
}

fn domain_matches(content: &str, url: &str) -> bool {
    let Some(domain) = content.strip_prefix("domain:") else {
        return content == url;
    };
    url::Url::parse(url)
        .ok()
        .and_then(|u| u.host_str().map(str::to_ascii_lowercase))
        .is_some_and(|host| host == domain.to_ascii_lowercase())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn bash(rule: &str, command: &str) -> bool {
        Rule::parse(rule)
            .unwrap()
            .matches("Bash", &json!({ "command": command }))
    }

    #[test]
    fn prefix_rules_cover_the_command_and_its_arguments() {
        for rule in ["Bash(npm test:*)", "Bash(npm test *)"] {
            assert!(bash(rule, "npm test"), "{rule}");
            assert!(bash(rule, "npm test --watch"), "{rule}");
            assert!(bash(rule, "  npm test -- -t x  "), "{rule}");
            assert!(!bash(rule, "npm testing"), "{rule}");
            assert!(!bash(rule, "npm tes"), "{rule}");
            assert!(!bash(rule, "rm -rf x"), "{rule}");
            assert!(!bash(rule, "echo npm test"), "{rule}");
        }
    }

    #[test]
    fn a_wildcard_never_covers_a_compound_command() {
        for command in [
            "npm test && rm -rf x",
            "npm test; rm -rf x",
            "npm test | sh",
            "npm test `rm -rf x`",
            "npm test $(rm -rf x)",
            "npm test > ~/.bashrc",
            "npm test < /etc/passwd",
            "npm test\nrm -rf x",
            "npm test & rm -rf x",
        ] {
            assert!(!bash("Bash(npm test:*)", command), "{command}");
            assert!(!bash("Bash(npm *)", command), "{command}");
        }
        // Exactly what was approved stays approved.
        assert!(bash("Bash(npm test | tee log)", "npm test | tee log"));
    }

    #[test]
    fn exact_and_inner_wildcards() {
        assert!(bash("Bash(npm test)", "npm test"));
        assert!(!bash("Bash(npm test)", "npm test --watch"));
        assert!(bash("Bash(git * main)", "git push origin main"));
        assert!(!bash("Bash(git * main)", "git push origin mainline"));
        assert!(bash("Bash(ls*)", "lsof"));
        assert!(!bash("Bash(ls *)", "lsof"));
        assert!(bash("Bash(*)", "anything at all"));
        assert!(bash("Bash", "npm test && rm -rf x"));
    }

    #[test]
    fn rules_are_per_tool() {
        let rule = Rule::parse("Bash(npm test:*)").unwrap();
        assert!(!rule.matches("Read", &json!({"command": "npm test"})));
        assert!(!rule.matches("Bash", &json!({"cmd": "npm test"})));
        assert!(Rule::parse("Read").unwrap().matches("Read", &json!({})));
        assert!(!Rule::parse("Read").unwrap().matches("Edit", &json!({})));
    }

    #[test]
    fn paths_are_globs() {
        let read = |rule: &str, path: &str| {
            Rule::parse(rule)
                .unwrap()
                .matches("Read", &json!({ "file_path": path }))
        };
        assert!(read("Read(/w/app/**)", "/w/app/src/a.rs"));
        assert!(read("Read(//w/app/**)", "/w/app/a.rs"));
        assert!(read("Read(/w/app/*.rs)", "/w/app/a.rs"));
        assert!(!read("Read(/w/app/*.rs)", "/w/app/src/a.rs"));
        assert!(!read("Read(/w/app/**)", "/w/other/a.rs"));
        assert!(!read("Read(/w/app/**)", "/w/app/../secret"));
        assert!(read("Read(/w/app/a.rs)", "/w/app/a.rs"));
        assert!(!read("Read(/w/app/a.rs)", "/w/app/b.rs"));
        let grep = Rule::parse("Grep(/w/app/**)").unwrap();
        assert!(grep.matches("Grep", &json!({"pattern": "x", "path": "/w/app/src"})));
    }

    #[test]
    fn web_fetch_rules_name_a_domain() {
        let rule = Rule::parse("WebFetch(domain:docs.rs)").unwrap();
        assert!(rule.matches("WebFetch", &json!({"url": "https://docs.rs/glob"})));
        assert!(!rule.matches("WebFetch", &json!({"url": "https://docs.rs.evil.io/"})));
        assert!(!rule.matches("WebFetch", &json!({"url": "https://evil.io/?docs.rs"})));
    }

    #[test]
    fn parse_and_display_round_trip() {
        for text in ["Bash", "Bash(npm test:*)", "mcp__x__y", "Edit(/a/**)"] {
            assert_eq!(Rule::parse(text).unwrap().to_string(), text);
        }
        for bad in [
            "",
            "   ",
            "Bash(",
            "Bash()",
            "(x)",
            "Ba sh(x)",
            "Read([)",
            &"x".repeat(5000),
        ] {
            assert!(Rule::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn the_suggested_rule_is_claude_codes_add_rules() {
        // As Claude Code 2.1.197 sends them (research notes, section 1.4).
        let suggestions = json!([
            {"type": "addRules", "rules": [{"toolName": "Bash", "ruleContent": "npm test:*"}],
             "behavior": "allow", "destination": "localSettings"},
            {"type": "addDirectories", "directories": ["/w"], "destination": "session"}
        ]);
        assert_eq!(
            Rule::suggested("Bash", &suggestions).map(|r| r.to_string()),
            Some("Bash(npm test:*)".into())
        );
        assert_eq!(Rule::suggested("Read", &suggestions), None);
        let mode = json!([{"type": "setMode", "mode": "acceptEdits", "destination": "session"}]);
        assert_eq!(Rule::suggested("Write", &mode), None);
        assert_eq!(Rule::suggested("Bash", &json!([])), None);
    }
}
