//! Accounts on every backend: logins point at one account for good, ids come in order
//! from one counter, fields are set with the login in one step.

use super::*;

#[tokio::test]
async fn a_login_names_one_account_and_ids_count_up() {
    for (name, one, two) in twin_backends().await {
        assert_eq!(one.accounts_made().await.unwrap(), 0, "{name}: none yet");
        assert_eq!(one.find_account("user:ann").await.unwrap(), None, "{name}");

        let ann = one.create_account("user:ann", &[("name", b"Ann"), ("pw", b"hash")]).await.unwrap();
        assert_eq!(ann, Some(1), "{name}");
        assert_eq!(two.create_account("user:ann", &[("name", b"Other")]).await.unwrap(), None, "{name}: taken");
        assert_eq!(two.find_account("user:ann").await.unwrap(), Some(1), "{name}");
        let fields = two.account_fields(1, &["name", "pw", "missing"]).await.unwrap();
        assert_eq!(fields, vec![Some(b"Ann".to_vec()), Some(b"hash".to_vec()), None], "{name}: the first one's fields");

        // The name-only login makes an account once, from the same counter.
        assert_eq!(two.account("user:bob").await.unwrap(), 2, "{name}");
        assert_eq!(one.account("user:bob").await.unwrap(), 2, "{name}: the same account again");
        assert_eq!(one.accounts_made().await.unwrap(), 2, "{name}");

        // A second login for an account, with fields set together; not one already taken.
        let dev = one.create_account("device:abc", &[]).await.unwrap().expect("a device account");
        assert_eq!(dev, 3, "{name}");
        assert!(!one.link_login(dev, "user:ann", &[("pw", b"mine")]).await.unwrap(), "{name}: ann is account 1's");
        assert_eq!(one.account_fields(1, &["pw"]).await.unwrap(), vec![Some(b"hash".to_vec())], "{name}: untouched");
        assert!(one.link_login(dev, "user:cy", &[("name", b"Cy"), ("pw", b"h2")]).await.unwrap(), "{name}");
        assert_eq!(two.find_account("user:cy").await.unwrap(), Some(3), "{name}");
        assert_eq!(two.find_account("device:abc").await.unwrap(), Some(3), "{name}: both logins");
        assert_eq!(two.account_fields(3, &["name"]).await.unwrap(), vec![Some(b"Cy".to_vec())], "{name}");

        // Counters per account (token generations).
        assert_eq!(one.bump_account_field(3, "gen", 0, &[]).await.unwrap(), Some(1), "{name}");
        assert_eq!(two.bump_account_field(3, "gen", 1, &[]).await.unwrap(), Some(2), "{name}");
        assert_eq!(one.account_fields(3, &["gen"]).await.unwrap(), vec![Some(b"2".to_vec())], "{name}");
        // Only from the value the caller read: a bump that lost a race changes nothing.
        let lost = two.bump_account_field(3, "gen", 1, &[("pw", b"late")]).await.unwrap();
        assert_eq!(lost, None, "{name}");
        assert_eq!(one.account_fields(3, &["pw"]).await.unwrap(), vec![Some(b"h2".to_vec())], "{name}: untouched");
        // ... with fields set in the same step (a new password with the new generation).
        let bumped = one.bump_account_field(3, "gen", 2, &[("pw", b"h3"), ("x", b"1")]).await.unwrap();
        assert_eq!(bumped, Some(3), "{name}");
        let fields = two.account_fields(3, &["gen", "pw", "x", "name"]).await.unwrap();
        let want = [Some(b"3".to_vec()), Some(b"h3".to_vec()), Some(b"1".to_vec()), Some(b"Cy".to_vec())];
        assert_eq!(fields, want, "{name}");
        assert_eq!(one.account_fields(1, &["pw"]).await.unwrap(), vec![Some(b"hash".to_vec())], "{name}: others kept");
    }
}

#[tokio::test]
async fn racing_registrations_of_one_login_make_one_account() {
    for (name, one, two) in twin_backends().await {
        let mut racing = tokio::task::JoinSet::new();
        for bus in [one.clone(), two.clone()] {
            for i in 0..20u8 {
                let bus = bus.clone();
                racing.spawn(async move { bus.create_account("user:zed", &[("n", &[i])]).await });
            }
        }
        let mut made = vec![];
        while let Some(r) = racing.join_next().await {
            if let Some(id) = r.unwrap().unwrap_or_else(|e| panic!("{name}: {e}")) {
                made.push(id);
            }
        }
        assert_eq!(made.len(), 1, "{name}: one registration wins");
        assert_eq!(one.accounts_made().await.unwrap(), 1, "{name}: no id spent on a loser");
    }
}
