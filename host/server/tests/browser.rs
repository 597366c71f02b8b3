//! The web client in a real browser: Debian's headless Chromium, driven over WebDriver
//! (chromedriver), plays against `warren dev` started in-process — registers, buys a
//! potion, is refused a whisper to itself, founds a guild and chats in it, adopts a pet,
//! wears a sword, plays a practice battle to its end, sees a baseapp module swapped live
//! (a new potion price) without a reload; reloaded, it resumes after the last push it
//! showed, and a refused token is refreshed once, then sends the player to the login
//! form. The page's last look is kept as `target/test-artifacts/web-client.png`
//! (`web-client-failed.png` when a step fails).
//!
//! A test binary of its own: it starts a browser, and cargo runs test binaries one after
//! the other. Chromium and chromedriver missing is a failure, never a skip:
//! `tools/setup.sh` installs them.

use anyhow::{Context, bail};
use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::json;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::oneshot;
use warren::config::DevConfig;

/// Debian's `chromium` package.
const CHROMIUM: &str = "/usr/bin/chromium";
/// Debian's `chromium-driver` package.
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
/// How long any one step may take before the test fails.
const WAIT: Duration = Duration::from_secs(30);
/// How often a wait looks at the page again.
const POLL: Duration = Duration::from_millis(40);

/// A chromedriver on a free port, killed with the test.
struct Chromedriver {
    child: Child,
    port: u16,
}

impl Chromedriver {
    fn start() -> Chromedriver {
        for path in [CHROMIUM, CHROMEDRIVER] {
            assert!(
                Path::new(path).exists(),
                "{path} is missing: run tools/setup.sh (it installs Debian's chromium and chromium-driver)"
            );
        }
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let child = Command::new(CHROMEDRIVER)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {CHROMEDRIVER}: {e}"));
        Chromedriver { child, port }
    }

    /// A browser session: headless Chromium (`--no-sandbox`: the tests may run as root).
    async fn session(&self) -> Client {
        let options = json!({
            "binary": CHROMIUM,
            "args": ["--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                     "--window-size=1280,1400"],
        });
        let mut capabilities = serde_json::Map::new();
        capabilities.insert("goog:chromeOptions".into(), options);
        let url = format!("http://127.0.0.1:{}", self.port);
        let started = Instant::now();
        loop {
            let connector = hyper_util::client::legacy::connect::HttpConnector::new();
            match ClientBuilder::new(connector).capabilities(capabilities.clone()).connect(&url).await {
                Ok(client) => return client,
                // chromedriver is still starting.
                Err(_) if started.elapsed() < WAIT => {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                Err(e) => panic!("no browser session from chromedriver on {url}: {e}"),
            }
        }
    }
}

impl Drop for Chromedriver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Where test artifacts go: `target/test-artifacts/` (or under `CARGO_TARGET_DIR`).
fn artifacts() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target"));
    let dir = target.join("test-artifacts");
    std::fs::create_dir_all(&dir).expect("create the artifacts folder");
    dir.canonicalize().unwrap_or(dir)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_player_registers_shops_battles_and_sees_a_live_swap_in_chromium() {
    let driver = Chromedriver::start();

    // `warren dev` with the shipped scripts, at the default tick rate.
    let modules = tempfile::tempdir().unwrap();
    for (file, from) in [
        ("baseapp.wasm", warren_test_guests::SCRIPT_BASEAPP),
        ("battle.wasm", warren_test_guests::SCRIPT_BATTLE),
        ("guild.wasm", warren_test_guests::SCRIPT_GUILD),
    ] {
        std::fs::copy(from, modules.path().join(file)).expect("copy module");
    }
    let config = DevConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        modules: modules.path().to_owned(),
        ..DevConfig::default()
    };
    let (_stop, stopped) = oneshot::channel::<()>();
    let dev = warren::roles::dev::start(config, async {
        let _ = stopped.await;
    })
    .await
    .expect("warren dev starts");

    let browser = driver.session().await;
    let (shot, failed) = (artifacts().join("web-client.png"), artifacts().join("web-client-failed.png"));
    // A failure's screenshot from an earlier run would mislead.
    let _ = std::fs::remove_file(&failed);
    let played = play(&browser, dev.addr, modules.path(), &shot).await;
    if played.is_err() {
        match browser.screenshot().await {
            Ok(png) => std::fs::write(&failed, png).expect("write the screenshot"),
            Err(e) => eprintln!("no screenshot: {e}"),
        }
    }
    let activity = text(&browser, "#log").await.unwrap_or_default();
    let _ = browser.close().await;
    if let Err(e) = played {
        panic!("{e:#}\nthe page's activity log:\n{activity}\nscreenshot: {}", failed.display());
    }
    eprintln!("screenshot: {}", shot.display());
}

/// What the player does, step by step, each waited for with a deadline; the page is
/// saved to `shot` once it shows it all (before the reload).
async fn play(c: &Client, addr: std::net::SocketAddr, modules: &Path, shot: &Path) -> anyhow::Result<()> {
    for (path, kind) in [
        ("/", "text/html"),
        ("/app.js", "text/javascript"),
        ("/views.js", "text/javascript"),
        ("/style.css", "text/css"),
    ] {
        let got = content_type(addr, path).await?;
        anyhow::ensure!(got.starts_with(kind), "GET {path} is served as `{got}`, not {kind}");
    }

    c.goto(&format!("http://{addr}/")).await?;
    // Gone if the page reloads: the swap must show without one.
    c.execute("window.stillTheSamePage = true;", vec![]).await?;

    // Register.
    c.find(Locator::Id("username")).await?.send_keys("ann").await?;
    c.find(Locator::Id("password")).await?.send_keys("a long enough password").await?;
    c.find(Locator::Id("register")).await?.click().await?;
    wait_text(c, "#status", |t| t == "online", "the session online").await?;
    wait_text(c, "#gold", |t| t == "100", "a new player's 100 gold").await?;
    // Signed in by account: the socket was opened with the session token.
    let signed_in = c.execute("return JSON.parse(localStorage.getItem('warren.session'));", vec![]).await?;
    anyhow::ensure!(
        signed_in["token"].is_string() && signed_in["username"] == "ann",
        "not signed in by account: {signed_in}"
    );
    let me = signed_in["player"].as_u64().context("a player id")?;

    // Buy a potion: gold and bag change.
    let potion_price = "#shop tr[data-item=\"potion\"] td.price";
    let potions = "#bag tr[data-item=\"potion\"] td.count";
    wait_text(c, potion_price, |t| t == "10 g", "the potion's price in the shop").await?;
    wait_text(c, potions, |t| t == "×3", "a new player's 3 potions").await?;
    c.find(Locator::Css("#shop tr[data-item=\"potion\"] button.buy")).await?.click().await?;
    wait_text(c, "#gold", |t| t == "90", "gold after buying a potion").await?;
    wait_text(c, potions, |t| t == "×4", "4 potions in the bag").await?;

    // A refusal shows on the page: a whisper to oneself.
    c.find(Locator::Id("whisper-to")).await?.send_keys(&me.to_string()).await?;
    c.find(Locator::Id("whisper-text")).await?.send_keys("hello me").await?;
    c.find(Locator::Css("#whisper-form button[type=submit]")).await?.click().await?;
    wait_text(c, "#error-text", |t| t.contains("yourself"), "the refusal of a whisper to oneself").await?;

    // A guild, founded and chatted in: its events come back as pushes.
    c.find(Locator::Id("guild-input")).await?.send_keys("Foxes").await?;
    c.find(Locator::Css("#guild-form button[data-action=\"guild.create\"]")).await?.click().await?;
    wait_text(c, "#guild-name", |t| t == "Foxes", "the guild founded").await?;
    c.find(Locator::Id("chat-text")).await?.send_keys("raid at nine").await?;
    c.find(Locator::Css("#chat-form button[type=submit]")).await?.click().await?;
    wait_text(c, "#guild-log", |t| t.contains("ann: raid at nine"), "the chat line").await?;

    // A pet adopted, a sword worn.
    c.find(Locator::Id("adopt-name")).await?.send_keys("Tom").await?;
    c.find(Locator::Css("#adopt-form button[type=submit]")).await?.click().await?;
    wait_text(c, "#pets", |t| t.contains("Tom the cat"), "the adopted cat").await?;
    wait_text(c, "#gold", |t| t == "40", "gold after adopting a cat").await?;
    c.find(Locator::Css("#bag tr[data-item=\"wood-sword\"] button.equip")).await?.click().await?;
    wait_text(c, "#equipment", |t| t.contains("Wooden Sword"), "the sword worn").await?;
    wait_text(c, "#equip-attack", |t| t == "3", "the sword's attack").await?;

    // A practice battle, played to its end: attack whenever the page lets us (once a tick).
    c.find(Locator::Id("battle-start")).await?.click().await?;
    wait_text(c, "#fighters", |t| t.contains("You") && t.contains("Bot"), "the fighters drawn").await?;
    let started = Instant::now();
    let result = loop {
        let result = c.find(Locator::Id("battle-result")).await?;
        if result.is_displayed().await? {
            break result.text().await?;
        }
        if started.elapsed() > 2 * WAIT {
            bail!("the battle never ended on the page: {}", text(c, "#battle-events").await?);
        }
        let attack = c.find(Locator::Id("act-attack")).await?;
        if attack.is_enabled().await? {
            attack.click().await?;
        }
        tokio::time::sleep(POLL).await;
    };
    anyhow::ensure!(
        ["You won", "You lost", "Draw"].iter().any(|r| result.starts_with(r)),
        "the battle's end reads `{result}`"
    );
    anyhow::ensure!(text(c, "#battle-events").await?.contains("hit Bot for"), "our attacks are drawn");
    // The reward is a push (practice pays xp only): it shows in the profile.
    wait_text(c, "#xp", |t| !t.starts_with("0 /"), "the battle's xp in the profile").await?;

    // The baseapp module swapped live: the shop shows the new price on the same page, and
    // the player's gold and bag are still there.
    let partial = modules.join("baseapp.partial");
    std::fs::copy(warren_test_guests::SCRIPT_BASEAPP_SALE, &partial)?;
    std::fs::rename(&partial, modules.join("baseapp.wasm"))?;
    let started = Instant::now();
    while text(c, potion_price).await.ok().as_deref() != Some("5 g") {
        if started.elapsed() > WAIT {
            bail!("the new potion price never showed: {}", text(c, "#shop").await?);
        }
        c.find(Locator::Id("shop-refresh")).await?.click().await?;
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    wait_text(c, "#gold", |t| t == "40", "gold kept across the swap").await?;
    c.find(Locator::Css("#shop tr[data-item=\"potion\"] button.buy")).await?.click().await?;
    wait_text(c, "#gold", |t| t == "35", "gold after buying at the new price").await?;
    wait_text(c, potions, |t| t == "×5", "5 potions in the bag").await?;
    let same = c.execute("return window.stillTheSamePage === true;", vec![]).await?;
    anyhow::ensure!(same == json!(true), "the page reloaded");
    std::fs::write(shot, c.screenshot().await?)?;

    // Opened again, the page logs in with its stored token. The server had every push
    // acknowledged: even with the page's own mark forgotten, nothing shown before comes
    // again (the battle's reward, the chat).
    let mark = c.execute(&format!("return JSON.parse(localStorage.getItem('warren.ack.{me}'));"), vec![]).await?;
    anyhow::ensure!(mark.as_u64().is_some_and(|m| m > 0), "no push was marked shown: {mark}");
    c.execute(&format!("localStorage.removeItem('warren.ack.{me}');"), vec![]).await?;
    c.refresh().await?;
    wait_text(c, "#status", |t| t == "online", "the session online again").await?;
    wait_text(c, "#gold", |t| t == "35", "the gold after a reload").await?;
    let again = format!("{} {}", text(c, "#log").await?, text(c, "#guild-log").await?);
    anyhow::ensure!(!again.contains("Battle") && !again.contains("raid"), "pushes shown twice: {again}");

    // A session token refused: the page gets a new one with its refresh token, once...
    let spoil = |fields: &str| {
        format!(
            "const s = JSON.parse(localStorage.getItem('warren.session')); {fields} localStorage.setItem('warren.session', JSON.stringify(s));"
        )
    };
    c.execute(&spoil("s.token = 'forged';"), vec![]).await?;
    c.refresh().await?;
    wait_text(c, "#status", |t| t == "online", "the session online with a refreshed token").await?;
    // ...and with that refused too, it asks the player to log in again, saying why.
    c.execute(&spoil("s.token = 'forged'; s.refresh_token = 'forged';"), vec![]).await?;
    c.refresh().await?;
    wait_text(c, "#auth-error", |t| !t.is_empty(), "the login form, with the reason").await?;
    anyhow::ensure!(c.find(Locator::Id("register")).await?.is_displayed().await?, "the login form is not shown");
    Ok(())
}

/// The visible text of the element `css` selects.
async fn text(c: &Client, css: &str) -> anyhow::Result<String> {
    Ok(c.find(Locator::Css(css)).await?.text().await?.trim().to_owned())
}

/// Waits until the element `css` selects shows text that `ok` accepts (the element may
/// not exist yet, or be redrawn meanwhile); fails after [`WAIT`] with what it showed.
async fn wait_text(c: &Client, css: &str, ok: impl Fn(&str) -> bool, what: &str) -> anyhow::Result<String> {
    let started = Instant::now();
    loop {
        let seen = text(c, css).await;
        if let Ok(t) = &seen
            && ok(t)
        {
            return Ok(t.clone());
        }
        if started.elapsed() > WAIT {
            let error = text(c, "#error").await.unwrap_or_default();
            bail!("waited {WAIT:?} for {what} in `{css}`; it shows {seen:?} (page error: `{error}`)");
        }
        tokio::time::sleep(POLL).await;
    }
}

/// The `Content-Type` a plain GET of `path` is answered with.
async fn content_type(addr: std::net::SocketAddr, path: &str) -> anyhow::Result<String> {
    let mut s = tokio::net::TcpStream::connect(addr).await?;
    let req = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    s.write_all(req.as_bytes()).await?;
    let mut resp = String::new();
    s.read_to_string(&mut resp).await?;
    anyhow::ensure!(resp.starts_with("HTTP/1.1 200"), "GET {path}: {}", resp.lines().next().unwrap_or_default());
    resp.lines()
        .take_while(|l| !l.is_empty())
        .find_map(|l| l.strip_prefix("content-type: ").or_else(|| l.strip_prefix("Content-Type: ")))
        .map(str::to_owned)
        .context("no content-type")
}
