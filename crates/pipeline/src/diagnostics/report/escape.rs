//! Escaping user-controlled text (job names, stage names, hosts, error messages) for the
//! page: HTML text and attribute values, and JSON embedded in a `<script>` element.

/// Escapes `&`, `<`, `>`, `"` and `'` for HTML text and quoted attribute values
/// (OWASP XSS prevention cheat sheet, rule #1).
pub fn html(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// Makes JSON text safe inside `<script type="application/json">`: `<`, `>` and `&`
/// become `\u003c`, `\u003e`, `\u0026`, so neither `</script>` nor `<!--` can end or
/// change the element (HTML Living Standard, "Restrictions for contents of script
/// elements"), and U+2028/U+2029 are escaped too. These characters only occur inside
/// JSON strings, where the `\uXXXX` escapes mean the same text to `JSON.parse`.
pub fn json_in_script(json: &str) -> String {
    let mut out = String::with_capacity(json.len());
    for c in json.chars() {
        match c {
            '<' => out.push_str("\\u003c"),
            '>' => out.push_str("\\u003e"),
            '&' => out.push_str("\\u0026"),
            '\u{2028}' => out.push_str("\\u2028"),
            '\u{2029}' => out.push_str("\\u2029"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn html_escapes_markup() {
        assert_eq!(
            html(r#"<a href="x">O'Neil & co</a>"#),
            "&lt;a href=&quot;x&quot;&gt;O&#39;Neil &amp; co&lt;/a&gt;"
        );
    }

    #[test]
    fn script_json_cannot_close_the_element_and_parses_back_to_the_same_text() {
        let name = "</script><script>alert(1)</script><!-- & \u{2028}";
        let json = serde_json::to_string(&serde_json::json!({ "job": name })).unwrap();
        let safe = json_in_script(&json);
        assert!(!safe.contains('<') && !safe.contains('>') && !safe.contains('&'));
        let back: serde_json::Value = serde_json::from_str(&safe).unwrap();
        assert_eq!(back["job"], name);
    }
}
