//! The embedded bus's accounts (see `crate::accounts`).

use super::EmbeddedBus;

impl EmbeddedBus {
    pub(crate) fn account(&self, login: &str) -> u64 {
        let mut center = self.lock();
        if let Some(id) = center.accounts.get(login) {
            return *id;
        }
        center.accounts_made += 1;
        let id = center.accounts_made;
        center.accounts.insert(login.to_owned(), id);
        id
    }

    pub(crate) fn create_account(&self, login: &str, fields: &[(&str, &[u8])]) -> Option<u64> {
        let mut center = self.lock();
        if center.accounts.contains_key(login) {
            return None;
        }
        center.accounts_made += 1;
        let id = center.accounts_made;
        center.accounts.insert(login.to_owned(), id);
        let record = center.account_fields.entry(id).or_default();
        for (name, value) in fields {
            record.insert((*name).to_owned(), value.to_vec());
        }
        Some(id)
    }

    pub(crate) fn find_account(&self, login: &str) -> Option<u64> {
        self.lock().accounts.get(login).copied()
    }

    pub(crate) fn link_login(&self, id: u64, login: &str, fields: &[(&str, &[u8])]) -> bool {
        let mut center = self.lock();
        match center.accounts.get(login) {
            Some(other) if *other != id => return false,
            _ => {}
        }
        center.accounts.insert(login.to_owned(), id);
        let record = center.account_fields.entry(id).or_default();
        for (name, value) in fields {
            record.insert((*name).to_owned(), value.to_vec());
        }
        true
    }

    pub(crate) fn account_fields(&self, id: u64, names: &[&str]) -> Vec<Option<Vec<u8>>> {
        let center = self.lock();
        let record = center.account_fields.get(&id);
        names.iter().map(|n| record.and_then(|r| r.get(*n).cloned())).collect()
    }

    pub(crate) fn bump_account_field(&self, id: u64, name: &str, from: u64, set: &[(&str, &[u8])]) -> Option<u64> {
        let mut center = self.lock();
        let record = center.account_fields.entry(id).or_default();
        let read = |v: &Vec<u8>| std::str::from_utf8(v).ok().and_then(|s| s.parse::<u64>().ok()).unwrap_or(0);
        if record.get(name).map_or(0, read) != from {
            return None;
        }
        for (field, value) in set {
            record.insert((*field).to_owned(), value.to_vec());
        }
        let now = from + 1;
        record.insert(name.to_owned(), now.to_string().into_bytes());
        Some(now)
    }

    pub(crate) fn accounts_made(&self) -> u64 {
        self.lock().accounts_made
    }
}
