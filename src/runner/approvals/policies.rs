//! A project's approval policy (`agent.policy.get`/`set`) and its stored rules
//! (`agent.approvals.rules.list`/`delete`): the settings and rules [`Approvals::ask`]
//! answers by.

use tracing::info;

use super::rule::Rule;
use super::{ApprovalError, Approvals};
use crate::protocol::agents::{Policy, PolicyOverride, PolicySetParams, RuleView};
use crate::support::timestamp::format_ms;

impl Approvals {
    /// The policy in force for a project: its own settings over `[agent.approvals]`.
    pub fn policy(&self, project_id: &str) -> Policy {
        let own = self.state().policies.get(project_id).cloned();
        let config = &self.inner.policy;
        let custom = own.is_some();
        let own = own.unwrap_or_default();
        Policy {
            project_id: project_id.to_string(),
            never_ask: own.never_ask.unwrap_or_else(|| config.never_ask.clone()),
            always_ask: own.always_ask.unwrap_or_else(|| config.always_ask.clone()),
            timeout_s: own.timeout_s.unwrap_or(config.timeout_s),
            timeout_message: own
                .timeout_message
                .unwrap_or_else(|| config.timeout_message.clone()),
            custom,
        }
    }

    /// `agent.policy.set`: stores a project's own settings (replacing the ones it had;
    /// none at all goes back to the config) and returns the policy in force. Requests
    /// already pending keep the timeout they were given.
    ///
    /// # Errors
    /// [`ApprovalError::InvalidPolicy`] (naming the param) for a `timeout_s` outside
    /// 1..=604800, a message over 4096 bytes, an empty tool name or a list over 256 names;
    /// [`ApprovalError::Store`].
    pub async fn set_policy(&self, params: PolicySetParams) -> Result<Policy, ApprovalError> {
        let invalid = |param: &'static str, message: &str| ApprovalError::InvalidPolicy {
            param,
            message: message.to_string(),
        };
        if params
            .timeout_s
            .is_some_and(|t| !(1..=7 * 24 * 3600).contains(&t))
        {
            return Err(invalid(
                "timeout_s",
                "timeout_s must be between 1 and 604800",
            ));
        }
        if params
            .timeout_message
            .as_ref()
            .is_some_and(|m| m.len() > 4096)
        {
            return Err(invalid(
                "timeout_message",
                "timeout_message is longer than 4096 bytes",
            ));
        }
        for (param, list) in [
            ("never_ask", &params.never_ask),
            ("always_ask", &params.always_ask),
        ] {
            if list
                .as_ref()
                .is_some_and(|l| l.len() > 256 || l.iter().any(|t| t.is_empty() || t.len() > 256))
            {
                return Err(invalid(
                    param,
                    "a tool list holds at most 256 names of 1 to 256 bytes",
                ));
            }
        }
        let own = PolicyOverride {
            never_ask: params.never_ask,
            always_ask: params.always_ask,
            timeout_s: params.timeout_s,
            timeout_message: params.timeout_message,
        };
        let empty = own == PolicyOverride::default();
        let stored = if empty {
            None
        } else {
            Some(
                serde_json::to_string(&own)
                    .map_err(|err| ApprovalError::Invalid(err.to_string()))?,
            )
        };
        self.inner
            .store
            .put_approval_policy(params.project_id.clone(), stored)
            .await?;
        {
            let mut state = self.state();
            if empty {
                state.policies.remove(&params.project_id);
            } else {
                state.policies.insert(params.project_id.clone(), own);
            }
        }
        info!(project_id = %params.project_id, custom = !empty, "approval policy set");
        Ok(self.policy(&params.project_id))
    }

    /// A project's stored rules, oldest first.
    pub fn rules(&self, project_id: &str) -> Vec<RuleView> {
        self.state()
            .project_rules
            .get(project_id)
            .map(|set| {
                set.iter()
                    .map(|r| RuleView {
                        rule: r.rule.to_string(),
                        tool_name: r.rule.tool().to_string(),
                        behavior: r.behavior.as_str().into(),
                        created_at: format_ms(r.created_at),
                    })
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Forgets one of a project's stored rules (`rule` as [`Approvals::rules`] lists
    /// it); whether it had it. Later requests it covered ask again.
    ///
    /// # Errors
    /// [`ApprovalError::Invalid`] for a rule that does not parse; [`ApprovalError::Store`].
    pub async fn delete_rule(&self, project_id: &str, rule: &str) -> Result<bool, ApprovalError> {
        let rule = Rule::parse(rule).map_err(|err| ApprovalError::Invalid(err.to_string()))?;
        let deleted = self
            .inner
            .store
            .delete_approval_rule(
                project_id.to_string(),
                rule.tool().to_string(),
                rule.content().unwrap_or_default().to_string(),
            )
            .await?;
        let forgotten = self
            .state()
            .project_rules
            .get_mut(project_id)
            .is_some_and(|set| set.remove(&rule));
        info!(project_id, rule = %rule, deleted = deleted || forgotten, "approval rule deleted");
        Ok(deleted || forgotten)
    }
}
