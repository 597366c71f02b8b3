//! The front door: accounts, session tokens and their refusals, through `warren dev`'s
//! HTTP endpoints and WebSocket as a game client uses them (name-only login off).

use crate::{Client, Dev, FRAME_WAIT};
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use std::net::SocketAddr;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use warren::config::{AuthConfig, DevConfig};
use warren::mechanics::auth::tokens::{Keys, Use, now_s};
use warren_bus::Bus;
use warren_test_guests::{SCRIPT_BASEAPP, SCRIPT_BATTLE};

const KEY: &str = "the auth tests' signing key, 32 bytes or more";
/// Why a session ends when its account's tokens are revoked.
const REVOKED: &str = "signed out everywhere (a logout everywhere, or a new password): log in again";

/// `warren dev` without name-only login, signing with [`KEY`], with `auth`'s limits.
async fn dev(auth: AuthConfig) -> (Dev, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let key_file = dir.path().join("key");
    std::fs::write(&key_file, KEY).unwrap();
    let auth = AuthConfig { key_file: Some(key_file), ..auth };
    let config = DevConfig { auth, ..DevConfig::default() };
    (Dev::start_with(SCRIPT_BASEAPP, SCRIPT_BATTLE, Bus::embedded_with_groups(16), config).await, dir)
}

/// `POST path` with a JSON body (and a bearer token): the status and the JSON answer.
async fn post(addr: SocketAddr, path: &str, body: Value, bearer: Option<&str>) -> (u16, Value) {
    let (url, bearer) = (format!("http://{addr}{path}"), bearer.map(str::to_owned));
    tokio::task::spawn_blocking(move || {
        let agent: ureq::Agent = ureq::Agent::config_builder().http_status_as_error(false).build().into();
        let mut request = agent.post(&url).header("content-type", "application/json");
        if let Some(token) = bearer {
            request = request.header("authorization", &format!("Bearer {token}"));
        }
        let mut answer = request.send(body.to_string().as_str()).expect("the host answers");
        let text = answer.body_mut().read_to_string().unwrap_or_default();
        (answer.status().as_u16(), serde_json::from_str(&text).unwrap_or(Value::Null))
    })
    .await
    .unwrap()
}

async fn register(addr: SocketAddr, name: &str, password: &str) -> (u16, Value) {
    post(addr, "/auth/register", json!({"username": name, "password": password}), None).await
}

async fn login(addr: SocketAddr, name: &str, password: &str) -> (u16, Value) {
    post(addr, "/auth/login", json!({"username": name, "password": password}), None).await
}

type Ws = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// Opens `/ws` with `headers`; the socket and the subprotocol the host picked.
async fn open(addr: SocketAddr, headers: &[(&'static str, String)]) -> (Ws, Option<String>) {
    let mut request = format!("ws://{addr}/ws").into_client_request().unwrap();
    for (name, value) in headers {
        request.headers_mut().insert(*name, value.parse().unwrap());
    }
    let (ws, response) = tokio_tungstenite::connect_async(request).await.expect("upgraded");
    let picked = response.headers().get("sec-websocket-protocol").map(|v| v.to_str().unwrap().to_owned());
    (ws, picked)
}

/// The close code and reason a socket ends with, once its frames before are read.
async fn closed_with(ws: &mut Ws) -> (u16, String) {
    loop {
        let msg = tokio::time::timeout(FRAME_WAIT, ws.next()).await.expect("closed within the wait");
        match msg {
            Some(Ok(Message::Close(Some(frame)))) => return (frame.code.into(), frame.reason.to_string()),
            Some(Ok(Message::Close(None))) | None => panic!("closed without a code"),
            Some(Ok(_)) => continue,
            Some(Err(e)) => panic!("socket failed before its close: {e}"),
        }
    }
}

/// Logs in on an open socket and returns the welcome.
async fn welcome(ws: &mut Ws) -> Value {
    ws.send(Message::text(json!({"type": "login"}).to_string())).await.unwrap();
    loop {
        match tokio::time::timeout(FRAME_WAIT, ws.next()).await.expect("a welcome").expect("open").expect("a frame") {
            Message::Text(t) => {
                let frame: Value = serde_json::from_str(&t).unwrap();
                assert_eq!(frame["type"], "welcome", "{frame}");
                return frame;
            }
            Message::Close(c) => panic!("closed: {c:?}"),
            _ => {}
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_registered_player_plays_with_the_token_by_header_or_subprotocol() {
    let (dev, _key) = dev(AuthConfig::default()).await;
    let (status, issued) = register(dev.addr, "Ann", "correct horse").await;
    assert_eq!(status, 201, "{issued}");
    assert_eq!(issued["username"], "Ann");
    assert_eq!(issued["expires_in"], 3600);
    let token = issued["token"].as_str().unwrap();

    let (mut ws, _) = open(dev.addr, &[("authorization", format!("Bearer {token}"))]).await;
    let w = welcome(&mut ws).await;
    assert_eq!((w["player"].clone(), w["name"].clone()), (issued["player"].clone(), json!("Ann")));
    drop(ws);

    // A browser's WebSocket carries the token as a subprotocol; the host picks `warren`.
    let protocols = format!("warren, bearer.{token}");
    let (mut ws, picked) = open(dev.addr, &[("sec-websocket-protocol", protocols)]).await;
    assert_eq!(picked.as_deref(), Some("warren"));
    assert_eq!(welcome(&mut ws).await["player"], issued["player"]);

    // The password logs in again, to the same player, in any case of the name.
    let (status, again) = login(dev.addr, "ANN", "correct horse").await;
    assert_eq!((status, again["player"].clone()), (200, issued["player"].clone()), "{again}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_name_is_one_account_whatever_its_case_width_or_look_alikes() {
    let (dev, _key) = dev(AuthConfig::default()).await;
    assert_eq!(register(dev.addr, "CaseMan", "password one").await.0, 201);
    for (other, status) in [("caseman", 409), ("ＣＡＳＥＭＡＮ", 409), ("c\u{0430}seman", 400)] {
        let (got, answer) = register(dev.addr, other, "password two").await;
        assert_eq!(got, status, "{other}: {answer}");
        assert!(answer["error"].as_str().is_some_and(|e| !e.is_empty()), "{answer}");
    }
    // An all-Cyrillic look-alike of a taken Latin name is that name.
    assert_eq!(register(dev.addr, "ceo", "password one").await.0, 201);
    assert_eq!(register(dev.addr, "\u{0441}\u{0435}\u{043E}", "password two").await.0, 409);
    // Wrong passwords and unknown names are one answer.
    let (status, wrong) = login(dev.addr, "caseman", "not the password").await;
    assert_eq!((status, wrong["error"].as_str()), (401, Some("wrong username or password")));
    assert_eq!(login(dev.addr, "nobody", "not the password").await.0, 401);
    // What is not a name or a password is said so.
    assert_eq!(register(dev.addr, "a b", "password one").await.0, 400);
    assert_eq!(register(dev.addr, "shorty", "short").await.0, 400);
    let (status, odd) = post(dev.addr, "/auth/register", json!({"user": "x"}), None).await;
    assert_eq!(status, 400, "{odd}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_guest_by_device_keeps_its_player_when_it_takes_a_name_and_password() {
    let (dev, _key) = dev(AuthConfig::default()).await;
    let device = json!({"device_id": "a-device-id-of-the-client-0001"});
    let (status, guest) = post(dev.addr, "/auth/device", device.clone(), None).await;
    assert_eq!(status, 200, "{guest}");
    let (_, again) = post(dev.addr, "/auth/device", device, None).await;
    assert_eq!(again["player"], guest["player"], "one device, one account");
    let token = guest["token"].as_str().unwrap();
    let (mut ws, _) = open(dev.addr, &[("authorization", format!("Bearer {token}"))]).await;
    assert_eq!(welcome(&mut ws).await["name"], format!("guest-{}", guest["player"]));

    let body = json!({"username": "Dora", "password": "dora's password"});
    let (status, named) = post(dev.addr, "/auth/password", body, Some(token)).await;
    assert_eq!((status, named["username"].clone()), (200, json!("Dora")), "{named}");
    let (status, by_name) = login(dev.addr, "dora", "dora's password").await;
    assert_eq!((status, by_name["player"].clone()), (200, guest["player"].clone()));
    // Once it has one, a session token alone does not change the password.
    let again = json!({"username": "Dora2", "password": "another password"});
    let (status, refused) = post(dev.addr, "/auth/password", again, by_name["token"].as_str()).await;
    assert_eq!(status, 400, "{refused}");
    assert_eq!(login(dev.addr, "dora", "dora's password").await.0, 200);
    let short = post(dev.addr, "/auth/device", json!({"device_id": "short"}), None).await;
    assert_eq!(short.0, 400);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_expired_forged_foreign_and_revoked_tokens_are_refused_before_any_logic() {
    let (dev, _key) = dev(AuthConfig::default()).await;
    let (_, issued) = register(dev.addr, "Tess", "tess's password").await;
    let (player, token) = (issued["player"].as_u64().unwrap(), issued["token"].as_str().unwrap().to_owned());
    let keys = Keys::new(KEY.as_bytes()).unwrap();
    let expired = keys.sign(player, 0, Use::Session, None, now_s() - 100, 10);
    let foreign = Keys::new(b"another cluster's signing key, 32+ bytes").unwrap().sign(
        player,
        0,
        Use::Session,
        None,
        now_s(),
        60,
    );
    let forged = format!("{}x", &token[..token.len() - 1]);
    let refresh_as_session = issued["refresh_token"].as_str().unwrap().to_owned();
    let cases = [
        (None, "no session token"),
        (Some(expired), "expired"),
        (Some(foreign), "not valid"),
        (Some(forged), "not valid"),
        (Some(refresh_as_session), "not for that"),
    ];
    for (bearer, says) in cases {
        let headers: Vec<(&'static str, String)> =
            bearer.iter().map(|t| ("authorization", format!("Bearer {t}"))).collect();
        let (mut ws, _) = open(dev.addr, &headers).await;
        let (code, reason) = closed_with(&mut ws).await;
        assert_eq!(code, 4401, "{reason}");
        assert!(reason.contains(says), "{reason:?} should say {says:?}");
    }
    // A name alone lets no one in here.
    let (mut ws, _) = open(dev.addr, &[]).await;
    let _ = ws.send(Message::text(json!({"type": "login", "name": "Tess"}).to_string())).await;
    assert_eq!(closed_with(&mut ws).await.0, 4401);

    // A refresh token gets a fresh session token; logging out everywhere revokes both,
    // and ends the session open with the first.
    let refresh = json!({"refresh_token": issued["refresh_token"]});
    let (status, fresh) = post(dev.addr, "/auth/refresh", refresh.clone(), None).await;
    assert_eq!(status, 200, "{fresh}");
    let fresh_token = fresh["token"].as_str().unwrap();
    let (mut open_one, _) = open(dev.addr, &[("authorization", format!("Bearer {token}"))]).await;
    assert_eq!(welcome(&mut open_one).await["player"], player);
    // A socket whose token was checked before the logout, logging in only after it.
    let (mut at_the_door, _) = open(dev.addr, &[("authorization", format!("Bearer {token}"))]).await;
    assert_eq!(post(dev.addr, "/auth/logout-everywhere", json!({}), Some(fresh_token)).await.0, 204);
    let (code, reason) = closed_with(&mut open_one).await;
    assert_eq!((code, reason.as_str()), (4401, REVOKED));
    for revoked in [token.as_str(), fresh_token] {
        let (mut ws, _) = open(dev.addr, &[("authorization", format!("Bearer {revoked}"))]).await;
        let (code, reason) = closed_with(&mut ws).await;
        assert_eq!((code, reason.contains("revoked")), (4401, true), "{reason}");
    }
    let (status, answer) = post(dev.addr, "/auth/refresh", refresh, None).await;
    assert_eq!(status, 401, "{answer}");

    // The password still logs in, with tokens of the new generation: a session the kicks
    // do not end. A whisper goes through the queue after them: once it is shown, the
    // session has read every kick.
    let (status, back) = login(dev.addr, "tess", "tess's password").await;
    assert_eq!(status, 200);
    let (mut ws, _) = open(dev.addr, &[("authorization", format!("Bearer {}", back["token"].as_str().unwrap()))]).await;
    assert_eq!(welcome(&mut ws).await["player"], player);
    let (_, ugo) = register(dev.addr, "Ugo", "ugo's password").await;
    let (mut ugo_ws, _) =
        open(dev.addr, &[("authorization", format!("Bearer {}", ugo["token"].as_str().unwrap()))]).await;
    welcome(&mut ugo_ws).await;
    let whisper = json!({"type": "whisper", "to": player, "text": "still there?"});
    ugo_ws.send(Message::text(whisper.to_string())).await.unwrap();
    frame_of(&mut ws, "whisper").await;
    // Now the one at the door logs in: it is not let in, and it does not push the new
    // session out.
    at_the_door.send(Message::text(json!({"type": "login"}).to_string())).await.unwrap();
    assert_eq!(closed_with(&mut at_the_door).await, (4401, REVOKED.to_owned()));
    ws.send(Message::text(json!({"type": "ping"}).to_string())).await.unwrap();
    frame_of(&mut ws, "pong").await;

    // Logged out everywhere again with no session open, the kicks wait in the player's
    // queue: a session of the generation after reads them and goes on.
    drop(ws);
    assert_eq!(post(dev.addr, "/auth/logout-everywhere", json!({}), back["token"].as_str()).await.0, 204);
    let (_, again) = login(dev.addr, "tess", "tess's password").await;
    let (mut ws, _) =
        open(dev.addr, &[("authorization", format!("Bearer {}", again["token"].as_str().unwrap()))]).await;
    assert_eq!(welcome(&mut ws).await["player"], player);
    ugo_ws.send(Message::text(whisper.to_string())).await.unwrap();
    frame_of(&mut ws, "whisper").await;
    ws.send(Message::text(json!({"type": "ping"}).to_string())).await.unwrap();
    frame_of(&mut ws, "pong").await;
}

/// Frames on `ws` until one of type `kind`; fails if the socket closes first.
async fn frame_of(ws: &mut Ws, kind: &str) -> Value {
    loop {
        match tokio::time::timeout(FRAME_WAIT, ws.next()).await.expect("a frame within the wait") {
            Some(Ok(Message::Text(t))) => {
                let frame: Value = serde_json::from_str(&t).unwrap();
                if frame["type"] == kind {
                    return frame;
                }
            }
            Some(Ok(Message::Close(c))) => panic!("closed while waiting for {kind}: {c:?}"),
            Some(Ok(_)) => continue,
            other => panic!("the socket failed while waiting for {kind}: {other:?}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn password_guessing_is_held_to_its_pace_per_account_and_per_address() {
    let auth =
        AuthConfig { logins_per_minute_per_account: 3, logins_per_minute_per_address: 8, ..AuthConfig::default() };
    let (dev, _key) = dev(auth).await;
    assert_eq!(register(dev.addr, "Vic", "vic's password").await.0, 201);
    for _ in 0..3 {
        assert_eq!(login(dev.addr, "vic", "guess").await.0, 401);
    }
    let (status, answer) = login(dev.addr, "vic", "vic's password").await;
    assert_eq!(status, 429, "the account's attempts are used up, the right password too: {answer}");
    assert!(answer["error"].as_str().unwrap().contains("for this account"), "{answer}");
    // Other accounts from the same address, until the address's attempts are used up
    // (one registration and four logins so far).
    let mut refused = 0;
    for i in 0..4 {
        let (status, _) = login(dev.addr, &format!("other{i}"), "guess").await;
        refused += usize::from(status == 429);
    }
    assert_eq!(refused, 1, "the address's ninth attempt is refused");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_go_only_to_players_that_exist_and_text_arrives_clean() {
    let (dev, _key) = dev(AuthConfig::default()).await;
    let (_, ann) = register(dev.addr, "Ann", "ann's password").await;
    let (_, bob) = register(dev.addr, "Bob", "bob's password").await;
    let mut a = Client::connect_with(dev.addr, ann["token"].as_str().unwrap()).await;
    let mut b = Client::connect_with(dev.addr, bob["token"].as_str().unwrap()).await;
    for c in [&mut a, &mut b] {
        c.send(json!({"type": "login"})).await;
        c.recv_type("welcome").await;
    }
    // To an id no account has: refused, never queued for whoever registers it next.
    let nobody = bob["player"].as_u64().unwrap() + 1;
    a.send(json!({"type": "whisper", "to": nobody, "text": "anyone there?"})).await;
    let refused = a.recv_type("error").await;
    assert!(refused["reason"].as_str().unwrap().contains(&format!("no player {nobody}")), "{refused}");
    let (_, cy) = register(dev.addr, "Cy", "cy's password").await;
    assert_eq!(cy["player"], nobody);
    let mut c = Client::connect_with(dev.addr, cy["token"].as_str().unwrap()).await;
    c.send(json!({"type": "login"})).await;
    c.recv_type("welcome").await;
    assert_eq!(
        c.try_recv(std::time::Duration::from_millis(300)).await.map(|f| f["type"].clone()),
        Some(json!("profile"))
    );
    assert!(c.try_recv(std::time::Duration::from_millis(300)).await.is_none(), "nothing waited for Cy");

    // Direction overrides and control characters do not reach another player's screen.
    let sneaky = "gg \u{202E}gnp.exe\u{202C} \u{0007}!";
    a.send(json!({"type": "whisper", "to": bob["player"], "text": sneaky})).await;
    let heard = b.recv_type("whisper").await;
    assert_eq!(heard["text"], "gg gnp.exe !", "{heard}");
    assert_eq!(heard["from_name"], "Ann");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_from_one_baseapp_opens_a_session_on_another_until_revoked_on_either() {
    let redis = warren_testkit::RedisServer::start();
    let bus = Bus::redis_with_groups(&redis.url, 8).await.unwrap();
    let modules = [("baseapp", SCRIPT_BASEAPP), ("battle", SCRIPT_BATTLE), ("guild", warren_test_guests::SCRIPT_GUILD)];
    for (role, module) in modules {
        bus.publish_module(role, warren_test_guests::read(module)).await.unwrap();
    }
    let (_one, addr1) = crate::cluster::baseapp(&redis.url, 8, "base-1", 2_000);
    let (_two, addr2) = crate::cluster::baseapp(&redis.url, 8, "base-2", 2_000);
    let (status, issued) = register(addr1, "Wren", "wren's password").await;
    assert_eq!(status, 201, "{issued}");
    let token = issued["token"].as_str().unwrap();
    let (mut ws, _) = open(addr2, &[("authorization", format!("Bearer {token}"))]).await;
    assert_eq!(welcome(&mut ws).await["player"], issued["player"], "one key across the cluster");
    // The same username cannot be registered on the other baseapp.
    assert_eq!(register(addr2, "WREN", "another password").await.0, 409);
    // Logging out everywhere on one baseapp ends the session open on the other, and
    // revokes the token there.
    assert_eq!(post(addr1, "/auth/logout-everywhere", json!({}), Some(token)).await.0, 204);
    let (code, reason) = closed_with(&mut ws).await;
    assert_eq!((code, reason.as_str()), (4401, REVOKED));
    let (mut ws, _) = open(addr1, &[("authorization", format!("Bearer {token}"))]).await;
    let (code, reason) = closed_with(&mut ws).await;
    assert_eq!((code, reason.contains("revoked")), (4401, true), "{reason}");
    // No name-only login on a cluster role.
    let (mut ws, _) = open(addr1, &[]).await;
    let _ = ws.send(Message::text(json!({"type": "login", "name": "Wren"}).to_string())).await;
    assert_eq!(closed_with(&mut ws).await.0, 4401);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_password_changes_only_with_the_current_one_and_the_change_ends_every_session() {
    let (dev, _key) = dev(AuthConfig::default()).await;
    let (_, issued) = register(dev.addr, "Pia", "pia's first password").await;
    let (player, token) = (issued["player"].as_u64().unwrap(), issued["token"].as_str().unwrap().to_owned());
    let (mut open_one, _) = open(dev.addr, &[("authorization", format!("Bearer {token}"))]).await;
    assert_eq!(welcome(&mut open_one).await["player"], player);
    let change = |old: &str, new: &str| json!({"password": old, "new_password": new});

    // Not without the current password, nor to one too short, nor without a token.
    let (status, answer) =
        post(dev.addr, "/auth/change-password", change("a guess", "pia's new password"), Some(&token)).await;
    assert_eq!((status, answer["error"].as_str()), (401, Some("wrong username or password")));
    let (status, answer) =
        post(dev.addr, "/auth/change-password", change("pia's first password", "short"), Some(&token)).await;
    assert_eq!(status, 400, "{answer}");
    assert_eq!(
        post(dev.addr, "/auth/change-password", change("pia's first password", "pia's new password"), None).await.0,
        401
    );
    assert_eq!(login(dev.addr, "pia", "pia's first password").await.0, 200, "nothing changed yet");

    let (status, fresh) =
        post(dev.addr, "/auth/change-password", change("pia's first password", "pia's new password"), Some(&token))
            .await;
    assert_eq!(status, 200, "{fresh}");
    assert_eq!(fresh["player"], player);
    let (code, reason) = closed_with(&mut open_one).await;
    assert_eq!((code, reason.as_str()), (4401, REVOKED));
    assert_eq!(login(dev.addr, "pia", "pia's first password").await.0, 401);
    assert_eq!(login(dev.addr, "pia", "pia's new password").await.0, 200);
    let (mut revoked, _) = open(dev.addr, &[("authorization", format!("Bearer {token}"))]).await;
    assert_eq!(closed_with(&mut revoked).await.0, 4401);
    let (status, _) = post(dev.addr, "/auth/refresh", json!({"refresh_token": issued["refresh_token"]}), None).await;
    assert_eq!(status, 401, "the old refresh token is revoked too");
    let (mut ws, _) =
        open(dev.addr, &[("authorization", format!("Bearer {}", fresh["token"].as_str().unwrap()))]).await;
    assert_eq!(welcome(&mut ws).await["player"], player, "the answered token lets the client back in");

    // A guest has no password to change: it sets one (`/auth/password`).
    let (_, guest) = post(dev.addr, "/auth/device", json!({"device_id": "pia-tablet-0123456789"}), None).await;
    let (status, answer) =
        post(dev.addr, "/auth/change-password", change("x", "pia's new password"), guest["token"].as_str()).await;
    assert_eq!(status, 400, "{answer}");
}
