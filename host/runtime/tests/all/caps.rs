//! The guest SDK's native test harness enforces the host's limits (so a script fails in its
//! tests as it would live); its defaults must be the host's.

use warren_guest::testing::Caps;
use warren_runtime::Limits;

#[test]
fn the_sdk_harness_defaults_are_the_hosts_limits() {
    let (host, sdk) = (Limits::default(), Caps::default());
    let host_caps = [
        host.max_emits,
        host.max_emit_bytes,
        host.max_frame_bytes,
        host.max_message_bytes,
        host.max_log_bytes,
        host.max_reason_bytes,
        host.max_key_bytes,
        host.max_value_bytes,
        host.max_state_keys,
    ];
    let sdk_caps = [
        sdk.max_emits,
        sdk.max_emit_bytes,
        sdk.max_frame_bytes,
        sdk.max_message_bytes,
        sdk.max_log_bytes,
        sdk.max_reason_bytes,
        sdk.max_key_bytes,
        sdk.max_value_bytes,
        sdk.max_state_keys,
    ];
    assert_eq!(sdk_caps, host_caps);
    let (h, s) = (host.state_bytes, sdk.state_bytes);
    assert_eq!(
        [s.baseapp, s.battle, s.guild, s.team, s.matchmaker],
        [h.baseapp, h.battle, h.guild, h.team, h.matchmaker]
    );
}
