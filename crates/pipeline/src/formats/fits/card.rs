//! FITS header cards: 80-character keyword records, formatted and parsed as FITS 4.0
//! §4.1–4.2 prescribe (keyword in columns 1–8, value indicator "= " in 9–10, fixed-format
//! values right-justified to column 30, strings in single quotes from column 11).

use crate::error::FormatError;

/// Length of one header card (FITS 4.0 §3.3.1).
pub const CARD_LEN: usize = 80;

/// The value of a keyword card (FITS 4.0 §4.2).
#[derive(Debug, Clone, PartialEq)]
pub enum CardValue {
    Float(f64),
    Int(i64),
    Str(String),
    Bool(bool),
}

impl CardValue {
    /// The value as a number (integers convert), or `None` for strings and logicals.
    pub fn as_f64(&self) -> Option<f64> {
        match *self {
            Self::Float(v) => Some(v),
            Self::Int(v) => Some(v as f64),
            _ => None,
        }
    }

    pub fn as_str(&self) -> Option<&str> {
        match self {
            Self::Str(s) => Some(s),
            _ => None,
        }
    }
}

impl From<f64> for CardValue {
    fn from(v: f64) -> Self {
        Self::Float(v)
    }
}

impl From<i64> for CardValue {
    fn from(v: i64) -> Self {
        Self::Int(v)
    }
}

impl From<bool> for CardValue {
    fn from(v: bool) -> Self {
        Self::Bool(v)
    }
}

impl From<&str> for CardValue {
    fn from(v: &str) -> Self {
        Self::Str(v.to_owned())
    }
}

impl From<String> for CardValue {
    fn from(v: String) -> Self {
        Self::Str(v)
    }
}

/// One header card. Keyword cards have a value; commentary cards (`HISTORY`, `COMMENT`,
/// blank keyword; FITS 4.0 §4.4.2.4) have `value: None` and their text in `comment`.
#[derive(Debug, Clone, PartialEq)]
pub struct Card {
    pub keyword: String,
    pub value: Option<CardValue>,
    pub comment: String,
}

impl Card {
    /// A keyword = value card with an optional comment (empty for none).
    pub fn new(keyword: &str, value: impl Into<CardValue>, comment: &str) -> Self {
        Self {
            keyword: keyword.to_owned(),
            value: Some(value.into()),
            comment: comment.to_owned(),
        }
    }

    /// A `HISTORY` card; text longer than 72 characters continues on further cards.
    pub fn history(text: &str) -> Self {
        Self::commentary("HISTORY", text)
    }

    /// A `COMMENT` card.
    pub fn comment(text: &str) -> Self {
        Self::commentary("COMMENT", text)
    }

    fn commentary(keyword: &str, text: &str) -> Self {
        Self {
            keyword: keyword.to_owned(),
            value: None,
            comment: text.to_owned(),
        }
    }

    /// True for `HISTORY`, `COMMENT` and blank-keyword cards.
    pub fn is_commentary(&self) -> bool {
        is_commentary_keyword(&self.keyword)
    }
}

fn is_commentary_keyword(k: &str) -> bool {
    matches!(k, "HISTORY" | "COMMENT" | "")
}

/// Checks a keyword: 1–8 characters from `A–Z 0–9 - _` (FITS 4.0 §4.1.2.1).
pub fn check_keyword(keyword: &str) -> Result<(), FormatError> {
    let ok = keyword.len() <= 8
        && keyword
            .bytes()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'-' || b == b'_');
    if ok {
        Ok(())
    } else {
        Err(FormatError::invalid(
            format!("FITS keyword {keyword:?}"),
            "keywords are at most 8 characters from A-Z, 0-9, '-' and '_' (FITS 4.0 §4.1.2.1)",
        ))
    }
}

fn check_text(keyword: &str, what: &str, text: &str) -> Result<(), FormatError> {
    if text.bytes().all(|b| (0x20..=0x7e).contains(&b)) {
        Ok(())
    } else {
        Err(FormatError::invalid(
            format!("FITS keyword {keyword} {what}"),
            "only printable ASCII is allowed in FITS headers (FITS 4.0 §4.1.2.3)",
        ))
    }
}

/// Formats a float so it parses back to the same bits: the shortest round-trip decimal,
/// in exponent form when the plain form would not fit the 20-column fixed field.
pub fn format_float(v: f64) -> Option<String> {
    if !v.is_finite() {
        return None;
    }
    let plain = format!("{v}");
    let plain = if plain.contains('.') {
        plain
    } else {
        format!("{plain}.0")
    };
    Some(if plain.len() <= 20 {
        plain
    } else {
        format!("{v:E}")
    })
}

fn format_value(keyword: &str, value: &CardValue) -> Result<String, FormatError> {
    let fixed = |s: String| format!("{s:>20}");
    Ok(match value {
        CardValue::Bool(b) => fixed(if *b { "T" } else { "F" }.to_owned()),
        CardValue::Int(i) => fixed(i.to_string()),
        CardValue::Float(f) => {
            let s = format_float(*f).ok_or_else(|| {
                FormatError::invalid(
                    format!("FITS keyword {keyword}"),
                    format!("value {f} is not finite; FITS headers hold finite numbers"),
                )
            })?;
            fixed(s)
        }
        CardValue::Str(s) => {
            check_text(keyword, "value", s)?;
            let escaped = s.trim_end().replace('\'', "''");
            if escaped.len() > 68 {
                return Err(FormatError::invalid(
                    format!("FITS keyword {keyword}"),
                    format!(
                        "string value is {} characters; at most 68 fit on one card",
                        escaped.len()
                    ),
                ));
            }
            format!("'{escaped:<8}'")
        }
    })
}

/// Formats a card as one or more 80-character records (long commentary text wraps).
pub fn format_card(card: &Card) -> Result<Vec<String>, FormatError> {
    check_keyword(&card.keyword)?;
    check_text(&card.keyword, "comment", &card.comment)?;
    let Some(value) = &card.value else {
        if !card.is_commentary() {
            return Err(FormatError::invalid(
                format!("FITS keyword {}", card.keyword),
                "has no value; only HISTORY, COMMENT and blank keywords may omit one",
            ));
        }
        return Ok(wrap(&card.comment, 72)
            .into_iter()
            .map(|text| format!("{:<8}{:<72}", card.keyword, text))
            .collect());
    };
    if card.is_commentary() || card.keyword == "END" || card.keyword == "CONTINUE" {
        return Err(FormatError::invalid(
            format!("FITS keyword {:?}", card.keyword),
            "is reserved and cannot carry a value",
        ));
    }
    let mut line = format!(
        "{:<8}= {}",
        card.keyword,
        format_value(&card.keyword, value)?
    );
    if !card.comment.is_empty() && line.len() + 3 < CARD_LEN {
        line.push_str(" / ");
        let room = CARD_LEN - line.len();
        line.extend(card.comment.chars().take(room));
    }
    Ok(vec![format!("{line:<80}")])
}

/// Splits ASCII `text` into lines of at most `width` characters, breaking at spaces
/// where possible (a word longer than `width` is split).
fn wrap(text: &str, width: usize) -> Vec<String> {
    let mut lines = Vec::new();
    let mut rest = text.trim_end();
    while rest.len() > width {
        let cut = match rest[..=width].rfind(' ') {
            Some(i) if i > 0 => i,
            _ => width,
        };
        lines.push(rest[..cut].to_owned());
        rest = rest[cut..].strip_prefix(' ').unwrap_or(&rest[cut..]);
    }
    lines.push(rest.to_owned());
    lines
}

/// Parses one 80-byte record. Returns `Ok(None)` for the `END` card.
/// Values that are not strings, logicals, integers or reals (e.g. complex) are kept as
/// `value: None` with the raw text in `comment`.
pub fn parse_card(record: &[u8]) -> Result<Option<Card>, String> {
    if !record.iter().all(|b| (0x20..=0x7e).contains(b)) {
        return Err("header contains non-ASCII or control bytes".to_owned());
    }
    // All bytes are printable ASCII, so this is valid UTF-8.
    let text = String::from_utf8_lossy(record);
    let keyword = text[..8].trim_end().to_owned();
    if keyword == "END" {
        return Ok(None);
    }
    let rest = &text[8..];
    if is_commentary_keyword(&keyword) || !rest.starts_with("= ") {
        return Ok(Some(Card {
            keyword,
            value: None,
            comment: rest.trim_end().to_owned(),
        }));
    }
    let field = rest[2..].trim_start();
    let (value, comment) = if let Some(body) = field.strip_prefix('\'') {
        let (s, after) = parse_quoted(body)
            .ok_or_else(|| format!("keyword {keyword}: unterminated string value"))?;
        (Some(CardValue::Str(s)), comment_of(after))
    } else {
        let (token, after) = match field.find('/') {
            Some(i) => (&field[..i], &field[i..]),
            None => (field, ""),
        };
        (parse_scalar(token.trim()), comment_of(after))
    };
    let comment = if value.is_none() && !field.trim().is_empty() {
        field.trim_end().to_owned()
    } else {
        comment
    };
    Ok(Some(Card {
        keyword,
        value,
        comment,
    }))
}

/// Splits `body` (after the opening quote) into the unescaped string and the rest.
fn parse_quoted(body: &str) -> Option<(String, &str)> {
    let bytes = body.as_bytes();
    let mut out = String::new();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'\'' {
            if bytes.get(i + 1) == Some(&b'\'') {
                out.push('\'');
                i += 2;
                continue;
            }
            // Trailing spaces in a string value are not significant (FITS 4.0 §4.2.1).
            return Some((out.trim_end().to_owned(), &body[i + 1..]));
        }
        out.push(bytes[i] as char);
        i += 1;
    }
    None
}

fn comment_of(after: &str) -> String {
    after
        .trim_start()
        .strip_prefix('/')
        .map(|c| c.trim().to_owned())
        .unwrap_or_default()
}

fn parse_scalar(token: &str) -> Option<CardValue> {
    match token {
        "" => return None,
        "T" => return Some(CardValue::Bool(true)),
        "F" => return Some(CardValue::Bool(false)),
        _ => {}
    }
    let is_int = token
        .trim_start_matches(['+', '-'])
        .bytes()
        .all(|b| b.is_ascii_digit());
    if is_int && let Ok(i) = token.parse::<i64>() {
        return Some(CardValue::Int(i));
    }
    let is_real = token
        .bytes()
        .all(|b| b.is_ascii_digit() || matches!(b, b'+' | b'-' | b'.' | b'E' | b'e' | b'D' | b'd'));
    if is_real {
        return token
            .replace(['D', 'd'], "E")
            .parse()
            .ok()
            .map(CardValue::Float);
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round_trip(card: &Card) -> Card {
        let recs = format_card(card).unwrap();
        assert_eq!(recs.len(), 1);
        assert_eq!(recs[0].len(), CARD_LEN);
        parse_card(recs[0].as_bytes()).unwrap().unwrap()
    }

    #[test]
    fn floats_round_trip_bit_exact() {
        for v in [
            0.0,
            -0.0,
            1.0,
            -2.5e-300,
            1.234_567_890_123_456_7e-5,
            -1.797_693_134_862_315_7e308,
            f64::MIN_POSITIVE,
            0.1 + 0.2,
            33.0,
        ] {
            let c = round_trip(&Card::new("X", v, "c"));
            let CardValue::Float(back) = c.value.unwrap() else {
                panic!("not a float")
            };
            assert_eq!(back.to_bits(), v.to_bits(), "{v}");
        }
    }

    #[test]
    fn fixed_format_columns() {
        let r = &format_card(&Card::new("NAXIS1", 512_i64, "")).unwrap()[0];
        assert_eq!(&r[..10], "NAXIS1  = ");
        assert_eq!(r.as_bytes()[29], b'2');
        let r = &format_card(&Card::new("SIMPLE", true, "std")).unwrap()[0];
        assert_eq!(r.as_bytes()[29], b'T');
        let r = &format_card(&Card::new("CTYPE1", "RA---SIN", "")).unwrap()[0];
        assert_eq!(&r[10..20], "'RA---SIN'");
        let r = &format_card(&Card::new("BUNIT", "JY", "")).unwrap()[0];
        assert_eq!(&r[10..20], "'JY      '");
    }

    #[test]
    fn strings_with_quotes_and_comments() {
        let c = round_trip(&Card::new("OBJECT", "it's", "a comment / with slash"));
        assert_eq!(c.value, Some(CardValue::Str("it's".into())));
        assert_eq!(c.comment, "a comment / with slash");
    }

    #[test]
    fn long_history_wraps() {
        let text = "x".repeat(100);
        let recs = format_card(&Card::history(&text)).unwrap();
        assert_eq!(recs.len(), 2);
        assert!(
            recs.iter()
                .all(|r| r.len() == 80 && r.starts_with("HISTORY "))
        );
    }

    #[test]
    fn rejects_bad_keywords_and_values() {
        assert!(format_card(&Card::new("lower", 1_i64, "")).is_err());
        assert!(format_card(&Card::new("TOOLONGKEY", 1_i64, "")).is_err());
        assert!(format_card(&Card::new("X", f64::NAN, "")).is_err());
        assert!(format_card(&Card::new("X", "é", "")).is_err());
        assert!(format_card(&Card::new("X", "a".repeat(69), "")).is_err());
        assert!(format_card(&Card::new("HISTORY", 1_i64, "")).is_err());
    }

    #[test]
    fn parses_foreign_forms() {
        let rec = format!("{:<80}", "CDELT1  = -2.7777777777778D-04 / deg");
        let c = parse_card(rec.as_bytes()).unwrap().unwrap();
        assert_eq!(c.value, Some(CardValue::Float(-2.777_777_777_777_8e-4)));
        let rec = format!("{:<80}", "END");
        assert!(parse_card(rec.as_bytes()).unwrap().is_none());
        let rec = format!("{:<80}", "CPLX    = (1.0, 2.0)");
        assert_eq!(parse_card(rec.as_bytes()).unwrap().unwrap().value, None);
    }
}
