//! The user directory: the article's single demo user, checked in constant time.

use subtle::ConstantTimeEq;

/// A stored user account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Account {
    /// User id.
    pub id: &'static str,
    /// Login name.
    pub user_name: &'static str,
    password: &'static str,
}

/// The demo account of the article: `thangn` / `123456`, id `1`.
pub const DEMO: Account = Account {
    id: "1",
    user_name: "thangn",
    password: "123456",
};

/// The account matching both credentials. Name and password are both compared in constant
/// time (per length) and combined without short-circuit.
pub fn verify(user_name: &str, password: &str) -> Option<&'static Account> {
    let name_matches = DEMO.user_name.as_bytes().ct_eq(user_name.as_bytes());
    let password_matches = DEMO.password.as_bytes().ct_eq(password.as_bytes());
    bool::from(name_matches & password_matches).then_some(&DEMO)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;

    #[test]
    fn demo_credentials_match() {
        assert_eq!(verify("thangn", "123456"), Some(&DEMO));
    }

    #[rstest]
    #[case("thangn", "1234567")]
    #[case("thangn", "12345")]
    #[case("thangn", "")]
    #[case("Thangn", "123456")]
    #[case("", "")]
    #[case("admin", "123456")]
    fn anything_else_does_not(#[case] user_name: &str, #[case] password: &str) {
        assert_eq!(verify(user_name, password), None);
    }
}
