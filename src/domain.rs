//! Domain types: "parse, don't validate". Each newtype can only hold a value that is safe to
//! send to Authy (and, for ids, safe to put into an Authy URL path), and each type that holds
//! personal data prints itself masked in `Debug`, so it cannot leak into a log by accident.
//!
//! Each type has its own parse error, which knows nothing of HTTP: `crate::error` maps them
//! to the B2C error contract, and the Authy client to a malformed Authy answer. This module
//! imports nothing else of the crate.

use std::fmt;
use std::str::FromStr;

/// [`PhoneNumber::parse`] refused its input; the reason is for logs and developers, never
/// for the user.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not a valid phone number: {reason}")]
pub struct InvalidPhoneNumber {
    /// Why, e.g. "must start with + and the country code".
    pub reason: String,
}

/// [`Email::parse`] refused its input.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("not an email address")]
pub struct InvalidEmail;

/// [`AuthyId::parse`] refused its input.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("not an authy id (1 to 20 digits without a leading zero)")]
pub struct InvalidAuthyId;

/// [`ApprovalRequestId::parse`] refused its input.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("not an approval request id (a hyphenated UUID)")]
pub struct InvalidApprovalRequestId;

/// A valid international phone number, split the way Authy's `users/new` wants it.
///
/// Parsed with the `phonenumber` crate (a port of Google's libphonenumber and its metadata),
/// never with a hand regex. Input must start with `+` and the country code; spaces, dashes,
/// dots and parentheses are allowed between digits (`+1 (425) 555-0100`). Anything else
/// (letters, newlines, a missing `+`) is refused before parsing, because libphonenumber is
/// lenient and would extract a number from `abc+15551234567`.
#[derive(Clone, PartialEq, Eq)]
pub struct PhoneNumber {
    /// E.164 country calling code, e.g. `1`, `44`, `39`.
    country_code: u16,
    /// National significant number, digits only, with the leading zero Italy keeps
    /// (`0612345678`) and without a trunk prefix (`+44 07911…` → `7911…`).
    cellphone: String,
}

impl PhoneNumber {
    /// Parses `input` (see the type's docs for the accepted form).
    ///
    /// # Errors
    /// [`InvalidPhoneNumber`] with the reason.
    pub fn parse(input: &str) -> Result<Self, InvalidPhoneNumber> {
        let invalid = |reason: &str| InvalidPhoneNumber {
            reason: reason.to_owned(),
        };
        let rest = input
            .strip_prefix('+')
            .ok_or_else(|| invalid("must start with + and the country code"))?;
        if !rest
            .chars()
            .all(|c| c.is_ascii_digit() || matches!(c, ' ' | '-' | '.' | '(' | ')'))
        {
            return Err(invalid(
                "only digits, spaces, dashes, dots and parentheses may follow the +",
            ));
        }
        let digits = rest.chars().filter(char::is_ascii_digit).count();
        if !(4..=17).contains(&digits) {
            return Err(invalid("wrong number of digits"));
        }
        // Separators can fall anywhere, even inside the country code ("+1425-555-0100");
        // libphonenumber reads the country code from the digits alone.
        let normalized: String = std::iter::once('+')
            .chain(rest.chars().filter(char::is_ascii_digit))
            .collect();
        let number = phonenumber::parse(None, &normalized).map_err(|e| invalid(&e.to_string()))?;
        if !phonenumber::is_valid(&number) {
            return Err(invalid("not a valid number for its country"));
        }
        Ok(Self {
            country_code: number.code().value(),
            cellphone: number.national().to_string(),
        })
    }

    /// Authy's `user[country_code]`: the calling code without `+`, e.g. `"44"`.
    pub fn country_code(&self) -> String {
        self.country_code.to_string()
    }

    /// Authy's `user[cellphone]`: the national significant number, digits only.
    pub fn cellphone(&self) -> &str {
        &self.cellphone
    }

    /// The number for logs: `+`, country code, six stars, the last four digits
    /// (`+1******0100`).
    pub fn masked(&self) -> String {
        let last4 = &self.cellphone[self.cellphone.len().saturating_sub(4)..];
        format!("+{}******{}", self.country_code, last4)
    }

    /// Warms up the phone-number metadata (parsed lazily on first use), so that the first
    /// `Register` call after a cold start does not pay for it.
    pub fn preload_metadata() {
        // The result is irrelevant: parsing any number loads the whole database.
        let _ = phonenumber::parse(None, "+14255550100");
    }
}

impl fmt::Debug for PhoneNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.masked())
    }
}

/// An email address, checked with the `email_address` crate (RFC 5322 addr-spec).
#[derive(Clone, PartialEq, Eq)]
pub struct Email(email_address::EmailAddress);

impl Email {
    /// Parses `input`.
    ///
    /// # Errors
    /// [`InvalidEmail`].
    pub fn parse(input: &str) -> Result<Self, InvalidEmail> {
        // Display names ("Ann <a@b.c>") are valid RFC 5322 but never a sign-in name.
        if input.contains(['<', '>']) || input.chars().any(char::is_whitespace) {
            return Err(InvalidEmail);
        }
        let address = email_address::EmailAddress::from_str(input).map_err(|_| InvalidEmail)?;
        // RFC 5322 also allows domains no mailbox a user signs in with has: address literals
        // (`a@[127.0.0.1]`), single labels (`a@localhost`), `?` and `#`. Require a DNS name.
        let domain = address.domain();
        let hostname = domain.contains('.')
            && domain.split('.').all(|label| {
                !label.is_empty()
                    && !label.starts_with('-')
                    && !label.ends_with('-')
                    && label.chars().all(|c| c.is_alphanumeric() || c == '-')
            });
        if hostname {
            Ok(Self(address))
        } else {
            Err(InvalidEmail)
        }
    }

    /// The address as given, for Authy (`user[email]`, push details). Never log it.
    pub fn as_str(&self) -> &str {
        self.0.as_str()
    }

    /// The address for logs: first character of the local part, three stars, the domain
    /// (`a***@example.com`); a local part of one or two characters is not shown at all
    /// (`***@example.com`).
    pub fn masked(&self) -> String {
        let local = self.0.local_part();
        let first = match local.chars().count() {
            0..=2 => String::new(),
            _ => local.chars().take(1).collect(),
        };
        format!("{first}***@{}", self.0.domain())
    }
}

impl fmt::Debug for Email {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.masked())
    }
}

/// An Authy user id: 1 to 20 ASCII digits, no leading zero. Safe in a URL path.
#[derive(Clone, PartialEq, Eq, Hash, Debug)]
pub struct AuthyId(String);

impl AuthyId {
    /// Longest authy id accepted, in digits (u64 has 20).
    pub const MAX_DIGITS: usize = 20;

    /// Parses `input`.
    ///
    /// # Errors
    /// [`InvalidAuthyId`].
    pub fn parse(input: &str) -> Result<Self, InvalidAuthyId> {
        let canonical = !input.is_empty()
            && input.len() <= Self::MAX_DIGITS
            && input.bytes().all(|b| b.is_ascii_digit())
            && !input.starts_with('0');
        if canonical {
            Ok(Self(input.to_owned()))
        } else {
            Err(InvalidAuthyId)
        }
    }

    /// The digits.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for AuthyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The uuid Authy gives an approval request, in canonical hyphenated lower-case form
/// (`8-4-4-4-12` hex digits). Safe in a URL path.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct ApprovalRequestId(uuid::Uuid);

impl ApprovalRequestId {
    /// Parses the hyphenated form (either case). Braced, URN and simple forms are refused so
    /// that exactly one spelling exists for each id.
    ///
    /// # Errors
    /// [`InvalidApprovalRequestId`].
    pub fn parse(input: &str) -> Result<Self, InvalidApprovalRequestId> {
        if input.len() != 36 {
            return Err(InvalidApprovalRequestId);
        }
        uuid::Uuid::try_parse(input)
            .map(Self)
            .map_err(|_| InvalidApprovalRequestId)
    }
}

impl fmt::Display for ApprovalRequestId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0.hyphenated(), f)
    }
}

/// B2C's correlation id (the `{Context:CorrelationId}` claim resolver: a GUID), carried into
/// logs and Authy's `hidden_details`. Anything longer than 128 characters or outside
/// `[A-Za-z0-9._:-]` is dropped rather than refused: it only serves diagnostics, and a
/// sign-in must not fail over it.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct CorrelationId(String);

impl CorrelationId {
    /// Longest correlation id kept, in characters.
    pub const MAX_LEN: usize = 128;

    /// `Some` when `input` is a plausible correlation id.
    pub fn parse(input: &str) -> Option<Self> {
        let ok = input.len() <= Self::MAX_LEN
            && input
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b':'));
        ok.then(|| Self(input.to_owned()))
    }

    /// The id.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn phone_table() {
        let ok =
            |s: &str| PhoneNumber::parse(s).map(|p| (p.country_code(), p.cellphone().to_owned()));
        assert_eq!(
            ok("+1 (425) 555-0100").unwrap(),
            ("1".into(), "4255550100".into())
        );
        assert_eq!(
            ok("+44 20 7946 0958").unwrap(),
            ("44".into(), "2079460958".into())
        );
        assert_eq!(
            ok("+39 06 1234 5678").unwrap(),
            ("39".into(), "0612345678".into())
        );
        assert_eq!(
            ok("+4407911123456").unwrap(),
            ("44".into(), "7911123456".into())
        );
        assert_eq!(
            ok("+1425-555-0100").unwrap(),
            ("1".into(), "4255550100".into())
        );
        assert_eq!(
            ok("+3906(1234)5678").unwrap(),
            ("39".into(), "0612345678".into())
        );
        for bad in [
            "abc+15551234567",
            "+15551234567\n",
            "+12",
            "425 555 0100",
            "",
            "+",
            "+1 425 555 0100 ext 5",
        ] {
            assert!(
                matches!(PhoneNumber::parse(bad), Err(InvalidPhoneNumber { .. })),
                "{bad:?} must be refused"
            );
        }
    }

    #[test]
    fn masks_personal_data() {
        let phone = PhoneNumber::parse("+1 425 555 0100").unwrap();
        assert_eq!(format!("{phone:?}"), "+1******0100");
        let email = Email::parse("alice@example.com").unwrap();
        assert_eq!(format!("{email:?}"), "a***@example.com");
        assert_eq!(Email::parse("a@b.co").unwrap().masked(), "***@b.co");
        for not_a_mailbox in [
            "a@localhost",
            "a@[127.0.0.1]",
            "a@example.com?x=1",
            "a@example.com#x",
            "a@-x.com",
        ] {
            assert!(Email::parse(not_a_mailbox).is_err(), "{not_a_mailbox}");
        }
        assert!(Email::parse("anna@bücher.example").is_ok());
    }

    #[test]
    fn ids_cannot_change_an_url_path() {
        for bad in [
            "",
            "0",
            "007",
            "12/34",
            "..",
            "1?a=b",
            "1#x",
            " 12",
            "123456789012345678901",
            "١٢٣",
        ] {
            assert!(AuthyId::parse(bad).is_err(), "{bad:?}");
        }
        assert_eq!(AuthyId::parse("12345").unwrap().as_str(), "12345");
        for bad in [
            "",
            "{c31a9c70-4e50-0132-2bd7-0a6d6a7e0c38}",
            "c31a9c704e5001322bd70a6d6a7e0c38",
            "../../../users/new/../../../../../..",
            "c31a9c70-4e50-0132-2bd7-0a6d6a7e0c3/",
        ] {
            assert!(ApprovalRequestId::parse(bad).is_err(), "{bad:?}");
        }
        let id = ApprovalRequestId::parse("C31A9C70-4E50-0132-2BD7-0A6D6A7E0C38").unwrap();
        assert_eq!(id.to_string(), "c31a9c70-4e50-0132-2bd7-0a6d6a7e0c38");
    }
}
