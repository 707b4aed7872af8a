//! dashboard/html.rs: network text on the watcher's dashboard: made printable
//! ([`crate::printable`]) and cut before it is escaped, and a URL a feed named becomes a link only
//! when it is `http`/`https` (a feed can name a `javascript:` URL). The escaping, times, badges
//! and buttons are the runner dashboard's ([`pipelines::dashboard::html`]), shared.

pub use pipelines::dashboard::html::{badge, button, esc, maybe_time, query, state_badge, time};

/// Network text (a title, an error a server sent): printable, cut, escaped.
pub fn net(text: &str) -> String {
    esc(&crate::printable::printable(text))
}

/// A network URL: a link when its scheme is `http` or `https`, plain text otherwise; either way
/// escaped and cut. Links open without a referrer.
pub fn link(url: &str) -> String {
    let shown = net(url);
    let web = url::Url::parse(url).is_ok_and(|u| matches!(u.scheme(), "http" | "https"));
    if web && crate::printable::is_printable(url) {
        format!(
            r#"<a href="{}" rel="noreferrer noopener" target="_blank">{shown}</a>"#,
            esc(url)
        )
    } else {
        shown
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_web_urls_become_links() {
        assert!(link("https://example.com/a?b=1&c=2").starts_with(
            r#"<a href="https://example.com/a?b=1&amp;c=2" rel="noreferrer noopener""#
        ));
        for hostile in [
            "javascript:alert(1)",
            "JavaScript:alert(1)",
            "data:text/html,<script>alert(1)</script>",
            "https://example.com/\u{1b}[2J",
        ] {
            let shown = link(hostile);
            assert!(!shown.contains("<a "), "{shown}");
            assert!(!shown.contains('<') || shown.contains("&lt;"), "{shown}");
        }
    }
}
