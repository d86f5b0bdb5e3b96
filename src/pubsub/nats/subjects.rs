//! How event types map onto NATS subjects (NATS subject syntax:
//! <https://docs.nats.io/nats-concepts/subjects>).
//!
//! With the prefix `semantest` (`public.broker_subject_prefix`):
//!
//! | hub | NATS subject | matches |
//! |---|---|---|
//! | `probe.click` (exact type) | `semantest.probe.click` | that type only |
//! | `probe.*` (prefix wildcard) | `semantest.probe.>` | `probe.x`, `probe.x.y`; not `probe` |
//! | `*` (everything) | `semantest.>` | every type |
//! | answers to `event.request` | `semantest-answers` | hub-internal |
//! | control messages | `semantest-control` | hub-internal |
//! | round trips to the server | `semantest-probe` | nothing: nobody subscribes |
//!
//! The hub's `prefix.*` matches one or more further segments, which is NATS's `>` (one
//! or more tokens), not NATS's `*` (exactly one token); the hub has no single-segment
//! wildcard. Every character the type grammar allows (`[a-z0-9_-]`, dots between
//! segments) is valid in a NATS token, so a type maps to a subject unchanged.
//!
//! The hub-internal subjects sit beside the event subjects, not under them
//! (`<prefix>-answers`, `<prefix>-control` instead of `<prefix>._hub...`): no client
//! pattern, not even `*`, can match them, and the type grammar stays as it is.

use crate::pubsub::broker::Pattern;

/// The subjects of one deployment, under one prefix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subjects {
    prefix: String,
}

impl Subjects {
    /// Subjects under `prefix` (one or more dot-separated NATS tokens, checked by
    /// [`check_subject_prefix`](crate::config::check_subject_prefix)).
    pub fn new(prefix: &str) -> Self {
        Self {
            prefix: prefix.to_string(),
        }
    }

    /// The subject an event of exact type `kind` is published on: `<prefix>.<kind>`.
    pub fn event(&self, kind: &str) -> String {
        format!("{}.{kind}", self.prefix)
    }

    /// The subject an instance subscribes to for a hub pattern.
    pub fn pattern(&self, pattern: Pattern<'_>) -> String {
        match pattern {
            Pattern::All => format!("{}.>", self.prefix),
            Pattern::Prefix(prefix) => format!("{}.{prefix}.>", self.prefix),
            Pattern::Exact(kind) => self.event(kind),
        }
    }

    /// The event type a message on `subject` carries, if `subject` is an event subject
    /// under this prefix.
    pub fn kind_of<'a>(&self, subject: &'a str) -> Option<&'a str> {
        subject
            .strip_prefix(self.prefix.as_str())?
            .strip_prefix('.')
            .filter(|kind| !kind.is_empty())
    }

    /// Where answers to `event.request` travel: `<prefix>-answers`. Every instance
    /// subscribes; the one whose request waits for the correlation id resolves it.
    pub fn answers(&self) -> String {
        format!("{}-answers", self.prefix)
    }

    /// Where hub-internal control messages travel: `<prefix>-control`.
    pub fn control(&self) -> String {
        format!("{}-control", self.prefix)
    }

    /// Where an instance sends a request nobody subscribes to, for the server's own
    /// "no responders" answer: a round trip that shows the server has handled what the
    /// connection sent before it. `<prefix>-probe`.
    pub fn probe(&self) -> String {
        format!("{}-probe", self.prefix)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pubsub::broker::parse_pattern;

    fn subjects() -> Subjects {
        Subjects::new("semantest")
    }

    #[test]
    fn patterns_map_to_nats_wildcards() {
        let s = subjects();
        let map = |p: &str| s.pattern(parse_pattern(p).unwrap());
        assert_eq!(map("probe.click"), "semantest.probe.click");
        assert_eq!(map("probe.*"), "semantest.probe.>");
        assert_eq!(map("a.b.*"), "semantest.a.b.>");
        assert_eq!(map("*"), "semantest.>");
        assert_eq!(s.event("probe.click"), "semantest.probe.click");
    }

    /// NATS matching (`*` one token, `>` one or more trailing tokens), written out to
    /// check that the mapping gives the hub's semantics.
    fn nats_matches(filter: &str, subject: &str) -> bool {
        let (mut f, mut s) = (filter.split('.'), subject.split('.'));
        loop {
            match (f.next(), s.next()) {
                (Some(">"), Some(_)) => return true,
                (Some("*"), Some(_)) => {}
                (Some(a), Some(b)) if a == b => {}
                (None, None) => return true,
                _ => return false,
            }
        }
    }

    #[test]
    fn mapped_wildcards_match_what_the_hub_matches() {
        let s = subjects();
        let cases = [
            ("probe.*", "probe.x", true),
            ("probe.*", "probe.x.y", true),
            ("probe.*", "probe", false),
            ("probe.*", "probes.x", false),
            ("*", "probe", true),
            ("*", "a.b.c", true),
            ("a.b", "a.b", true),
            ("a.b", "a.b.c", false),
        ];
        for (pattern, kind, expected) in cases {
            let filter = s.pattern(parse_pattern(pattern).unwrap());
            assert_eq!(
                nats_matches(&filter, &s.event(kind)),
                expected,
                "{pattern} against {kind}"
            );
        }
    }

    #[test]
    fn internal_subjects_are_outside_every_client_pattern() {
        let s = subjects();
        let all = s.pattern(parse_pattern("*").unwrap());
        assert!(!nats_matches(&all, &s.control()));
        assert!(!nats_matches(&all, &s.answers()));
        assert!(!nats_matches(&all, &s.probe()));
        assert_eq!(s.kind_of(&s.control()), None);
        assert_eq!(s.kind_of(&s.answers()), None);
        assert_eq!(s.kind_of(&s.probe()), None);
    }

    #[test]
    fn subjects_map_back_to_types() {
        let s = subjects();
        assert_eq!(s.kind_of("semantest.probe.click"), Some("probe.click"));
        assert_eq!(s.kind_of("semantest."), None);
        assert_eq!(s.kind_of("semantestx.a"), None);
        assert_eq!(s.kind_of("other.a"), None);
    }

    #[test]
    fn prefixes_are_checked() {
        use crate::config::check_subject_prefix;
        assert!(check_subject_prefix("semantest").is_ok());
        assert!(check_subject_prefix("acme.semantest-prod").is_ok());
        for bad in ["", "a..b", "a.*", "a.>", "a b", ".a", &"x".repeat(65)] {
            assert!(check_subject_prefix(bad).is_err(), "{bad:?}");
        }
    }
}
