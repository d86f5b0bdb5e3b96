//! The rules a session or a project remembers from `*_always` answers, and which of them
//! answers a request: a matching `deny` rule wins over a matching `allow` rule, so a
//! refusal stays a refusal however wide an allow rule is.

use serde_json::Value;

use super::rule::Rule;

/// What a remembered rule does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Behavior {
    Allow,
    Deny,
}

impl Behavior {
    pub(super) fn as_str(self) -> &'static str {
        match self {
            Self::Allow => "allow",
            Self::Deny => "deny",
        }
    }

    /// Reads a stored behaviour; anything but `deny` is `allow`, as stored before.
    pub(super) fn parse(text: &str) -> Self {
        if text == "deny" {
            Self::Deny
        } else {
            Self::Allow
        }
    }
}

/// One remembered rule.
#[derive(Debug, Clone)]
pub(super) struct Remembered {
    pub(super) rule: Rule,
    pub(super) behavior: Behavior,
    /// Unix ms.
    pub(super) created_at: i64,
}

/// The rules of one session or one project, in the order they were remembered.
#[derive(Debug, Default, Clone)]
pub(super) struct RuleSet {
    rules: Vec<Remembered>,
}

impl RuleSet {
    /// Remembers a rule, replacing the behaviour the same rule had.
    pub(super) fn insert(&mut self, remembered: Remembered) {
        match self.rules.iter_mut().find(|r| r.rule == remembered.rule) {
            Some(old) => *old = remembered,
            None => self.rules.push(remembered),
        }
    }

    /// Forgets a rule; whether it was there.
    pub(super) fn remove(&mut self, rule: &Rule) -> bool {
        let before = self.rules.len();
        self.rules.retain(|r| r.rule != *rule);
        self.rules.len() != before
    }

    /// The rule that answers a call: the first matching `deny`, else the first matching
    /// `allow`.
    pub(super) fn answer(&self, tool: &str, input: &Value) -> Option<&Remembered> {
        let mut matching = self.rules.iter().filter(|r| r.rule.matches(tool, input));
        let first = matching.next()?;
        if first.behavior == Behavior::Deny {
            return Some(first);
        }
        matching
            .find(|r| r.behavior == Behavior::Deny)
            .or(Some(first))
    }

    /// The rules, oldest first.
    pub(super) fn iter(&self) -> impl Iterator<Item = &Remembered> {
        self.rules.iter()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn remembered(rule: &str, behavior: Behavior) -> Remembered {
        Remembered {
            rule: Rule::parse(rule).unwrap(),
            behavior,
            created_at: 0,
        }
    }

    #[test]
    fn a_deny_wins_and_the_same_rule_is_replaced() {
        let mut set = RuleSet::default();
        set.insert(remembered("Bash(npm *)", Behavior::Allow));
        set.insert(remembered("Bash(npm publish:*)", Behavior::Deny));
        let answer = |set: &RuleSet, command: &str| {
            set.answer("Bash", &json!({ "command": command }))
                .map(|r| (r.rule.to_string(), r.behavior))
        };
        assert_eq!(
            answer(&set, "npm test"),
            Some(("Bash(npm *)".into(), Behavior::Allow))
        );
        assert_eq!(
            answer(&set, "npm publish --tag x"),
            Some(("Bash(npm publish:*)".into(), Behavior::Deny))
        );
        assert_eq!(answer(&set, "rm -rf x"), None);
        set.insert(remembered("Bash(npm *)", Behavior::Deny));
        assert_eq!(set.iter().count(), 2);
        assert_eq!(answer(&set, "npm test").map(|a| a.1), Some(Behavior::Deny));
        assert!(set.remove(&Rule::parse("Bash(npm *)").unwrap()));
        assert!(!set.remove(&Rule::parse("Bash(npm *)").unwrap()));
        assert_eq!(answer(&set, "npm test"), None);
    }
}
