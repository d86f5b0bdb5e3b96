//! Desktop notifications: hub errors, finished task batches, finished agent runs,
//! pairing requests and agents' tool calls waiting for an approval.
//!
//! Linux sends them to the freedesktop notification server over D-Bus, macOS to the
//! Notification Center. A desktop without a notification server is not an error worth more
//! than a log line: the tray shows the same state.

use tauri::AppHandle;
use tauri_plugin_notification::NotificationExt;
use tracing::{info, warn};

/// Shows a notification with `title` and `body`. Returns at once; delivery happens in the
/// background and a failure is logged.
pub fn notify(app: &AppHandle, title: &str, body: &str) {
    info!(title, body, "notification");
    if let Err(err) = app.notification().builder().title(title).body(body).show() {
        warn!(error = %err, title, "cannot show a notification");
    }
}

/// The longest client-chosen name a notification shows, in characters.
const MAX_NAME_CHARS: usize = 64;

/// The title and body of the notification for a pairing request: the title
/// `"<name> wants to pair — code 123456"`, the body the origin and what to do.
///
/// The name and origin come from the requesting client: control characters are dropped,
/// the name is cut to [`MAX_NAME_CHARS`], and the body (which freedesktop notification
/// servers may read as markup, per the Desktop Notifications Specification's "Markup"
/// section) has `&`, `<` and `>` escaped. The title is plain text by that specification.
pub fn pairing_message(name: &str, origin: &str, code: &str) -> (String, String) {
    let name = clean(name, MAX_NAME_CHARS);
    let name = if name.is_empty() {
        "A client".to_string()
    } else {
        name
    };
    let title = format!("{name} wants to pair — code {}", clean(code, 12));
    let body = format!(
        "From {}. Check that the extension shows the same code, then approve or deny it in \
         the dashboard's Clients panel.",
        escape_markup(&clean(origin, 200))
    );
    (title, body)
}

/// The longest tool target (a command, a path) a notification shows, in characters.
pub const MAX_TARGET_CHARS: usize = 120;

/// The title and body of the notification for a pending approval: the title names the
/// project and the tool, the body what the tool would run (cut to [`MAX_TARGET_CHARS`],
/// markup escaped as in [`pairing_message`]) and where to answer.
pub fn approval_message(project: &str, tool: &str, target: Option<&str>) -> (String, String) {
    let project = clean(project, MAX_NAME_CHARS);
    let tool = clean(tool, MAX_NAME_CHARS);
    let title = format!("{project}: {tool} asks for permission");
    let target = target
        .map(|t| clean(t, MAX_TARGET_CHARS))
        .filter(|t| !t.is_empty());
    let body = match target {
        Some(t) => format!(
            "It wants to run {}. Allow or deny it in the dashboard.",
            escape_markup(&t)
        ),
        None => "Allow or deny it in the dashboard.".to_string(),
    };
    (title, body)
}

/// The title and body of the notification for an agent run that ended: the title
/// `"Run finished: <project>"`, `"Run failed: <project>"` or `"Run stopped: <project>"`
/// for a project left `idle`, `failed` or `killed`; the body the reason, or that the
/// output is in the dashboard.
///
/// The project name is the user's own, the reason may quote the agent: both are cleaned
/// as a client's text is (control characters dropped, cut, markup escaped in the body).
pub fn run_message(project: &str, state: &str, reason: Option<&str>) -> (String, String) {
    let project = clean(project, MAX_NAME_CHARS);
    let title = match state {
        "idle" => format!("Run finished: {project}"),
        "killed" => format!("Run stopped: {project}"),
        _ => format!("Run failed: {project}"),
    };
    let body = match reason.map(|reason| clean(reason, 200)) {
        Some(reason) if !reason.is_empty() => escape_markup(&reason),
        _ if state == "idle" => "The agent finished; its output is in the dashboard.".to_string(),
        _ => "See the run's output in the dashboard.".to_string(),
    };
    (title, body)
}

/// `text` without control characters, cut to `max` characters with an ellipsis.
fn clean(text: &str, max: usize) -> String {
    let text: String = text.chars().filter(|c| !c.is_control()).collect();
    let text = text.trim();
    if text.chars().count() <= max {
        return text.to_string();
    }
    let mut short: String = text.chars().take(max - 1).collect();
    short.push('…');
    short
}

fn escape_markup(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_approval_names_the_project_the_tool_and_what_it_would_run() {
        let (title, body) = approval_message("myapp", "Bash", Some("npm test <x>"));
        assert_eq!(title, "myapp: Bash asks for permission");
        assert_eq!(
            body,
            "It wants to run npm test &lt;x&gt;. Allow or deny it in the dashboard."
        );
        let (_, body) = approval_message("myapp", "WebFetch", None);
        assert_eq!(body, "Allow or deny it in the dashboard.");
        let long = "x".repeat(500);
        let (_, body) = approval_message("p\u{7}", "Bash", Some(&long));
        assert!(body.chars().count() < MAX_TARGET_CHARS + 60, "{body}");
        assert!(body.contains('…'));
    }

    #[test]
    fn a_pairing_request_names_the_client_and_the_code() {
        let (title, body) = pairing_message("Semantest", "chrome-extension://abc", "123456");
        assert_eq!(title, "Semantest wants to pair — code 123456");
        assert!(body.starts_with("From chrome-extension://abc."), "{body}");
        assert!(body.contains("Clients panel"), "{body}");
    }

    #[test]
    fn a_finished_run_says_how_it_ended() {
        assert_eq!(
            run_message("myapp", "idle", None),
            (
                "Run finished: myapp".to_string(),
                "The agent finished; its output is in the dashboard.".to_string()
            )
        );
        let (title, body) = run_message("myapp", "failed", Some("timed out after 60 s"));
        assert_eq!(
            (title.as_str(), body.as_str()),
            ("Run failed: myapp", "timed out after 60 s")
        );
        let (title, body) = run_message("my\napp", "killed", Some("<b>killed</b> on request"));
        assert_eq!(title, "Run stopped: myapp");
        assert_eq!(body, "&lt;b&gt;killed&lt;/b&gt; on request");
    }

    #[test]
    fn client_chosen_text_cannot_forge_lines_or_markup() {
        let long = "x".repeat(500);
        let (title, body) =
            pairing_message(&format!("Evil\n<b>{long}"), "moz-extension://<i>&", "1");
        assert!(!title.contains('\n'), "{title}");
        assert_eq!(
            title.chars().count(),
            MAX_NAME_CHARS + " wants to pair — code 1".chars().count()
        );
        assert!(body.contains("moz-extension://&lt;i&gt;&amp;"), "{body}");
        let (title, _) = pairing_message(" \u{7} ", "o", "1");
        assert!(title.starts_with("A client wants"), "{title}");
    }
}
