//! Accounts on Redis (see `crate::accounts`): one hash of logins (`{accounts}:names`,
//! login → id), the id counter (`{accounts}:next`) and one hash of every account's fields
//! (`{accounts}:fields`, `<id>:<field>` → value), all in one slot so that an account and
//! its first login are made in one script.

use super::*;
use std::sync::LazyLock;

/// The account of a login, made on first use. KEYS: names, next. ARGV: login.
static ACCOUNT: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r#"
local id = redis.call('HGET', KEYS[1], ARGV[1])
if id then return tonumber(id) end
id = redis.call('INCR', KEYS[2])
redis.call('HSET', KEYS[1], ARGV[1], id)
return id
"#,
    )
});

/// A new account for a login not taken, with its fields; 0 if taken. KEYS: names, next,
/// fields. ARGV: login, then field, value, ...
static CREATE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r#"
if redis.call('HEXISTS', KEYS[1], ARGV[1]) == 1 then return 0 end
local id = redis.call('INCR', KEYS[2])
redis.call('HSET', KEYS[1], ARGV[1], id)
for i = 2, #ARGV, 2 do redis.call('HSET', KEYS[3], id .. ':' .. ARGV[i], ARGV[i + 1]) end
return id
"#,
    )
});

/// One more login for an account, with fields set in the same step; 0 if the login names
/// another account. KEYS: names, fields. ARGV: login, id, then field, value, ...
static LINK: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r#"
local now = redis.call('HGET', KEYS[1], ARGV[1])
if now and now ~= ARGV[2] then return 0 end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
for i = 3, #ARGV, 2 do redis.call('HSET', KEYS[2], ARGV[2] .. ':' .. ARGV[i], ARGV[i + 1]) end
return 1
"#,
    )
});

/// A numeric account field moved on by one if it still holds what the caller read, with
/// fields set in the same step; the new value, or -1 if it moved meanwhile. KEYS: fields.
/// ARGV: the counter's field, the value read, then field, value, ...
static BUMP: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r#"
local now = tonumber(redis.call('HGET', KEYS[1], ARGV[1]) or '0')
if now ~= tonumber(ARGV[2]) then return -1 end
for i = 3, #ARGV, 2 do redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1]) end
return redis.call('HINCRBY', KEYS[1], ARGV[1], 1)
"#,
    )
});

impl RedisBus {
    fn names_key(&self) -> String {
        self.key("{accounts}:names")
    }

    fn fields_key(&self) -> String {
        self.key("{accounts}:fields")
    }

    pub(crate) async fn account(&self, login: &str) -> Result<u64, BusError> {
        ACCOUNT
            .key(self.names_key())
            .key(self.key("{accounts}:next"))
            .arg(login)
            .invoke_async(&mut self.conn.clone())
            .await
            .map_err(unavailable)
    }

    pub(crate) async fn create_account(&self, login: &str, fields: &[(&str, &[u8])]) -> Result<Option<u64>, BusError> {
        let mut call = CREATE.key(self.names_key());
        call.key(self.key("{accounts}:next")).key(self.fields_key()).arg(login);
        for (name, value) in fields {
            call.arg(*name).arg(*value);
        }
        let id: u64 = call.invoke_async(&mut self.conn.clone()).await.map_err(unavailable)?;
        Ok((id > 0).then_some(id))
    }

    pub(crate) async fn find_account(&self, login: &str) -> Result<Option<u64>, BusError> {
        self.conn.clone().hget(self.names_key(), login).await.map_err(unavailable)
    }

    pub(crate) async fn link_login(&self, id: u64, login: &str, fields: &[(&str, &[u8])]) -> Result<bool, BusError> {
        let mut call = LINK.key(self.names_key());
        call.key(self.fields_key()).arg(login).arg(id);
        for (name, value) in fields {
            call.arg(*name).arg(*value);
        }
        let linked: u64 = call.invoke_async(&mut self.conn.clone()).await.map_err(unavailable)?;
        Ok(linked == 1)
    }

    pub(crate) async fn account_fields(&self, id: u64, names: &[&str]) -> Result<Vec<Option<Vec<u8>>>, BusError> {
        if names.is_empty() {
            return Ok(vec![]);
        }
        let fields: Vec<String> = names.iter().map(|n| format!("{id}:{n}")).collect();
        let mut cmd = redis::cmd("HMGET");
        cmd.arg(self.fields_key()).arg(&fields);
        cmd.query_async(&mut self.conn.clone()).await.map_err(unavailable)
    }

    pub(crate) async fn bump_account_field(
        &self,
        id: u64,
        name: &str,
        from: u64,
        set: &[(&str, &[u8])],
    ) -> Result<Option<u64>, BusError> {
        let mut call = BUMP.key(self.fields_key());
        call.arg(format!("{id}:{name}")).arg(from);
        for (field, value) in set {
            call.arg(format!("{id}:{field}")).arg(*value);
        }
        let now: i64 = call.invoke_async(&mut self.conn.clone()).await.map_err(unavailable)?;
        Ok(u64::try_from(now).ok())
    }

    pub(crate) async fn accounts_made(&self) -> Result<u64, BusError> {
        let made: Option<u64> = self.conn.clone().get(self.key("{accounts}:next")).await.map_err(unavailable)?;
        Ok(made.unwrap_or(0))
    }
}
