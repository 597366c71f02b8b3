//! The configuration's checks: shipped files, typos, bad values, flags over files.
use super::*;

#[test]
fn the_shipped_dev_config_parses() {
    let text = include_str!("../../../../config/dev.toml");
    assert_eq!(DevConfig::parse(text).unwrap(), DevConfig::default());
}

#[test]
fn typos_and_bad_values_are_refused_with_the_key() {
    let err = DevConfig::parse("[battle]\ntick_hertz = 5\n").unwrap_err();
    assert!(err.contains("tick_hertz"), "{err}");
    let err = DevConfig::parse("[battle]\ntick_hz = 0\n").unwrap_err();
    assert!(err.contains("battle.tick_hz"), "{err}");
    let err = DevConfig::parse("listen = \"nowhere\"\n").unwrap_err();
    assert!(err.contains("listen"), "{err}");
    let err = DevConfig::parse("[net]\nlogin_timeout = 5\n").unwrap_err();
    assert!(err.contains("login_timeout"), "{err}");
    let err = DevConfig::parse("[net]\nframes_burst = 0\n").unwrap_err();
    assert!(err.contains("net.frames_burst"), "{err}");
}

#[test]
fn the_net_section_reaches_the_door_with_its_values() {
    let c = DevConfig::parse(
        "[net]\nheader_timeout_ms = 250\nmax_connections = 7\nuncapped_addresses = [\"10.0.0.1\"]\n\
         frames_per_s = 3\nping_interval_ms = 100\nidle_timeout_ms = 101\n",
    )
    .unwrap();
    let l = c.net.to_limits();
    assert_eq!((l.header_timeout.as_millis(), l.max_connections, l.frames_per_s), (250, 7, 3));
    assert_eq!(l.uncapped_addresses, vec!["10.0.0.1".parse::<std::net::IpAddr>().unwrap()]);
    // 0: from the open-file limit, which leaves the host files of its own.
    assert!(NetConfig::default().to_limits().max_connections >= 64);
}

/// What the shipped examples set: the defaults, and a local Redis.
fn example() -> HostConfig {
    HostConfig { redis: Some("redis://127.0.0.1:6379".into()), ..HostConfig::default() }
}

#[test]
fn the_shipped_host_configs_parse_to_the_defaults() {
    for (file, text) in [
        ("baseapp.toml", include_str!("../../../../config/baseapp.toml")),
        ("guild.toml", include_str!("../../../../config/guild.toml")),
        ("battleapp.toml", include_str!("../../../../config/battleapp.toml")),
    ] {
        let parsed = HostConfig::parse(text).unwrap_or_else(|e| panic!("{file}: {e}"));
        assert_eq!(parsed, example(), "{file}");
    }
}

#[test]
fn host_config_typos_and_bad_values_are_refused_with_the_key() {
    for (text, key) in [
        // Typos, at the top and in every section.
        ("lease_ttl = 5000\n", "lease_ttl"),
        ("[baseapp]\nlisten_on = \"127.0.0.1:1\"\n", "listen_on"),
        ("[battle]\ntick_hertz = 5\n", "tick_hertz"),
        ("[battleapp]\ncheckpoint_tick = 5\n", "checkpoint_tick"),
        ("[limits]\ndeadline = 5\n", "deadline"),
        ("[guild]\n", "guild"),
        // Wrong types.
        ("groups = \"many\"\n", "groups"),
        ("[baseapp]\nlisten = \"nowhere\"\n", "listen"),
        ("[battleapp]\nlisten = \"nowhere\"\n", "listen"),
        // Values out of range.
        ("redis = \"\"\n", "redis"),
        ("redis = \"127.0.0.1:6379\"\n", "redis"),
        ("name = \"two words\"\n", "name"),
        ("name = \"\"\n", "name"),
        ("groups = 0\n", "groups"),
        ("lease_ttl_ms = 299\n", "lease_ttl_ms"),
        ("lease_ttl_ms = 3600001\n", "lease_ttl_ms"),
        ("[battle]\ntick_hz = 0\n", "battle.tick_hz"),
        ("[battle]\ntick_hz = 1001\n", "battle.tick_hz"),
        ("[battleapp]\ncheckpoint_ticks = 0\n", "battleapp.checkpoint_ticks"),
        ("[battleapp]\ncheckpoint_ticks = 10001\n", "battleapp.checkpoint_ticks"),
        ("[battleapp]\npublic_url = \"http://example.com/ws\"\n", "battleapp.public_url"),
        ("[battleapp]\npublic_url = \"wss://\"\n", "battleapp.public_url"),
        ("[limits]\nmemory_mib = 0\n", "limits.memory_mib"),
        ("[limits]\nmax_hops = 0\n", "limits.max_hops"),
        ("[limits]\nmax_queue_len = 0\n", "limits.max_queue_len"),
        ("[limits.state_kib]\nguild = 0\n", "limits.state_kib.guild"),
        ("[limits.state_kib]\nplayer = 5\n", "player"),
        ("[bus]\nresponse_timeout = 5\n", "response_timeout"),
        ("[bus]\nreconnect_retries = 101\n", "bus.reconnect_retries"),
        ("[bus]\nconnect_timeout_ms = 0\n", "bus.connect_timeout_ms"),
        ("[net]\nidle_timeout = 5\n", "idle_timeout"),
        ("[net]\nheader_timeout_ms = 0\n", "net.header_timeout_ms"),
        ("[net]\nwrite_timeout_ms = 3600001\n", "net.write_timeout_ms"),
        ("[net]\nping_interval_ms = 5000\nidle_timeout_ms = 5000\n", "net.idle_timeout_ms"),
        ("[net]\nmax_connections = 10000001\n", "net.max_connections"),
        ("[net]\nmax_per_address = 0\n", "net.max_per_address"),
        ("[net]\nmax_per_address = 8\nmax_pending_per_address = 9\n", "net.max_pending_per_address"),
        ("[net]\nframes_per_s = 0\n", "net.frames_per_s"),
        ("[net]\nuncapped_addresses = [\"gateway\"]\n", "uncapped_addresses"),
    ] {
        let err = HostConfig::parse(text).expect_err(text);
        assert!(err.contains(key), "{text:?} refused without naming `{key}`: {err}");
    }
}

#[test]
fn host_config_accepts_every_role_section_and_edge_values() {
    let text = "redis = \"redis://a:7000,redis://b:7001\"\nname = \"base-1\"\ngroups = 1\n\
                lease_ttl_ms = 300\n[baseapp]\nlisten = \"0.0.0.0:7701\"\n[battle]\ntick_hz = 1000\n\
                [battleapp]\ncheckpoint_ticks = 10000\npublic_url = \"wss://battle.example.com/ws\"\n";
    let c = HostConfig::parse(text).unwrap();
    assert_eq!((c.groups, c.lease_ttl_ms, c.battle.tick_hz, c.battleapp.checkpoint_ticks), (1, 300, 1000, 10_000));
    assert_eq!(c.name.as_deref(), Some("base-1"));
    let bound = "10.0.0.5:7800".parse().unwrap();
    assert_eq!(c.battleapp.public_url(bound), "wss://battle.example.com/ws");
    assert_eq!(BattleappConfig::default().public_url(bound), "ws://10.0.0.5:7800/ws");
}

/// A config file in a temporary folder.
fn config_file(text: &str) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("host.toml");
    std::fs::write(&path, text).unwrap();
    (dir, path)
}

#[test]
fn flags_override_the_file_which_overrides_the_defaults() {
    let (_dir, path) = config_file(
        "redis = \"redis://file:6379\"\nname = \"from-file\"\ngroups = 8\nlease_ttl_ms = 5000\n\
         [baseapp]\nlisten = \"127.0.0.1:7701\"\n[battle]\ntick_hz = 20\n[limits]\ndeadline_ms = 80\n\
         [battleapp]\ncheckpoint_ticks = 40\n",
    );
    // No flags but the file: the file's values, the defaults elsewhere.
    let only_file = HostFlags { config: Some(path.clone()), ..HostFlags::default() };
    let c = only_file.resolve(&BaseappFlags::default()).unwrap();
    assert_eq!(c.redis().unwrap(), "redis://file:6379");
    assert_eq!((c.name.as_deref(), c.groups, c.lease_ttl_ms), (Some("from-file"), 8, 5000));
    assert_eq!((c.baseapp.listen.port(), c.battle.tick_hz, c.limits.deadline_ms), (7701, 20, 80));
    assert_eq!(c.limits.memory_mib, LimitsConfig::default().memory_mib);
    assert_eq!(c.battleapp.listen, BattleappConfig::default().listen);

    // Every flag given: each wins over the file.
    let flags = HostFlags {
        config: Some(path),
        redis: Some("redis://flag:6379".into()),
        name: Some("from-flag".into()),
        groups: Some(16),
        lease_ttl_ms: Some(2000),
    };
    let baseapp = BaseappFlags { listen: Some("127.0.0.1:7702".parse().unwrap()) };
    let c = flags.resolve(&baseapp).unwrap();
    assert_eq!(c.redis().unwrap(), "redis://flag:6379");
    assert_eq!((c.name.as_deref(), c.groups, c.lease_ttl_ms), (Some("from-flag"), 16, 2000));
    assert_eq!(c.baseapp.listen.port(), 7702);
    assert_eq!(c.limits.deadline_ms, 80, "keys without a flag keep the file's value");

    let battleapp = BattleappFlags {
        listen: Some("127.0.0.1:7801".parse().unwrap()),
        tick_hz: Some(30),
        checkpoint_ticks: Some(5),
        public_url: Some("wss://b.example.com/ws".into()),
    };
    let c = flags.resolve(&battleapp).unwrap();
    assert_eq!((c.battleapp.listen.port(), c.battle.tick_hz, c.battleapp.checkpoint_ticks), (7801, 30, 5));
    assert_eq!(c.battleapp.public_url.as_deref(), Some("wss://b.example.com/ws"));
    assert_eq!(c.baseapp.listen.port(), 7701, "another role's flags leave the baseapp section alone");

    // Without a file: flags over the defaults.
    let c = HostFlags { redis: Some("redis://flag:6379".into()), ..HostFlags::default() }.resolve(&()).unwrap();
    assert_eq!(c, HostConfig { redis: Some("redis://flag:6379".into()), ..HostConfig::default() });
}

#[test]
fn a_host_without_redis_or_with_a_bad_flag_is_refused_clearly() {
    let err = HostFlags::default().resolve(&()).unwrap_err().to_string();
    assert!(err.contains("--redis") && err.contains("redis =") && err.contains("--config"), "{err}");
    let (_dir, path) = config_file("name = \"no-redis\"\n");
    let err = HostFlags { config: Some(path), ..HostFlags::default() }.resolve(&()).unwrap_err().to_string();
    assert!(err.contains("--redis"), "{err}");

    let flags = HostFlags { redis: Some("redis://r:6379".into()), lease_ttl_ms: Some(100), ..HostFlags::default() };
    let err = flags.resolve(&()).unwrap_err().to_string();
    assert!(err.contains("--lease-ttl-ms") && err.contains("lease_ttl_ms"), "{err}");
    let flags = HostFlags { redis: Some("redis://r:6379".into()), ..HostFlags::default() };
    let err = flags.resolve(&BattleappFlags { tick_hz: Some(0), ..BattleappFlags::default() }).unwrap_err();
    assert!(err.to_string().contains("--tick-hz"), "{err}");

    let (_dir, path) = config_file("redis = \"redis://r:6379\"\ngroups = 0\n");
    let err = HostFlags { config: Some(path.clone()), ..HostFlags::default() }.resolve(&()).unwrap_err();
    let err = err.to_string();
    assert!(err.contains("groups") && err.contains(&path.display().to_string()), "names the file: {err}");
}

#[test]
fn the_host_flags_keep_their_names() {
    use clap::Parser;
    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        host: HostFlags,
        #[command(flatten)]
        baseapp: BaseappFlags,
    }
    let cli = Cli::try_parse_from([
        "warren",
        "--listen",
        "127.0.0.1:0",
        "--redis",
        "redis://r:6379",
        "--groups",
        "12",
        "--name",
        "base-1",
        "--lease-ttl-ms",
        "1500",
        "--config",
        "c.toml",
    ])
    .unwrap();
    assert_eq!(cli.host.redis.as_deref(), Some("redis://r:6379"));
    assert_eq!(
        (cli.host.groups, cli.host.lease_ttl_ms, cli.host.name.as_deref()),
        (Some(12), Some(1500), Some("base-1"))
    );
    assert_eq!(cli.baseapp.listen.map(|a| a.port()), Some(0));
    assert_eq!(cli.host.config.as_deref(), Some(Path::new("c.toml")));
}
