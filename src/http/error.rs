//! The one error every HTTP endpoint answers with: a status and a JSON body
//! `{"error": {"kind": "...", "message": "..."}}`.
//!
//! `kind` is a stable [`ErrorKind`] (the same names as JSON-RPC's `error.data.kind`,
//! docs/protocol.md "Errors") and `message` a short sentence for people; internal detail
//! (SQL, OS errors) goes to the log, never here. The gate, `/ws`, `/pair`, the session
//! endpoints, `/semantest-signature`, `/metrics` and the public-mode limits all answer
//! with it, so a client parses one shape whatever refused it. A page meant for a person's
//! browser (`/login`) renders the same error as a small HTML page when the request's
//! `Accept` prefers HTML ([`HttpError::negotiate`]).
//!
//! Every error response carries `Cache-Control: no-store`: a refusal depends on the
//! request's credentials and the hub's state, never something to reuse.

use std::borrow::Cow;

use axum::Json;
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use serde_json::json;

use crate::protocol::error::ErrorKind;

/// The Content-Security-Policy of an HTML error page: no script, no style, no framing.
const PAGE_CSP: &str = "default-src 'none'; frame-ancestors 'none'; base-uri 'none'";

/// An HTTP error: status, stable kind, message for people, and any extra headers
/// (`Retry-After`, `WWW-Authenticate`).
#[derive(Debug, Clone)]
pub struct HttpError {
    status: StatusCode,
    kind: ErrorKind,
    message: Cow<'static, str>,
    headers: Vec<(HeaderName, HeaderValue)>,
    /// The heading of the HTML page, when this error may be shown as one.
    title: Option<&'static str>,
    /// Top-level body fields beside `error`, such as a pairing claim's `status`.
    fields: serde_json::Map<String, serde_json::Value>,
}

impl HttpError {
    /// An error with this status, kind and message.
    pub fn new(status: StatusCode, kind: ErrorKind, message: impl Into<Cow<'static, str>>) -> Self {
        Self {
            status,
            kind,
            message: message.into(),
            headers: Vec::new(),
            title: None,
            fields: serde_json::Map::new(),
        }
    }

    /// 403 `FORBIDDEN`.
    pub fn forbidden(message: impl Into<Cow<'static, str>>) -> Self {
        Self::new(StatusCode::FORBIDDEN, ErrorKind::Forbidden, message)
    }

    /// 401 `UNAUTHORIZED`.
    pub fn unauthorized(message: impl Into<Cow<'static, str>>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, ErrorKind::Unauthorized, message)
    }

    /// 500 `INTERNAL`; the detail belongs in the log.
    pub fn internal(message: impl Into<Cow<'static, str>>) -> Self {
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            ErrorKind::Internal,
            message,
        )
    }

    /// 404 `METHOD_NOT_FOUND`: no such route.
    pub fn not_found(message: impl Into<Cow<'static, str>>) -> Self {
        Self::new(StatusCode::NOT_FOUND, ErrorKind::MethodNotFound, message)
    }

    /// 503 with `Retry-After: retry_after_s` and this kind.
    pub fn unavailable(
        kind: ErrorKind,
        retry_after_s: u64,
        message: impl Into<Cow<'static, str>>,
    ) -> Self {
        Self::new(StatusCode::SERVICE_UNAVAILABLE, kind, message).retry_after(retry_after_s)
    }

    /// Adds `Retry-After: seconds` (RFC 9110 section 10.2.3).
    #[must_use]
    pub fn retry_after(self, seconds: u64) -> Self {
        self.with_header(header::RETRY_AFTER, HeaderValue::from(seconds))
    }

    /// Adds a header.
    #[must_use]
    pub fn with_header(mut self, name: HeaderName, value: HeaderValue) -> Self {
        self.headers.push((name, value));
        self
    }

    /// Adds a top-level body field beside `error` (never `error` itself), for an
    /// endpoint whose answers all carry it, e.g. `/pair/{id}`'s `status`.
    #[must_use]
    pub fn with_field(mut self, name: &str, value: impl Into<serde_json::Value>) -> Self {
        if name != "error" {
            self.fields.insert(name.to_string(), value.into());
        }
        self
    }

    /// Lets [`HttpError::negotiate`] show this error as an HTML page headed `title`.
    #[must_use]
    pub fn with_page_title(mut self, title: &'static str) -> Self {
        self.title = Some(title);
        self
    }

    /// The response for a request with these headers: an HTML page (same status and
    /// headers, the message as its text, under a Content-Security-Policy that allows
    /// nothing) when the error has a page title and the request's `Accept` prefers
    /// `text/html` to `application/json`, as a browser navigating to the page does;
    /// the JSON body otherwise.
    pub fn negotiate(self, request: &HeaderMap) -> Response {
        match self.title {
            Some(title) if prefers_html(request) => {
                let page = format!(
                    "<!doctype html><meta charset=utf-8><title>{title}</title><h1>{title}</h1><p>{}</p>",
                    escape_html(&self.message)
                );
                let mut response = (self.status, Html(page)).into_response();
                response.headers_mut().insert(
                    header::CONTENT_SECURITY_POLICY,
                    HeaderValue::from_static(PAGE_CSP),
                );
                self.finish(response)
            }
            _ => self.into_response(),
        }
    }

    fn finish(self, mut response: Response) -> Response {
        let headers = response.headers_mut();
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        for (name, value) in self.headers {
            headers.insert(name, value);
        }
        response
    }
}

impl IntoResponse for HttpError {
    fn into_response(mut self) -> Response {
        let mut body = std::mem::take(&mut self.fields);
        body.insert(
            "error".into(),
            json!({ "kind": self.kind.as_str(), "message": self.message }),
        );
        let response = (self.status, Json(body)).into_response();
        self.finish(response)
    }
}

/// The kind for a refusal the framework made itself (a route's extractor, a method not
/// served), by its status.
fn kind_of_status(status: StatusCode) -> ErrorKind {
    match status {
        StatusCode::NOT_FOUND | StatusCode::METHOD_NOT_ALLOWED => ErrorKind::MethodNotFound,
        StatusCode::PAYLOAD_TOO_LARGE => ErrorKind::TooLarge,
        StatusCode::UNSUPPORTED_MEDIA_TYPE | StatusCode::UNPROCESSABLE_ENTITY => {
            ErrorKind::InvalidParams
        }
        StatusCode::UNAUTHORIZED => ErrorKind::Unauthorized,
        StatusCode::FORBIDDEN => ErrorKind::Forbidden,
        StatusCode::TOO_MANY_REQUESTS => ErrorKind::RateLimited,
        status if status.is_client_error() => ErrorKind::InvalidRequest,
        _ => ErrorKind::Internal,
    }
}

/// The longest framework error text kept as a message; longer is cut (on a character
/// boundary), since it is a sentence for people, not data.
const MAX_FRAMEWORK_MESSAGE: usize = 512;

/// Puts a refusal that did not come from an [`HttpError`] (the framework's own: an
/// extractor's rejection, `405 Method Not Allowed`, a `404` for no route) into the one
/// shape, keeping its status, headers and text as the message. Error responses already
/// in JSON (every [`HttpError`]) or HTML (an [`HttpError::negotiate`] page) pass
/// unchanged, and so does every success. Installed as the router's outermost layer, so
/// no HTTP error leaves the hub in another shape.
pub async fn uniform(response: Response) -> Response {
    let status = response.status();
    if !(status.is_client_error() || status.is_server_error()) {
        return response;
    }
    let ours = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|t| t.starts_with("application/json") || t.starts_with("text/html"));
    if ours {
        return response;
    }
    let (parts, body) = response.into_parts();
    let text = match axum::body::to_bytes(body, 4 * MAX_FRAMEWORK_MESSAGE).await {
        Ok(bytes) => String::from_utf8_lossy(&bytes).trim().to_string(),
        Err(_) => String::new(),
    };
    let mut message = if text.is_empty() {
        status
            .canonical_reason()
            .unwrap_or("error")
            .to_ascii_lowercase()
    } else {
        text
    };
    if message.len() > MAX_FRAMEWORK_MESSAGE {
        let mut end = MAX_FRAMEWORK_MESSAGE;
        while !message.is_char_boundary(end) {
            end -= 1;
        }
        message.truncate(end);
    }
    let mut error = HttpError::new(status, kind_of_status(status), message);
    for (name, value) in &parts.headers {
        if name != header::CONTENT_TYPE && name != header::CONTENT_LENGTH {
            error = error.with_header(name.clone(), value.clone());
        }
    }
    error.into_response()
}

/// Whether an `Accept` header (RFC 9110 section 12.5.1) gives `text/html` a higher
/// weight than `application/json`. Exact types only: `*/*` and `text/*` weigh for both
/// alike, so they never tip the balance. No `Accept`, or one without `text/html`: JSON.
fn prefers_html(request: &HeaderMap) -> bool {
    let mut html = 0.0_f32;
    let mut json = 0.0_f32;
    for value in request.get_all(header::ACCEPT) {
        let Ok(value) = value.to_str() else { continue };
        for range in value.split(',') {
            let mut parts = range.split(';');
            let media = parts.next().unwrap_or_default().trim().to_ascii_lowercase();
            let weight = parts
                .filter_map(|p| {
                    p.trim()
                        .strip_prefix("q=")
                        .or_else(|| p.trim().strip_prefix("Q="))
                })
                .find_map(|q| q.trim().parse::<f32>().ok())
                .unwrap_or(1.0)
                .clamp(0.0, 1.0);
            match media.as_str() {
                "text/html" => html = html.max(weight),
                "application/json" => json = json.max(weight),
                _ => {}
            }
        }
    }
    html > json
}

/// `text` with `&`, `<`, `>`, `"` and `'` escaped for HTML.
fn escape_html(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn accept(value: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(header::ACCEPT, HeaderValue::from_str(value).unwrap());
        headers
    }

    async fn text(response: Response) -> String {
        let bytes = axum::body::to_bytes(response.into_body(), 1 << 16)
            .await
            .unwrap();
        String::from_utf8(bytes.to_vec()).unwrap()
    }

    #[tokio::test]
    async fn the_body_is_kind_and_message_with_the_status_and_headers() {
        let response = HttpError::unavailable(ErrorKind::LimitReached, 5, "too many connections")
            .into_response();
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(response.headers()[header::RETRY_AFTER], "5");
        assert_eq!(response.headers()[header::CACHE_CONTROL], "no-store");
        assert_eq!(response.headers()[header::CONTENT_TYPE], "application/json");
        let body: serde_json::Value = serde_json::from_str(&text(response).await).unwrap();
        assert_eq!(
            body,
            json!({"error": {"kind": "LIMIT_REACHED", "message": "too many connections"}})
        );
        let response = HttpError::forbidden("no")
            .with_field("status", "denied")
            .with_field("error", "ignored")
            .into_response();
        let body: serde_json::Value = serde_json::from_str(&text(response).await).unwrap();
        assert_eq!(
            body,
            json!({"status": "denied", "error": {"kind": "FORBIDDEN", "message": "no"}})
        );
    }

    #[tokio::test]
    async fn framework_refusals_take_the_one_shape_and_ours_pass_unchanged() {
        let framework = (
            StatusCode::METHOD_NOT_ALLOWED,
            [(header::ALLOW, "GET,HEAD")],
            "",
        )
            .into_response();
        let response = uniform(framework).await;
        assert_eq!(response.status(), StatusCode::METHOD_NOT_ALLOWED);
        assert_eq!(response.headers()[header::ALLOW], "GET,HEAD");
        let body: serde_json::Value = serde_json::from_str(&text(response).await).unwrap();
        assert_eq!(
            body,
            json!({"error": {"kind": "METHOD_NOT_FOUND", "message": "method not allowed"}})
        );
        let rejection = (
            StatusCode::BAD_REQUEST,
            "Failed to deserialize query string",
        )
            .into_response();
        let body: serde_json::Value =
            serde_json::from_str(&text(uniform(rejection).await).await).unwrap();
        assert_eq!(
            body,
            json!({"error": {"kind": "INVALID_REQUEST", "message": "Failed to deserialize query string"}})
        );
        let long = (StatusCode::PAYLOAD_TOO_LARGE, "é".repeat(600)).into_response();
        let body: serde_json::Value =
            serde_json::from_str(&text(uniform(long).await).await).unwrap();
        assert_eq!(body["error"]["kind"], "TOO_LARGE");
        assert_eq!(
            body["error"]["message"].as_str().unwrap().len(),
            MAX_FRAMEWORK_MESSAGE
        );
        // Ours, and successes, pass as they are.
        let ours = HttpError::forbidden("origin not allowed").with_field("status", "x");
        let body = text(uniform(ours.into_response()).await).await;
        assert!(body.contains("\"status\":\"x\""), "{body}");
        let ok = uniform((StatusCode::OK, "fine").into_response()).await;
        assert_eq!(text(ok).await, "fine");
    }

    #[tokio::test]
    async fn a_browser_navigating_gets_an_escaped_page_others_json() {
        let error = || {
            HttpError::unauthorized("links work <once>").with_page_title("Sign-in link not valid")
        };
        let browser = accept("text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8");
        let page = error().negotiate(&browser);
        assert_eq!(page.status(), StatusCode::UNAUTHORIZED);
        assert!(
            page.headers()[header::CONTENT_TYPE]
                .to_str()
                .unwrap()
                .starts_with("text/html")
        );
        assert_eq!(page.headers()[header::CONTENT_SECURITY_POLICY], PAGE_CSP);
        let text = text(page).await;
        assert!(text.contains("<h1>Sign-in link not valid</h1>"), "{text}");
        assert!(text.contains("links work &lt;once&gt;"), "{text}");
        for other in [
            "",
            "application/json",
            "*/*",
            "text/html;q=0.5, application/json",
            "text/*",
        ] {
            let response = error().negotiate(&accept(other));
            assert_eq!(
                response.headers()[header::CONTENT_TYPE],
                "application/json",
                "{other:?}"
            );
        }
        let response = error().negotiate(&HeaderMap::new());
        assert_eq!(response.headers()[header::CONTENT_TYPE], "application/json");
        // Without a page title, always JSON.
        let response = HttpError::forbidden("no").negotiate(&browser);
        assert_eq!(response.headers()[header::CONTENT_TYPE], "application/json");
    }
}
