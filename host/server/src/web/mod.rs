//! The web client: one page, its script and its style sheet, served at `/` by the baseapp
//! and by `warren dev`. Plain HTML, JavaScript and CSS with no build step, compiled into
//! the binary, so a host serves the page that speaks its own protocol. The page talks to
//! the host like any client: the `/auth/*` endpoints, the `/ws` session and the battle
//! socket a `battle.started` names (docs/protocol.md).

use axum::Router;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;

/// The page.
const INDEX_HTML: &str = include_str!("index.html");
/// Its script: the connection and the frames...
const APP_JS: &str = include_str!("app.js");
/// ...and what the page draws of them.
const VIEWS_JS: &str = include_str!("views.js");
/// Its style sheet.
const STYLE_CSS: &str = include_str!("style.css");

/// The page's routes (`/`, its scripts and its style sheet), for any server's router to
/// merge.
pub fn routes<S: Clone + Send + Sync + 'static>() -> Router<S> {
    Router::new()
        .route("/", get(|| async { file("text/html; charset=utf-8", INDEX_HTML) }))
        .route("/app.js", get(|| async { file("text/javascript; charset=utf-8", APP_JS) }))
        .route("/views.js", get(|| async { file("text/javascript; charset=utf-8", VIEWS_JS) }))
        .route("/style.css", get(|| async { file("text/css; charset=utf-8", STYLE_CSS) }))
}

/// A file of the page with its type. `no-cache`: a browser asks again each time, so it
/// never runs a page older than the host it talks to.
fn file(content_type: &'static str, body: &'static str) -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, "no-cache"),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        ],
        body,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_page_names_its_scripts_and_style_sheet() {
        assert!(INDEX_HTML.contains("src=\"/views.js\""));
        assert!(INDEX_HTML.contains("src=\"/app.js\""));
        assert!(INDEX_HTML.contains("href=\"/style.css\""));
    }
}
