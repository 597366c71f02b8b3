//! Membership: heartbeats, reports, leaving, and who is alive.
//!
//! A role's members are a sorted set of heartbeat expiries (`{members}:<role>`), their
//! latest reports a hash beside it in the same slot (`{members}:<role>:reports`). Expiry is
//! each host's clock plus its ttl: hosts' clocks must agree to well within the ttl (NTP
//! does).

use super::*;

impl RedisBus {
    /// Keeps `instance` alive for `ttl` more and, with `report`, replaces its report, in
    /// one script (see HEARTBEAT_LUA).
    pub(crate) async fn heartbeat(
        &self,
        role: &str,
        instance: &str,
        ttl: Duration,
        report: Option<&[u8]>,
    ) -> Result<(), BusError> {
        let now = now_ms();
        let mut inv = self.heartbeat.prepare_invoke();
        inv.key(self.members_key(role)).key(self.reports_key(role));
        inv.arg(instance).arg(now + ttl.as_millis() as u64).arg(now);
        if let Some(report) = report {
            inv.arg(report);
        }
        let _: redis::Value = inv.invoke_async(&mut self.conn.clone()).await.map_err(unavailable)?;
        Ok(())
    }

    pub(crate) async fn leave(&self, role: &str, instance: &str) -> Result<(), BusError> {
        // Both keys in one slot: one request to one node. Should the second fail, the
        // report is not listed anyway (it has no member) and the next heartbeat drops it.
        let _: () = redis::pipe()
            .zrem(self.members_key(role), instance)
            .ignore()
            .hdel(self.reports_key(role), instance)
            .ignore()
            .query_async(&mut self.conn.clone())
            .await
            .map_err(unavailable)?;
        Ok(())
    }

    pub(crate) async fn members(&self, role: &str) -> Result<Vec<String>, BusError> {
        let key = self.members_key(role);
        let mut conn = self.conn.clone();
        let _: () = conn.zrembyscore(&key, "-inf", now_ms()).await.map_err(unavailable)?;
        let mut live: Vec<String> = conn.zrange(&key, 0, -1).await.map_err(unavailable)?;
        live.sort();
        Ok(live)
    }

    pub(crate) async fn reports(&self, role: &str) -> Result<Vec<(String, Vec<u8>)>, BusError> {
        let flat: Vec<Vec<u8>> = self
            .reports
            .key(self.members_key(role))
            .key(self.reports_key(role))
            .arg(now_ms())
            .invoke_async(&mut self.conn.clone())
            .await
            .map_err(unavailable)?;
        let mut flat = flat.into_iter();
        let mut live: Vec<(String, Vec<u8>)> = std::iter::from_fn(|| {
            let instance = flat.next()?;
            Some((String::from_utf8_lossy(&instance).into_owned(), flat.next()?))
        })
        .collect();
        live.sort();
        Ok(live)
    }
}
