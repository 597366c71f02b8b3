//! What players are called and what they show each other: usernames normalized so that
//! one person's name is one account (`CaseMan` and `caseman` are one name; a look-alike
//! in another script is refused), and text cleaned of the characters that make one thing
//! look like another (control characters, bidirectional overrides).

use unicode_normalization::UnicodeNormalization;
use unicode_security::{GeneralSecurityProfile, MixedScript, skeleton};

/// Longest username, in characters.
pub const MAX_USERNAME: usize = 32;

/// A username as a player typed it, checked: how it is shown, and the key that tells it
/// from every other (two names with one key are one name).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Username {
    /// NFKC-normalized, as shown to other players.
    pub shown: String,
    /// Case-folded and reduced to its look-alike skeleton (Unicode TR39): `CaseMan`,
    /// `caseman` and `cаseman` with a Cyrillic `а` have one key.
    pub key: String,
}

/// Checks a username: 1 to [`MAX_USERNAME`] letters, digits, `_` or `-`, all of one
/// script (digits and `_`/`-` go with any), no character Unicode marks as unsafe in
/// identifiers. The error says what is wrong.
pub fn username(typed: &str) -> Result<Username, String> {
    let shown: String = typed.trim().nfkc().collect();
    let count = shown.chars().count();
    if count == 0 || count > MAX_USERNAME {
        return Err(format!("a username is 1 to {MAX_USERNAME} letters, digits, _ or -"));
    }
    if !shown.chars().all(|c| c.is_alphanumeric() || c == '_' || c == '-') {
        return Err(format!("a username is 1 to {MAX_USERNAME} letters, digits, _ or -"));
    }
    if !shown.chars().all(|c| c.identifier_allowed()) {
        return Err("that username has characters that are not allowed in names".into());
    }
    if !shown.is_single_script() {
        return Err("a username is written in one script (it mixes letters that look alike)".into());
    }
    let folded: String = shown.to_lowercase().nfkc().collect();
    let key: String = skeleton(&folded).collect::<String>().to_lowercase();
    Ok(Username { shown, key })
}

/// Whether `c` may reach another player's screen: not a control character (a newline and
/// a tab are kept), not a character that reorders or hides text (bidirectional embeddings,
/// overrides and isolates, and the invisible marks beside them).
fn shown_safely(c: char) -> bool {
    if c == '\n' || c == '\t' {
        return true;
    }
    !(c.is_control()
        || matches!(c, '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}' | '\u{200E}' | '\u{200F}' | '\u{061C}')
        || matches!(c, '\u{200B}'..='\u{200D}' | '\u{2060}' | '\u{FEFF}'))
}

/// Whether `text` needs [`clean`]ing (the fast check for text that is almost always clean).
pub fn is_clean(text: &str) -> bool {
    text.chars().all(shown_safely)
}

/// `text` without the characters [`shown_safely`] refuses.
pub fn clean(text: &str) -> String {
    text.chars().filter(|c| shown_safely(*c)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_name_in_any_case_or_width_is_one_key() {
        let a = username("CaseMan").unwrap();
        assert_eq!(a.shown, "CaseMan");
        assert_eq!(username("caseman").unwrap().key, a.key);
        assert_eq!(username(" CASEMAN ").unwrap().key, a.key);
        // Full-width letters are the same letters (NFKC).
        assert_eq!(username("ＣａｓｅＭａｎ").unwrap().key, a.key);
    }

    #[test]
    fn look_alikes_in_other_scripts_are_refused_or_taken() {
        // A Cyrillic `а` among Latin letters.
        let mixed = username("c\u{0430}seman").unwrap_err();
        assert!(mixed.contains("one script"), "{mixed}");
        // All Cyrillic letters that look Latin: one script, but the same key as the Latin name.
        let latin = username("ceo").unwrap();
        let cyrillic = username("\u{0441}\u{0435}\u{043E}").unwrap();
        assert_ne!(latin.shown, cyrillic.shown);
        assert_eq!(latin.key, cyrillic.key, "a look-alike is the name taken");
        // Other scripts' own names are fine, and apart from Latin ones.
        assert!(username("Алексей").is_ok());
        assert!(username("山田").is_ok());
    }

    #[test]
    fn names_that_are_not_names_are_refused() {
        for bad in ["", "   ", "a b", "ann!", "x\u{202E}y", &"n".repeat(MAX_USERNAME + 1)] {
            assert!(username(bad).is_err(), "{bad:?} taken");
        }
        assert!(username("ann_2-b").is_ok());
    }

    #[test]
    fn text_loses_controls_and_direction_overrides() {
        assert!(is_clean("hello, world\nsee you"));
        let sneaky = "gg \u{202E}txt.exe\u{202C} \u{0007}bell \u{2067}x\u{2069}";
        assert!(!is_clean(sneaky));
        assert_eq!(clean(sneaky), "gg txt.exe bell x");
    }
}
