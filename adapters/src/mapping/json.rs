//! The JSON the XML → JSON mapping makes: like `serde_json::Value`, except that a
//! number keeps the digits it was written with. `serde_json` (without its
//! `arbitrary_precision` feature, which the workspace cannot turn on: it breaks
//! `#[serde(untagged)]` and `flatten` in dependencies such as async-nats) holds a
//! decimal as an `f64`, so `12500.50` would print as `12500.5` and a 20-digit amount
//! would lose its last digits. Mediated JSON is written from this tree instead.

use serde_json::{Map, Value};

#[derive(Debug, Clone, PartialEq)]
pub enum Json {
    Null,
    Bool(bool),
    /// A valid JSON number token, exactly as the XML wrote it (after
    /// [`number_token`]'s normalisation of XML-only spellings such as `+5` or `.5`).
    Number(String),
    String(String),
    Array(Vec<Json>),
    /// Members in document order.
    Object(Vec<(String, Json)>),
}

impl Json {
    /// The member `key` of an object.
    pub fn get(&self, key: &str) -> Option<&Json> {
        match self {
            Json::Object(members) => members.iter().find(|(k, _)| k == key).map(|(_, v)| v),
            _ => None,
        }
    }

    /// Removes and returns the member `key` of an object.
    pub fn remove(&mut self, key: &str) -> Option<Json> {
        match self {
            Json::Object(members) => members.iter().position(|(k, _)| k == key).map(|i| members.remove(i).1),
            _ => None,
        }
    }

    /// The text of a scalar as XML writes it; `None` for objects, arrays and null.
    pub fn scalar_text(&self) -> Option<String> {
        match self {
            Json::String(s) | Json::Number(s) => Some(s.clone()),
            Json::Bool(b) => Some(b.to_string()),
            _ => None,
        }
    }

    /// As a `serde_json::Value`: numbers beyond `f64`'s precision are rounded there.
    pub fn to_value(&self) -> Value {
        match self {
            Json::Null => Value::Null,
            Json::Bool(b) => Value::Bool(*b),
            // A token `number_token` accepted always parses (its exponent is bounded).
            Json::Number(n) => serde_json::from_str::<serde_json::Number>(n).map(Value::Number).unwrap_or(Value::Null),
            Json::String(s) => Value::String(s.clone()),
            Json::Array(items) => Value::Array(items.iter().map(Json::to_value).collect()),
            Json::Object(members) => Value::Object(to_map(members)),
        }
    }

    /// [`Json::to_value`] without copying the strings.
    pub fn into_value(self) -> Value {
        match self {
            Json::String(s) => Value::String(s),
            Json::Array(items) => Value::Array(items.into_iter().map(Json::into_value).collect()),
            Json::Object(members) => Value::Object(into_map(members)),
            scalar => scalar.to_value(),
        }
    }

    /// The JSON text, numbers exactly as written.
    pub fn to_json_string(&self) -> String {
        let mut out = String::new();
        self.write(&mut out);
        out
    }

    fn write(&self, out: &mut String) {
        match self {
            Json::Null => out.push_str("null"),
            Json::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
            Json::Number(n) => out.push_str(n),
            Json::String(s) => write_string(out, s),
            Json::Array(items) => {
                out.push('[');
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    item.write(out);
                }
                out.push(']');
            }
            Json::Object(members) => {
                out.push('{');
                for (i, (k, v)) in members.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    write_string(out, k);
                    out.push(':');
                    v.write(out);
                }
                out.push('}');
            }
        }
    }
}

/// An object's members as a `serde_json::Map` (see [`Json::to_value`]).
pub fn to_map(members: &[(String, Json)]) -> Map<String, Value> {
    members.iter().map(|(k, v)| (k.clone(), v.to_value())).collect()
}

/// [`to_map`] without copying.
pub fn into_map(members: Vec<(String, Json)>) -> Map<String, Value> {
    members.into_iter().map(|(k, v)| (k, v.into_value())).collect()
}

fn write_string(out: &mut String, s: &str) {
    // serde_json's escaping of a plain string cannot fail.
    out.push_str(&serde_json::to_string(s).unwrap_or_else(|_| "\"\"".into()));
}

/// The JSON number token for an XML numeral, keeping its digits: `12500.50` stays
/// `12500.50`. XML spellings JSON lacks are normalised without touching the digits
/// that count: a leading `+` goes, leading zeros of the integer part go (`007` → `7`),
/// `.5` gains its `0`, `5.` loses its point. `None` for anything else (`INF`, `NaN`,
/// `1,5`, hex) and for magnitudes beyond `f64`'s range, which no decimal amount needs.
pub fn number_token(text: &str) -> Option<String> {
    let t = text.trim();
    let (sign, rest) = match t.as_bytes().first()? {
        b'-' => ("-", &t[1..]),
        b'+' => ("", &t[1..]),
        _ => ("", t),
    };
    let (mantissa, exponent) = match rest.find(['e', 'E']) {
        Some(i) => (&rest[..i], Some(&rest[i + 1..])),
        None => (rest, None),
    };
    let (int, frac) = match mantissa.split_once('.') {
        Some((i, f)) => (i, Some(f)),
        None => (mantissa, None),
    };
    let digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    if !digits(int) || !frac.is_none_or(digits) || (int.is_empty() && frac.is_none_or(str::is_empty)) {
        return None;
    }
    let int = int.trim_start_matches('0');
    let mut out = String::with_capacity(t.len() + 1);
    out.push_str(sign);
    out.push_str(if int.is_empty() { "0" } else { int });
    if let Some(f) = frac.filter(|f| !f.is_empty()) {
        out.push('.');
        out.push_str(f);
    }
    if let Some(e) = exponent {
        let (esign, edigits) = match e.as_bytes().first()? {
            b'-' => ("-", &e[1..]),
            b'+' => ("", &e[1..]),
            _ => ("", e),
        };
        if edigits.is_empty() || edigits.len() > 4 || !digits(edigits) {
            return None;
        }
        out.push('e');
        out.push_str(esign);
        out.push_str(edigits);
    }
    // Every token built above is JSON; one that overflows f64 (`1e999`) would not
    // read back in serde_json, and no amount needs it.
    out.parse::<f64>().is_ok_and(f64::is_finite).then_some(out)
}

/// An integer numeral as a JSON token (any length: a 30-digit identifier stays exact).
pub fn integer_token(text: &str) -> Option<String> {
    number_token(text).filter(|t| t.bytes().all(|b| b.is_ascii_digit() || b == b'-'))
}

/// The decimal text of a JSON number for XML: `xs:decimal` has no exponent, so
/// `1e21` is written `1000000000000000000000` and `1.5e-7` `0.00000015`; every other
/// number keeps the text `serde_json` gives it (the shortest that reads back the same).
pub fn decimal_text(n: &serde_json::Number) -> String {
    let s = n.to_string();
    match s.find(['e', 'E']) {
        None => s,
        Some(i) => expand_exponent(&s[..i], s[i + 1..].parse::<i32>().unwrap_or(0)).unwrap_or(s),
    }
}

fn expand_exponent(mantissa: &str, exponent: i32) -> Option<String> {
    if exponent.unsigned_abs() > 400 {
        return None;
    }
    let (sign, m) = mantissa.strip_prefix('-').map_or(("", mantissa), |m| ("-", m));
    let (int, frac) = m.split_once('.').unwrap_or((m, ""));
    let digits: String = format!("{int}{frac}");
    // The position of the decimal point within `digits`.
    let point = int.len() as i32 + exponent;
    let mut out = String::from(sign);
    if point <= 0 {
        out.push_str("0.");
        out.extend(std::iter::repeat_n('0', (-point) as usize));
        out.push_str(&digits);
    } else if point as usize >= digits.len() {
        out.push_str(&digits);
        out.extend(std::iter::repeat_n('0', point as usize - digits.len()));
    } else {
        out.push_str(&digits[..point as usize]);
        out.push('.');
        out.push_str(&digits[point as usize..]);
    }
    let body = out.trim_start_matches('-');
    let trimmed = body.trim_start_matches('0');
    let body = if trimmed.is_empty() || trimmed.starts_with('.') { format!("0{trimmed}") } else { trimmed.to_owned() };
    Some(format!("{sign}{body}"))
}
