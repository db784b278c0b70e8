//! The routes: the page, the JSON endpoints, and what every answer goes through (the Host
//! check, the security headers).

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use axum::Router;
use axum::extract::{RawQuery, Request, State};
use axum::http::{HeaderValue, StatusCode, Uri, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use tokio::sync::{Semaphore, watch};
use ziggy_proto::day::Day;

use crate::safe::escape;
use crate::source::ChannelPattern;
use crate::web::files::LogRoot;
use crate::web::filter::EventFilter;
use crate::web::live::LiveShared;
use crate::web::params::{ApiError, Params};
use crate::web::scan::{Budget, SCAN_TIME, StopOnDrop};
use crate::web::{assets, request, search, timers};

/// What every handler shares.
pub(crate) struct WebState {
    pub logs: Option<LogRoot>,
    pub live: Option<Arc<LiveShared>>,
    pub scans: Arc<Semaphore>,
    pub shutdown: watch::Receiver<bool>,
    /// The Host headers answered, lower case ([`allowed_hosts`]).
    pub hosts: Vec<String>,
}

type Shared = State<Arc<WebState>>;

/// The application.
pub(crate) fn router(state: Arc<WebState>) -> Router {
    Router::new()
        .route("/", get(assets::index))
        .route("/app.js", get(assets::script))
        .route("/app.css", get(assets::style))
        .route("/api/info", get(info))
        .route("/api/channels", get(channels))
        .route("/api/search", get(search_page))
        .route("/api/request", get(one_request))
        .route("/api/timers", get(timer_summary))
        .route("/api/live", get(live_stream))
        .fallback(not_found)
        .layer(middleware::from_fn_with_state(state.clone(), guard))
        .with_state(state)
}

/// The Host headers this server answers: the loopback names, the address it listens on (unless
/// unspecified: 0.0.0.0 or ::), and `extra` names, each with the port, or alone on port 80.
pub(crate) fn allowed_hosts(listen: SocketAddr, extra: &[String]) -> Vec<String> {
    let mut names: Vec<String> = vec!["127.0.0.1".into(), "localhost".into(), "[::1]".into()];
    let ip = listen.ip();
    let literal = match ip {
        std::net::IpAddr::V4(v4) => v4.to_string(),
        std::net::IpAddr::V6(v6) => format!("[{v6}]"),
    };
    if !ip.is_unspecified() && !names.contains(&literal) {
        names.push(literal);
    }
    names.extend(extra.iter().map(|n| n.to_ascii_lowercase()));
    let port = listen.port();
    let mut hosts = Vec::new();
    for name in names {
        hosts.push(format!("{name}:{port}"));
        if port == 80 {
            hosts.push(name);
        }
    }
    hosts
}

/// Whether `host` (a Host header) is one of `allowed`.
fn host_allowed(allowed: &[String], host: &str) -> bool {
    allowed.iter().any(|a| a.eq_ignore_ascii_case(host))
}

/// Why a call of `/api/…` from another site's page is refused, if it is one: its
/// `Sec-Fetch-Site` is not `same-origin` (or `none`: typed in), or its `Origin` is not this
/// server. Such a page cannot read the answer, but could start expensive scans.
fn foreign_call(request: &Request, host: &str) -> Option<String> {
    let headers = request.headers();
    if let Some(site) = headers.get("sec-fetch-site") {
        let site = site.to_str().unwrap_or("?");
        if !matches!(site, "same-origin" | "none") {
            return Some(format!(
                "called from another site's page (Sec-Fetch-Site: {})",
                escape(site)
            ));
        }
    }
    if let Some(origin) = headers.get(header::ORIGIN) {
        let origin = origin.to_str().unwrap_or("?");
        let ours = origin
            .strip_prefix("http://")
            .is_some_and(|o| o.eq_ignore_ascii_case(host));
        if !ours {
            return Some(format!(
                "called from another origin's page (Origin: {})",
                escape(origin)
            ));
        }
    }
    None
}

/// Refuses a request whose Host is not this server (a page elsewhere that points its own name
/// at this address cannot read events: DNS rebinding) with 421, and a call of `/api/…` from
/// another site's page with 403; adds the security headers to every answer: the page runs only
/// its own script and styles, and is never framed.
async fn guard(State(state): Shared, request: Request, next: Next) -> Response {
    let host = request
        .headers()
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("")
        .to_owned();
    let mut response = if !host_allowed(&state.hosts, &host) {
        ApiError::status(
            StatusCode::MISDIRECTED_REQUEST,
            format!(
                "this server answers only as {} (Host was {:?}; see --allow-host)",
                state.hosts.join(", "),
                escape(&host)
            ),
        )
        .into_response()
    } else if let Some(why) = request
        .uri()
        .path()
        .starts_with("/api/")
        .then(|| foreign_call(&request, &host))
        .flatten()
    {
        ApiError::status(StatusCode::FORBIDDEN, why).into_response()
    } else {
        next.run(request).await
    };
    let headers = response.headers_mut();
    let set = [
        (
            header::CONTENT_SECURITY_POLICY,
            "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; \
             img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
        ),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::X_FRAME_OPTIONS, "DENY"),
        (header::REFERRER_POLICY, "no-referrer"),
        (header::CACHE_CONTROL, "no-store"),
    ];
    for (name, value) in set {
        headers.insert(name, HeaderValue::from_static(value));
    }
    response
}

async fn not_found(uri: Uri) -> ApiError {
    ApiError::status(
        StatusCode::NOT_FOUND,
        format!("no such page: {}", escape(uri.path())),
    )
}

/// A JSON answer from bytes already written.
fn json(body: Vec<u8>) -> Response {
    (
        [(header::CONTENT_TYPE, "application/json; charset=utf-8")],
        body,
    )
        .into_response()
}

/// Today, UTC: the default day when the log path has no day folder yet.
fn today() -> Day {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0);
    Day::from_unix(secs)
}

/// Runs a scan of the log path on a blocking thread, at most
/// [`MAX_SCANS`](crate::web::scan::MAX_SCANS) at once (the turn is held until the thread ends);
/// `work` gets the log path, the newest day, and a [`Budget`] of
/// [`SCAN_TIME`](crate::web::scan::SCAN_TIME) that is given up when this future is dropped
/// (the client went away).
async fn scan(
    state: Arc<WebState>,
    work: impl FnOnce(&LogRoot, Day, &Budget) -> Result<Vec<u8>, ApiError> + Send + 'static,
) -> Result<Response, ApiError> {
    if state.logs.is_none() {
        return Err(ApiError::status(
            StatusCode::NOT_FOUND,
            "this server has no --log-path: it shows the live stream only",
        ));
    }
    let turn =
        state.scans.clone().acquire_owned().await.map_err(|_| {
            ApiError::status(StatusCode::SERVICE_UNAVAILABLE, "the server is stopping")
        })?;
    let stop = Arc::new(AtomicBool::new(false));
    let _stop_on_drop = StopOnDrop(stop.clone());
    let shared = state.clone();
    let body = tokio::task::spawn_blocking(move || {
        let _turn = turn;
        let budget = Budget::new(SCAN_TIME, stop);
        match shared.logs.as_ref() {
            Some(root) => work(root, root.latest_day().unwrap_or_else(today), &budget),
            None => Err(ApiError::status(StatusCode::NOT_FOUND, "no --log-path")),
        }
    })
    .await
    .map_err(|e| {
        ApiError::status(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("the scan failed: {e}"),
        )
    })??;
    Ok(json(body))
}

/// Runs cheap work on the log path (listing folders) on a blocking thread, outside the scans'
/// turns.
async fn list(
    state: Arc<WebState>,
    work: impl FnOnce(&LogRoot, Day) -> Result<Vec<u8>, ApiError> + Send + 'static,
) -> Result<Response, ApiError> {
    if state.logs.is_none() {
        return Err(ApiError::status(
            StatusCode::NOT_FOUND,
            "this server has no --log-path: it shows the live stream only",
        ));
    }
    let body = tokio::task::spawn_blocking(move || match state.logs.as_ref() {
        Some(root) => work(root, root.latest_day().unwrap_or_else(today)),
        None => Err(ApiError::status(StatusCode::NOT_FOUND, "no --log-path")),
    })
    .await
    .map_err(|e| {
        ApiError::status(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("listing failed: {e}"),
        )
    })??;
    Ok(json(body))
}

/// `GET /api/info`: what this server shows.
async fn info(State(state): Shared, RawQuery(query): RawQuery) -> Result<Response, ApiError> {
    Params::parse(query.as_deref(), &[])?;
    let days: Vec<String> = match &state.logs {
        Some(root) => root.days().iter().rev().map(Day::to_string).collect(),
        None => Vec::new(),
    };
    let body = serde_json::json!({
        "version": env!("CARGO_PKG_VERSION"),
        "files": state.logs.is_some(),
        "live": state.live.as_ref().map(|l| l.daemon.clone()),
        "days": days,
    });
    let mut out = Vec::new();
    let _ = crate::safe::write_json(&mut out, &body);
    Ok(json(out))
}

/// `GET /api/channels`: the channels with files in a range, with their sizes.
async fn channels(State(state): Shared, RawQuery(query): RawQuery) -> Result<Response, ApiError> {
    let params = Params::parse(query.as_deref(), &["from", "to"])?;
    list(state, move |root, latest| {
        let range = params.days(latest)?;
        let listed = root.files(&ChannelPattern::Any, range);
        let mut sizes: std::collections::BTreeMap<String, (u64, u64)> = Default::default();
        for file in &listed.files {
            // Not followed: a link out of the log path says nothing of its target.
            let bytes = std::fs::symlink_metadata(&file.path)
                .ok()
                .filter(std::fs::Metadata::is_file)
                .map_or(0, |m| m.len());
            let entry = sizes.entry(file.channel.clone()).or_default();
            entry.0 += bytes;
            entry.1 += 1;
        }
        let channels: Vec<serde_json::Value> = sizes
            .into_iter()
            .map(|(channel, (bytes, days))| {
                serde_json::json!({ "channel": channel, "bytes": bytes, "days": days })
            })
            .collect();
        let body = serde_json::json!({
            "from": range.first.to_string(), "to": range.last.to_string(),
            "channels": channels, "problems": listed.problems,
        });
        let mut out = Vec::new();
        let _ = crate::safe::write_json(&mut out, &body);
        Ok(out)
    })
    .await
}

/// `GET /api/search`: one page of matching events.
async fn search_page(
    State(state): Shared,
    RawQuery(query): RawQuery,
) -> Result<Response, ApiError> {
    let params = Params::parse(query.as_deref(), search::KNOWN)?;
    scan(state, move |root, latest, _| {
        search::search(root, &search::Search::from_params(&params, latest)?)
    })
    .await
}

/// `GET /api/request`: every event of one id, as a tree.
async fn one_request(
    State(state): Shared,
    RawQuery(query): RawQuery,
) -> Result<Response, ApiError> {
    let params = Params::parse(query.as_deref(), request::KNOWN)?;
    scan(state, move |root, latest, budget| {
        request::request(
            root,
            &request::RequestQuery::from_params(&params, latest)?,
            budget,
        )
    })
    .await
}

/// `GET /api/timers`: a timer's summaries.
async fn timer_summary(
    State(state): Shared,
    RawQuery(query): RawQuery,
) -> Result<Response, ApiError> {
    let params = Params::parse(query.as_deref(), timers::KNOWN)?;
    scan(state, move |root, latest, budget| {
        timers::timers(
            root,
            &timers::TimerQuery::from_params(&params, latest)?,
            budget,
        )
    })
    .await
}

/// `GET /api/live`: the live stream (Server-Sent Events).
async fn live_stream(
    State(state): Shared,
    RawQuery(query): RawQuery,
) -> Result<Response, ApiError> {
    let params = Params::parse(query.as_deref(), &["channel", "id", "filter"])?;
    let filter = EventFilter::from_params(&params)?;
    let Some(live) = &state.live else {
        return Err(ApiError::status(
            StatusCode::NOT_FOUND,
            "this server has no -H HOST:PORT: it shows files only",
        ));
    };
    match crate::web::live::stream(live, filter, state.shutdown.clone()) {
        Some(sse) => Ok(sse.into_response()),
        None => Err(ApiError::status(
            StatusCode::SERVICE_UNAVAILABLE,
            format!(
                "{} browsers stream already; close one",
                crate::web::live::MAX_STREAMS
            ),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_host_is_a_loopback_name_the_address_or_an_allowed_name() {
        let hosts = allowed_hosts("10.0.0.5:8080".parse().unwrap(), &["Box.Example".into()]);
        for ok in [
            "127.0.0.1:8080",
            "localhost:8080",
            "LOCALHOST:8080",
            "[::1]:8080",
            "10.0.0.5:8080",
            "box.example:8080",
        ] {
            assert!(host_allowed(&hosts, ok), "{ok}");
        }
        for refused in [
            "",
            "evil.example:8080",
            "10.0.0.5",
            "box.example",
            "127.0.0.1:80",
            "10.0.0.5:8081",
        ] {
            assert!(!host_allowed(&hosts, refused), "{refused}");
        }
        // Port 80: a bare name too; the unspecified address is no name.
        let hosts = allowed_hosts("0.0.0.0:80".parse().unwrap(), &[]);
        for ok in ["localhost", "localhost:80", "127.0.0.1"] {
            assert!(host_allowed(&hosts, ok), "{ok}");
        }
        assert!(!host_allowed(&hosts, "0.0.0.0:80"));
        let hosts = allowed_hosts("[fd00::5]:3516".parse().unwrap(), &[]);
        assert!(host_allowed(&hosts, "[fd00::5]:3516"));
        let hosts = allowed_hosts("127.0.0.2:3516".parse().unwrap(), &[]);
        assert!(host_allowed(&hosts, "127.0.0.2:3516"));
        let hosts = allowed_hosts("127.0.0.1:3516".parse().unwrap(), &[]);
        assert_eq!(hosts.len(), 3, "{hosts:?}");
    }
}
