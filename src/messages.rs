//! The texts the API shows users, in the user's language: every `userMessage` and the push's
//! title and detail names.
//!
//! The texts live in one table a translator edits, `src/messages.toml` (one section per
//! language, comments giving each text's context), embedded with `include_str!` and parsed once.
//! TOML rather than JSON or a Rust table: it carries comments next to the texts, needs no escape
//! for apostrophes and typographic quotes (`’`, `« »`, `„ “`, `「 」`), and a slip (a broken quote,
//! a key given twice) is a parse error with its line, which `cargo test --lib messages` and the
//! handler's start ([`check`]) report — a broken table never answers a user.
//!
//! The language is the `uiLocale` input claim (B2C's `{Culture:RFC5646}`: `es`, `es-ES`,
//! `fr-CA`, …): its primary subtag, any case ([`Language::from_ui_locale`]); anything else is
//! English. Placeholders are typed: `{code}` takes a [`SignInCode`], `{minutes}` a
//! [`Duration`] (whole minutes, rounded up, at least one), so no other value can reach a text.

use std::cell::Cell;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::LazyLock;
use std::time::Duration;

use crate::push_limits::SignInCode;

/// The table, as a translator edits it.
pub const MESSAGES_TOML: &str = include_str!("messages.toml");

/// What the API puts in front of every `ApprovalPending` `userMessage`, in every language, and
/// of no other text: U+23F3 HOURGLASS WITH FLOWING SAND ("hourglass not done"), then a space.
/// The wait page's script (`policies/templates/authy-wait.html`, `PENDING_MARKER`) selects
/// Continue after a message that starts with it, whatever the language; B2C shows only
/// `userMessage`, so the marker has to be in the text, and an hourglass reads as "still
/// waiting" to a user too (screen readers say "hourglass not done").
pub const PENDING_MARKER: &str = "\u{23F3} ";

tokio::task_local! {
    /// The language of the invocation being served: English until the functions' body
    /// extractor ([`crate::functions::ClaimsJson`]) reads `uiLocale`; error bodies use it.
    /// Set up per invocation by the invocation middleware, like [`crate::error::INVOCATION_ID`].
    pub static LANGUAGE: Cell<Language>;
}

/// The language of the invocation being served ([`LANGUAGE`]), English outside one.
pub fn current_language() -> Language {
    LANGUAGE.try_with(Cell::get).unwrap_or_default()
}

/// Sets the language of the invocation being served; nothing outside one.
pub fn set_current_language(language: Language) {
    let _ = LANGUAGE.try_with(|cell| cell.set(language));
}

/// A language the table has: a section of `messages.toml`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub enum Language {
    /// English, the fallback.
    #[default]
    En,
    /// Spanish.
    Es,
    /// French.
    Fr,
    /// German.
    De,
    /// Japanese.
    Ja,
}

impl Language {
    /// Every language, English first.
    pub const ALL: [Language; 5] = [Self::En, Self::Es, Self::Fr, Self::De, Self::Ja];

    /// The primary language subtag (RFC 5646), lowercase: the section name in the table.
    pub fn tag(self) -> &'static str {
        match self {
            Self::En => "en",
            Self::Es => "es",
            Self::Fr => "fr",
            Self::De => "de",
            Self::Ja => "ja",
        }
    }

    /// The language of a `uiLocale` claim (an RFC 5646 tag such as `es`, `es-ES`, `fr-CA`,
    /// `de`, `ja`, `en-US`; `_` accepted as separator too): its primary subtag, any case.
    /// English when absent or not one of [`Language::ALL`].
    pub fn from_ui_locale(ui_locale: Option<&str>) -> Self {
        let Some(primary) = ui_locale.and_then(|tag| tag.trim().split(['-', '_']).next()) else {
            return Self::En;
        };
        Self::ALL
            .into_iter()
            .find(|language| language.tag().eq_ignore_ascii_case(primary))
            .unwrap_or(Self::En)
    }
}

/// One text of the table, with the typed values its placeholders take.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Message<'a> {
    /// A fault the user cannot act on (configuration, bug, protocol).
    SomethingWentWrong,
    /// An approval request that cannot be used any more.
    RequestNoLongerValid,
    /// `InvalidPhoneNumber`.
    InvalidPhoneNumber,
    /// `InvalidEmail`.
    InvalidEmail,
    /// `ApprovalPending` without a known code ([`PENDING_MARKER`] is put in front).
    ApprovalPending,
    /// `ApprovalPending` quoting the code ([`PENDING_MARKER`] is put in front).
    ApprovalPendingWithCode(&'a SignInCode),
    /// `ApprovalDenied` when the pause could not be recorded.
    ApprovalDenied,
    /// `ApprovalDenied` with the pause.
    ApprovalDeniedPaused(Duration),
    /// `ApprovalExpired`.
    ApprovalExpired,
    /// `PushLimitReached`, with the time until a push is possible again.
    PushLimitReached(Duration),
    /// `PushesPaused`, with the time until the pause ends.
    PushesPaused(Duration),
    /// `PushRequestInProgress`.
    PushRequestInProgress,
    /// `PushLimitsUnavailable`.
    PushLimitsUnavailable,
    /// `AuthyUserNotFound`.
    AuthyUserNotFound,
    /// `AuthyThrottled`.
    AuthyThrottled,
    /// `AuthyUnavailable`.
    AuthyUnavailable,
    /// `AuthyRejected`.
    AuthyRejected,
    /// The push's title when `AUTHY_APPROVAL_MESSAGE` is not set.
    PushMessage,
    /// The push detail name of the sign-in code.
    PushDetailSignInCode,
    /// The push detail name of the account (email).
    PushDetailAccount,
    /// The push detail name of the IP address.
    PushDetailIpAddress,
    /// The push detail name of the application.
    PushDetailApplication,
}

/// Every key of the table with its placeholders: what each language's section must have,
/// exactly.
pub const KEYS: [(&str, &[&str]); 24] = [
    ("something_went_wrong", &[]),
    ("request_no_longer_valid", &[]),
    ("invalid_phone_number", &[]),
    ("invalid_email", &[]),
    ("approval_pending", &[]),
    ("approval_pending_with_code", &["code"]),
    ("approval_denied", &[]),
    ("approval_denied_paused", &["minutes"]),
    ("approval_expired", &[]),
    ("push_limit_reached", &["minutes"]),
    ("pushes_paused", &["minutes"]),
    ("push_request_in_progress", &[]),
    ("push_limits_unavailable", &[]),
    ("authy_user_not_found", &[]),
    ("authy_throttled", &[]),
    ("authy_unavailable", &[]),
    ("authy_rejected", &[]),
    ("minutes_one", &["count"]),
    ("minutes_other", &["count"]),
    ("push_message", &[]),
    ("push_detail_sign_in_code", &[]),
    ("push_detail_account", &[]),
    ("push_detail_ip_address", &[]),
    ("push_detail_application", &[]),
];

/// Longest push detail name, in bytes of UTF-8: Authy's limit of 20 characters for `details`
/// keys (as `functions::approval_request` keeps them), counted the strict way, since whether
/// Authy counts characters or bytes is not documented.
pub const MAX_DETAIL_NAME_BYTES: usize = 20;

/// Said when the table itself is broken (which [`check`] refuses at start): English, fixed.
const TABLE_BROKEN: &str = "Something went wrong on our side. Please try again later.";

impl Message<'_> {
    /// The key of the text in the table.
    pub fn key(&self) -> &'static str {
        match self {
            Self::SomethingWentWrong => "something_went_wrong",
            Self::RequestNoLongerValid => "request_no_longer_valid",
            Self::InvalidPhoneNumber => "invalid_phone_number",
            Self::InvalidEmail => "invalid_email",
            Self::ApprovalPending => "approval_pending",
            Self::ApprovalPendingWithCode(_) => "approval_pending_with_code",
            Self::ApprovalDenied => "approval_denied",
            Self::ApprovalDeniedPaused(_) => "approval_denied_paused",
            Self::ApprovalExpired => "approval_expired",
            Self::PushLimitReached(_) => "push_limit_reached",
            Self::PushesPaused(_) => "pushes_paused",
            Self::PushRequestInProgress => "push_request_in_progress",
            Self::PushLimitsUnavailable => "push_limits_unavailable",
            Self::AuthyUserNotFound => "authy_user_not_found",
            Self::AuthyThrottled => "authy_throttled",
            Self::AuthyUnavailable => "authy_unavailable",
            Self::AuthyRejected => "authy_rejected",
            Self::PushMessage => "push_message",
            Self::PushDetailSignInCode => "push_detail_sign_in_code",
            Self::PushDetailAccount => "push_detail_account",
            Self::PushDetailIpAddress => "push_detail_ip_address",
            Self::PushDetailApplication => "push_detail_application",
        }
    }

    /// The text in `language`, placeholders filled; pending messages start with
    /// [`PENDING_MARKER`].
    pub fn text(&self, language: Language) -> String {
        let Ok(table) = &*TABLE else {
            return TABLE_BROKEN.to_owned();
        };
        let template = table.get(language, self.key());
        let text = match self {
            Self::ApprovalPendingWithCode(code) => template.replace("{code}", code.as_str()),
            Self::ApprovalDeniedPaused(d) | Self::PushLimitReached(d) | Self::PushesPaused(d) => {
                template.replace("{minutes}", &table.minutes(language, *d))
            }
            _ => template.to_owned(),
        };
        match self {
            Self::ApprovalPending | Self::ApprovalPendingWithCode(_) => {
                format!("{PENDING_MARKER}{text}")
            }
            _ => text,
        }
    }
}

/// The parsed table: language → key → template.
#[derive(Debug)]
pub struct Table {
    texts: BTreeMap<Language, BTreeMap<String, String>>,
}

static TABLE: LazyLock<Result<Table, String>> = LazyLock::new(|| Table::parse(MESSAGES_TOML));

/// Whether the embedded table is complete and well-formed; the handler refuses to start
/// otherwise.
///
/// # Errors
/// The table's problems, one per line.
pub fn check() -> Result<(), String> {
    TABLE.as_ref().map(|_| ()).map_err(Clone::clone)
}

impl Table {
    /// Parses and checks a table: every language of [`Language::ALL`] has exactly the keys of
    /// [`KEYS`], each a string with exactly its placeholders (no other braces), no text holds
    /// [`PENDING_MARKER`]'s hourglass, and push detail names have at most
    /// [`MAX_DETAIL_NAME_BYTES`] bytes.
    ///
    /// # Errors
    /// Every problem found, one per line (TOML syntax errors with their line and column).
    pub fn parse(toml: &str) -> Result<Self, String> {
        let document = toml_edit::Document::parse(toml).map_err(|e| e.to_string())?;
        let mut problems = Vec::new();
        let mut texts = BTreeMap::new();
        let known: BTreeSet<&str> = Language::ALL.iter().map(|l| l.tag()).collect();
        for (section, _) in document.as_table().iter() {
            if !known.contains(section) {
                problems.push(format!(
                    "[{section}]: not a language of Language::ALL (src/messages.rs)"
                ));
            }
        }
        for language in Language::ALL {
            let tag = language.tag();
            let Some(section) = document.get(tag).and_then(|item| item.as_table()) else {
                problems.push(format!("[{tag}]: missing"));
                continue;
            };
            let mut entries = BTreeMap::new();
            for (key, item) in section.iter() {
                let Some(placeholders) = KEYS.iter().find(|(k, _)| *k == key).map(|(_, p)| *p)
                else {
                    problems.push(format!("[{tag}] {key}: not a key of the API"));
                    continue;
                };
                let Some(text) = item.as_str() else {
                    problems.push(format!("[{tag}] {key}: not a string"));
                    continue;
                };
                match self::placeholders(text) {
                    Ok(found) => {
                        let expected: BTreeSet<&str> = placeholders.iter().copied().collect();
                        if found != expected {
                            problems.push(format!(
                                "[{tag}] {key}: placeholders {found:?}, expected {expected:?}"
                            ));
                        }
                    }
                    Err(e) => problems.push(format!("[{tag}] {key}: {e}")),
                }
                if text.trim().is_empty() {
                    problems.push(format!("[{tag}] {key}: empty"));
                }
                if text.contains(PENDING_MARKER.trim()) {
                    problems.push(format!(
                        "[{tag}] {key}: holds the pending marker {PENDING_MARKER:?}, which the handler adds to pending messages only"
                    ));
                }
                if key.starts_with("push_detail_") && text.len() > MAX_DETAIL_NAME_BYTES {
                    problems.push(format!(
                        "[{tag}] {key}: longer than {MAX_DETAIL_NAME_BYTES} bytes in UTF-8"
                    ));
                }
                entries.insert(key.to_owned(), text.to_owned());
            }
            for (key, _) in KEYS {
                if !entries.contains_key(key) {
                    problems.push(format!("[{tag}] {key}: missing"));
                }
            }
            texts.insert(language, entries);
        }
        if problems.is_empty() {
            Ok(Self { texts })
        } else {
            Err(problems.join("\n"))
        }
    }

    /// The template of `key` in `language` (checked complete by [`Table::parse`]).
    pub fn get(&self, language: Language, key: &str) -> &str {
        self.texts
            .get(&language)
            .and_then(|texts| texts.get(key))
            .map_or(TABLE_BROKEN, String::as_str)
    }

    /// A duration as the user reads it in `language`: whole minutes, rounded up, at least one
    /// (`minutes_one` for 1, `minutes_other` otherwise: enough for these five languages).
    fn minutes(&self, language: Language, duration: Duration) -> String {
        let count = duration.as_secs().div_ceil(60).max(1);
        let key = if count == 1 {
            "minutes_one"
        } else {
            "minutes_other"
        };
        self.get(language, key)
            .replace("{count}", &count.to_string())
    }
}

/// The placeholders of a template: the names in braces.
///
/// # Errors
/// A brace that does not open or close a placeholder of lowercase letters and `_`.
pub fn placeholders(template: &str) -> Result<BTreeSet<&str>, String> {
    let mut found = BTreeSet::new();
    let mut rest = template;
    while let Some(open) = rest.find(['{', '}']) {
        if rest[open..].starts_with('}') {
            return Err("a '}' without '{'".into());
        }
        let after = &rest[open + 1..];
        let close = after
            .find('}')
            .ok_or_else(|| "a '{' without '}'".to_owned())?;
        let name = &after[..close];
        if name.is_empty() || !name.chars().all(|c| c.is_ascii_lowercase() || c == '_') {
            return Err(format!("'{{{name}}}' is not a placeholder"));
        }
        found.insert(name);
        rest = &after[close + 1..];
    }
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_has_every_message_in_every_language_with_the_same_placeholders() {
        check().unwrap();
        let table = Table::parse(MESSAGES_TOML).unwrap();
        for language in Language::ALL {
            for (key, placeholders) in KEYS {
                let text = table.get(language, key);
                let found = super::placeholders(text).unwrap();
                let english = super::placeholders(table.get(Language::En, key)).unwrap();
                assert_eq!(found, english, "[{}] {key}", language.tag());
                assert_eq!(
                    found,
                    placeholders.iter().copied().collect(),
                    "[{}] {key}",
                    language.tag()
                );
            }
        }
    }

    #[test]
    fn every_message_has_a_key_of_the_table() {
        let code = SignInCode::parse("47").unwrap();
        let minute = Duration::from_secs(60);
        let all = [
            Message::SomethingWentWrong,
            Message::RequestNoLongerValid,
            Message::InvalidPhoneNumber,
            Message::InvalidEmail,
            Message::ApprovalPending,
            Message::ApprovalPendingWithCode(&code),
            Message::ApprovalDenied,
            Message::ApprovalDeniedPaused(minute),
            Message::ApprovalExpired,
            Message::PushLimitReached(minute),
            Message::PushesPaused(minute),
            Message::PushRequestInProgress,
            Message::PushLimitsUnavailable,
            Message::AuthyUserNotFound,
            Message::AuthyThrottled,
            Message::AuthyUnavailable,
            Message::AuthyRejected,
            Message::PushMessage,
            Message::PushDetailSignInCode,
            Message::PushDetailAccount,
            Message::PushDetailIpAddress,
            Message::PushDetailApplication,
        ];
        let keys: BTreeSet<&str> = all.iter().map(Message::key).collect();
        assert_eq!(keys.len(), all.len(), "two messages share a key");
        for key in &keys {
            assert!(KEYS.iter().any(|(k, _)| k == key), "{key} is not in KEYS");
        }
        // The rest of KEYS: the duration phrases.
        assert_eq!(KEYS.len(), keys.len() + 2);
    }

    #[test]
    fn a_broken_table_is_refused_with_its_problems() {
        let refused = |mutated: String| {
            assert_ne!(mutated, MESSAGES_TOML, "the mutation must change the table");
            Table::parse(&mutated).unwrap_err()
        };
        // A placeholder renamed in one language.
        let e = refused(MESSAGES_TOML.replacen("código {code}", "código {codigo}", 1));
        assert!(
            e.contains("[es] approval_pending_with_code: placeholders"),
            "{e}"
        );
        // A placeholder dropped.
        let e = refused(MESSAGES_TOML.replacen("dans {minutes}", "dans quelques minutes", 1));
        assert!(e.contains("[fr] push_limit_reached: placeholders"), "{e}");
        // A key missing in one language.
        let e = refused(MESSAGES_TOML.replacen("push_detail_account = \"Konto\"\n", "", 1));
        assert!(e.contains("[de] push_detail_account: missing"), "{e}");
        // A typo in a key.
        let e =
            refused(MESSAGES_TOML.replacen("invalid_email = \"有効", "invalid_mail = \"有効", 1));
        assert!(e.contains("[ja] invalid_mail: not a key"), "{e}");
        assert!(e.contains("[ja] invalid_email: missing"), "{e}");
        // A stray brace, an unescaped quote, the marker, a long detail name.
        let e =
            refused(MESSAGES_TOML.replacen("Try again in {minutes}.", "Try again in {minutes.", 1));
        assert!(
            e.contains("[en] push_limit_reached: a '{' without '}'"),
            "{e}"
        );
        let e = refused(MESSAGES_TOML.replacen("\"Sign-in request\"", "\"Sign-in \"request\"", 1));
        assert!(e.contains("line"), "{e}");
        let e =
            refused(MESSAGES_TOML.replacen("\"Anmeldeanfrage\"", "\"\u{23F3} Anmeldeanfrage\"", 1));
        assert!(
            e.contains("[de] push_message: holds the pending marker"),
            "{e}"
        );
        let e =
            refused(MESSAGES_TOML.replacen("\"Adresse IP\"", "\"Adresse IP de l’appareil\"", 1));
        assert!(
            e.contains("[fr] push_detail_ip_address: longer than 20"),
            "{e}"
        );
        // 8 characters, 24 bytes.
        let e = refused(MESSAGES_TOML.replacen("\"認証コード\"", "\"サインインコード\"", 1));
        assert!(
            e.contains("[ja] push_detail_sign_in_code: longer than 20"),
            "{e}"
        );
        // A section that is no language of the code.
        let e = refused(format!("{MESSAGES_TOML}\n[it]\ninvalid_email = \"x\"\n"));
        assert!(e.contains("[it]: not a language"), "{e}");
    }

    #[test]
    fn the_language_is_the_primary_subtag_of_ui_locale_in_any_case_else_english() {
        let cases = [
            (Some("es"), Language::Es),
            (Some("es-ES"), Language::Es),
            (Some("ES-mx"), Language::Es),
            (Some("fr-CA"), Language::Fr),
            (Some("de"), Language::De),
            (Some("de_AT"), Language::De),
            (Some("ja"), Language::Ja),
            (Some("JA-jp"), Language::Ja),
            (Some(" ja "), Language::Ja),
            (Some("en-US"), Language::En),
            (Some("it-IT"), Language::En),
            (Some("zh-Hans"), Language::En),
            (Some("esp"), Language::En),
            (Some("e"), Language::En),
            (Some("-es"), Language::En),
            (Some(""), Language::En),
            (None, Language::En),
        ];
        for (ui_locale, expected) in cases {
            assert_eq!(
                Language::from_ui_locale(ui_locale),
                expected,
                "{ui_locale:?}"
            );
        }
    }

    #[test]
    fn placeholders_are_filled_with_typed_values_and_pending_carries_the_marker() {
        let code = SignInCode::parse("47").unwrap();
        assert_eq!(
            Message::ApprovalPendingWithCode(&code).text(Language::Ja),
            "\u{23F3} Authy アプリに認証コード 47 が表示されている場合にのみ要求を承認し、[続行] を選択してください。"
        );
        assert_eq!(
            Message::PushLimitReached(Duration::from_secs(61)).text(Language::De),
            "An Ihr Telefon wurden zu viele Anmeldeanfragen gesendet. Versuchen Sie es in 2 Minuten erneut."
        );
        assert_eq!(
            Message::PushesPaused(Duration::from_secs(1)).text(Language::Es),
            "Se rechazó una solicitud de inicio de sesión en la aplicación Authy, así que las nuevas solicitudes quedan en pausa durante 1 minuto. Si no intentó iniciar sesión, cambie su contraseña."
        );
        assert!(Message::ApprovalPending
            .text(Language::Fr)
            .starts_with(PENDING_MARKER));
        for language in Language::ALL {
            assert!(!Message::ApprovalExpired.text(language).contains('\u{23F3}'));
        }
    }
}
