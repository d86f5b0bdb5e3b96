//! Passwords taken out of connection strings before they are shown in an error.
//!
//! A broker or database URL that fails validation is quoted back to the user, and the
//! usual mistake is exactly a URL with a password in it. Redaction has to work on text
//! that did *not* parse (a bad port, a wrong scheme), so it cannot lean on a URL parser;
//! it follows the syntax of RFC 3986 section 3.2.1 instead, and errs on the side of
//! hiding too much.

/// What a password is replaced with.
pub const REDACTED: &str = "***";

/// `text` with every password replaced by [`REDACTED`]:
///
/// - the password of a URL's userinfo (`scheme://user:password@host`, RFC 3986
///   section 3.2.1): everything after the first `:` of the userinfo up to the **last**
///   `@`, so a raw `@` or `/` inside the password (invalid, but that is what a bad URL
///   looks like) is hidden too;
/// - the value of a `password=` parameter, in a URL query (`?password=...&`) or a
///   libpq key/value string (`password=... host=...`, also quoted `'...'`), as
///   PostgreSQL accepts both.
///
/// Text without either is returned unchanged.
pub fn redact_password(text: &str) -> String {
    let text = redact_userinfo(text);
    redact_password_parameters(&text)
}

fn redact_userinfo(text: &str) -> String {
    let Some((scheme, rest)) = text.split_once("://") else {
        return text.to_string();
    };
    let Some(at) = rest.rfind('@') else {
        return text.to_string();
    };
    match rest[..at].find(':') {
        Some(colon) => format!("{scheme}://{}:{REDACTED}{}", &rest[..colon], &rest[at..]),
        None => text.to_string(),
    }
}

fn redact_password_parameters(text: &str) -> String {
    const KEY: &str = "password=";
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.to_ascii_lowercase().find(KEY) {
        let value_start = start + KEY.len();
        out.push_str(&rest[..value_start]);
        out.push_str(REDACTED);
        let value = &rest[value_start..];
        let end = if let Some(quoted) = value.strip_prefix('\'') {
            // libpq: a quoted value ends at the next unescaped quote.
            let mut escaped = false;
            quoted
                .char_indices()
                .find(|&(_, c)| {
                    let closing = c == '\'' && !escaped;
                    escaped = c == '\\' && !escaped;
                    closing
                })
                .map_or(value.len(), |(i, _)| i + 2)
        } else {
            value
                .find(|c: char| c.is_whitespace() || matches!(c, '&' | '#' | ','))
                .unwrap_or(value.len())
        };
        rest = &value[end..];
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_are_hidden_in_urls_and_parameters() {
        for (text, shown) in [
            (
                "nats://hub:s3cret@127.0.0.1:4222",
                "nats://hub:***@127.0.0.1:4222",
            ),
            (
                "nats://hub:s3cret@127.0.0.1:99999",
                "nats://hub:***@127.0.0.1:99999",
            ),
            ("tls://:s3cret@h:4443", "tls://:***@h:4443"),
            ("nats://hub:p@ss/w@rd@h", "nats://hub:***@h"),
            (
                "postgres://hub:s3cret@db:5432/hub",
                "postgres://hub:***@db:5432/hub",
            ),
            (
                "postgres://hub@db:x/hub?password=s3cret&sslmode=require",
                "postgres://hub@db:x/hub?password=***&sslmode=require",
            ),
            (
                "host=db PASSWORD=s3cret user=hub",
                "host=db PASSWORD=*** user=hub",
            ),
            (
                "host=db password='s3 \\' cret' user=hub",
                "host=db password=*** user=hub",
            ),
            ("nats://hub@h:4222", "nats://hub@h:4222"),
            ("postgres://hub@db/hub", "postgres://hub@db/hub"),
            ("nats://h:4222", "nats://h:4222"),
            ("no url here", "no url here"),
        ] {
            assert_eq!(redact_password(text), shown, "{text}");
            assert!(!redact_password(text).contains("s3"), "{text}");
        }
    }
}
