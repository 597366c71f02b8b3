//! The account endpoints, on every host that lets players in (a baseapp, `warren dev`):
//! JSON in, JSON out, errors as `{"error": "sentence"}` with the status that fits.
//!
//! | request | body | answer |
//! | --- | --- | --- |
//! | `POST /auth/register` | `{"username", "password"}` | 201 and tokens |
//! | `POST /auth/login` | `{"username", "password"}` | tokens |
//! | `POST /auth/device` | `{"device_id"}` | tokens (a guest account the first time) |
//! | `POST /auth/refresh` | `{"refresh_token"}` | tokens |
//! | `POST /auth/password` + session token | `{"username", "password"}` | tokens |
//! | `POST /auth/change-password` + session token | `{"password", "new_password"}` | tokens |
//! | `POST /auth/logout-everywhere` + session token | | 204 |
//!
//! Tokens: `{"player", "username", "token", "refresh_token", "expires_in"}`. A session
//! token goes in `Authorization: Bearer <token>`, or, from a browser's WebSocket (which
//! cannot set headers), as the subprotocol `bearer.<token>` beside `warren`.

use super::{Auth, AuthError};
use axum::Router;
use axum::extract::{ConnectInfo, Json, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use serde::Deserialize;
use serde_json::json;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;

/// The subprotocol a client's WebSocket speaks (the one the host picks).
pub const PROTOCOL: &str = "warren";
/// How a browser's WebSocket carries its session token among its subprotocols.
const TOKEN_PROTOCOL: &str = "bearer.";

/// The account endpoints.
pub fn routes(auth: Arc<Auth>) -> Router {
    Router::new()
        .route("/auth/register", post(register))
        .route("/auth/login", post(login))
        .route("/auth/device", post(device))
        .route("/auth/refresh", post(refresh))
        .route("/auth/password", post(password))
        .route("/auth/change-password", post(change_password))
        .route("/auth/logout-everywhere", post(logout_everywhere))
        .with_state(auth)
}

/// The session token a request carries: `Authorization: Bearer <token>`, or a
/// `bearer.<token>` subprotocol.
pub fn bearer(headers: &HeaderMap) -> Option<&str> {
    let from_header = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer ").or_else(|| v.strip_prefix("bearer ")))
        .map(str::trim);
    from_header.or_else(|| {
        headers
            .get_all(header::SEC_WEBSOCKET_PROTOCOL)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .find_map(|p| p.trim().strip_prefix(TOKEN_PROTOCOL))
    })
}

/// The client's address: the connection's peer, or — when the peer is a trusted proxy —
/// the last address its `X-Forwarded-For` names.
pub fn client_address(auth: &Auth, peer: Option<SocketAddr>, headers: &HeaderMap) -> IpAddr {
    let peer = peer.map(|p| p.ip()).unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED));
    if !auth.trusted_proxies.contains(&peer) {
        return peer;
    }
    headers
        .get("x-forwarded-for")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.rsplit(',').next())
        .and_then(|last| last.trim().parse().ok())
        .unwrap_or(peer)
}

impl IntoResponse for AuthError {
    fn into_response(self) -> Response {
        let status = match &self {
            AuthError::Invalid(_) => StatusCode::BAD_REQUEST,
            AuthError::Taken(_) => StatusCode::CONFLICT,
            AuthError::Wrong | AuthError::Token(_) => StatusCode::UNAUTHORIZED,
            AuthError::TooMany(_) => StatusCode::TOO_MANY_REQUESTS,
            AuthError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
        };
        (status, Json(json!({"error": self.to_string()}))).into_response()
    }
}

#[derive(Deserialize)]
struct Credentials {
    username: String,
    password: String,
}

#[derive(Deserialize)]
struct NewPassword {
    password: String,
    new_password: String,
}

#[derive(Deserialize)]
struct Device {
    device_id: String,
}

#[derive(Deserialize)]
struct Refresh {
    refresh_token: String,
}

/// Where a request comes from: the client's address ([`client_address`]).
struct Caller(IpAddr);

impl axum::extract::FromRequestParts<Arc<Auth>> for Caller {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, auth: &Arc<Auth>) -> Result<Self, Self::Rejection> {
        let peer = parts.extensions.get::<ConnectInfo<SocketAddr>>().map(|c| c.0);
        Ok(Caller(client_address(auth, peer, &parts.headers)))
    }
}

/// The session token a request carries, or the refusal that it has none.
struct Bearer(String);

impl<S: Send + Sync> axum::extract::FromRequestParts<S> for Bearer {
    type Rejection = AuthError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        bearer(&parts.headers).map(|t| Bearer(t.to_owned())).ok_or(super::TokenError::Missing.into())
    }
}

/// A JSON body; one that is not the JSON asked for is a 400 with a sentence, like every
/// other error.
struct Body<T>(T);

impl<S: Send + Sync, T: serde::de::DeserializeOwned> axum::extract::FromRequest<S> for Body<T> {
    type Rejection = AuthError;

    async fn from_request(request: axum::extract::Request, state: &S) -> Result<Self, Self::Rejection> {
        match Json::<T>::from_request(request, state).await {
            Ok(Json(body)) => Ok(Body(body)),
            Err(e) => Err(AuthError::Invalid(format!("the request body is not what it should be: {e}"))),
        }
    }
}

type Answer = Result<Response, AuthError>;

async fn register(State(auth): State<Arc<Auth>>, Caller(from): Caller, Body(b): Body<Credentials>) -> Answer {
    let issued = auth.register(&b.username, &b.password, from).await?;
    Ok((StatusCode::CREATED, Json(issued)).into_response())
}

async fn login(State(auth): State<Arc<Auth>>, Caller(from): Caller, Body(b): Body<Credentials>) -> Answer {
    Ok(Json(auth.login(&b.username, &b.password, from).await?).into_response())
}

async fn device(State(auth): State<Arc<Auth>>, Caller(from): Caller, Body(b): Body<Device>) -> Answer {
    Ok(Json(auth.device(&b.device_id, from).await?).into_response())
}

async fn refresh(State(auth): State<Arc<Auth>>, Body(b): Body<Refresh>) -> Answer {
    Ok(Json(auth.refresh(&b.refresh_token).await?).into_response())
}

async fn password(State(auth): State<Arc<Auth>>, Bearer(token): Bearer, Body(b): Body<Credentials>) -> Answer {
    Ok(Json(auth.set_password(&token, &b.username, &b.password).await?).into_response())
}

async fn change_password(
    State(auth): State<Arc<Auth>>,
    Caller(from): Caller,
    Bearer(token): Bearer,
    Body(b): Body<NewPassword>,
) -> Answer {
    Ok(Json(auth.change_password(&token, &b.password, &b.new_password, from).await?).into_response())
}

async fn logout_everywhere(State(auth): State<Arc<Auth>>, Bearer(token): Bearer) -> Answer {
    auth.logout_everywhere(&token).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}
