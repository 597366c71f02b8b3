//! Accounts: which player a login names, and a few fields per account.
//!
//! A *login* is whatever a player is known by to the host that let them in — the host
//! chooses the form (`user:<name>`, `device:<id>`); the bus only keeps each login pointing
//! at one account, for good. An account's id is its player's id, handed out in order from
//! one counter ([`Bus::accounts_made`] is the last given), so a player id no account has
//! is told from one at a glance. Fields are opaque bytes (a password hash, a display name,
//! a token generation): the bus does not judge them.

use crate::{Bus, BusError};

impl Bus {
    /// The account of `login`, making one on first use (the name-only login of `warren
    /// dev`; for accounts with secrets, see [`Bus::create_account`]).
    pub async fn account(&self, login: &str) -> Result<u64, BusError> {
        match self {
            Bus::Embedded(b) => Ok(b.account(login)),
            Bus::Redis(b) => b.account(login).await,
        }
    }

    /// Makes an account for `login` with `fields`, all in one step: its id, or `None` if
    /// the login is taken (by another account or by a racing call).
    pub async fn create_account(&self, login: &str, fields: &[(&str, &[u8])]) -> Result<Option<u64>, BusError> {
        match self {
            Bus::Embedded(b) => Ok(b.create_account(login, fields)),
            Bus::Redis(b) => b.create_account(login, fields).await,
        }
    }

    /// The account `login` names, if any.
    pub async fn find_account(&self, login: &str) -> Result<Option<u64>, BusError> {
        match self {
            Bus::Embedded(b) => Ok(b.find_account(login)),
            Bus::Redis(b) => b.find_account(login).await,
        }
    }

    /// Gives account `id` one more login, setting `fields` in the same step: `false`, and
    /// nothing set, if the login names another account already (naming `id` already is
    /// no error: the fields are set).
    pub async fn link_login(&self, id: u64, login: &str, fields: &[(&str, &[u8])]) -> Result<bool, BusError> {
        match self {
            Bus::Embedded(b) => Ok(b.link_login(id, login, fields)),
            Bus::Redis(b) => b.link_login(id, login, fields).await,
        }
    }

    /// The named fields of account `id`, in the order asked (`None` for one not set).
    pub async fn account_fields(&self, id: u64, names: &[&str]) -> Result<Vec<Option<Vec<u8>>>, BusError> {
        match self {
            Bus::Embedded(b) => Ok(b.account_fields(id, names)),
            Bus::Redis(b) => b.account_fields(id, names).await,
        }
    }

    /// Adds one to the numeric field `name` of account `id` (0 when not set) and sets the
    /// fields `set`, in one step, if `name` still holds `from`: the new value, or `None` if
    /// it moved meanwhile and nothing was changed (a password changed with the token
    /// generation that revokes the tokens made before — unless another revocation came
    /// first).
    pub async fn bump_account_field(
        &self,
        id: u64,
        name: &str,
        from: u64,
        set: &[(&str, &[u8])],
    ) -> Result<Option<u64>, BusError> {
        match self {
            Bus::Embedded(b) => Ok(b.bump_account_field(id, name, from, set)),
            Bus::Redis(b) => b.bump_account_field(id, name, from, set).await,
        }
    }

    /// The last account id handed out (0 before the first): every player id from 1 to it
    /// is an account's.
    pub async fn accounts_made(&self) -> Result<u64, BusError> {
        match self {
            Bus::Embedded(b) => Ok(b.accounts_made()),
            Bus::Redis(b) => b.accounts_made().await,
        }
    }
}
