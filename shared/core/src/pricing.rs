//! Prices: what a request cost, in integer micro-USD, from the price table in `prices.json`
//! (USD per million tokens, easy to edit, compiled in).

use std::collections::BTreeMap;
use std::sync::OnceLock;

use serde::{Deserialize, Serialize};

/// Money in micro-USD (1 USD = 1,000,000).
pub type UsdMicros = u64;

/// A model's price, in micro-USD per million tokens.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Price {
    /// Input (prompt) tokens.
    pub input: u64,
    /// Output (completion) tokens.
    pub output: u64,
    /// Cached input tokens (the input price where the provider gives no discount).
    pub cached_input: u64,
}

#[derive(Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
struct Entry {
    input: f64,
    output: f64,
    cached_input: Option<f64>,
    #[serde(default)]
    aliases: Vec<String>,
}

fn micros(usd_per_mtok: f64) -> u64 {
    (usd_per_mtok * 1_000_000.0).round().max(0.0) as u64
}

/// Every priced name (each entry's own and its aliases).
fn table() -> &'static BTreeMap<String, Price> {
    static TABLE: OnceLock<BTreeMap<String, Price>> = OnceLock::new();
    TABLE.get_or_init(|| {
        let raw: BTreeMap<String, serde_json::Value> =
            serde_json::from_str(include_str!("prices.json")).unwrap_or_default();
        let mut table = BTreeMap::new();
        for (name, value) in raw.into_iter().filter(|(name, _)| !name.starts_with('_')) {
            let Ok(e) = serde_json::from_value::<Entry>(value) else {
                continue;
            };
            let price = Price {
                input: micros(e.input),
                output: micros(e.output),
                cached_input: micros(e.cached_input.unwrap_or(e.input)),
            };
            for alias in e.aliases {
                table.insert(alias, price);
            }
            table.insert(name, price);
        }
        table
    })
}

/// The prefixes a provider puts before a model name that do not change which model it is:
/// Gemini's `models/` and OpenRouter's vendor names. One is removed, at most.
const PREFIXES: &[&str] = &[
    "models/",
    "openai/",
    "anthropic/",
    "google/",
    "mistralai/",
    "deepseek/",
    "x-ai/",
    "cohere/",
    "meta-llama/",
    "perplexity/",
];

/// Whether `suffix` is a dated snapshot: `-YYYY-MM-DD` or `-YYYYMMDD`.
fn dated(suffix: &str) -> bool {
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    let date = match suffix.strip_prefix('-') {
        Some(rest) if rest.len() == 10 => {
            let parts: Vec<&str> = rest.split('-').collect();
            match parts.as_slice() {
                [y, m, d] if y.len() == 4 && m.len() == 2 && d.len() == 2 => {
                    [*y, *m, *d].iter().all(|p| digits(p)).then_some((*m, *d))
                }
                _ => None,
            }
        }
        Some(rest) if rest.len() == 8 && digits(rest) => Some((&rest[4..6], &rest[6..8])),
        _ => None,
    };
    date.is_some_and(|(m, d)| {
        let (m, d) = (m.parse::<u8>().unwrap_or(0), d.parse::<u8>().unwrap_or(0));
        (1..=12).contains(&m) && (1..=31).contains(&d)
    })
}

/// The price of `model`: an entry of that name or alias, or an entry followed by a dated
/// snapshot (`gpt-4o-2024-08-06` costs what `gpt-4o` costs). Nothing else inherits a price:
/// `o1-pro` is not `o1`, and `gpt-4o-mini-anything` is not `gpt-4o-mini`. A provider prefix such
/// as `models/` (Gemini) or `openai/` (OpenRouter) is ignored.
pub fn price(model: &str) -> Option<Price> {
    let name = PREFIXES
        .iter()
        .find_map(|p| model.strip_prefix(p))
        .unwrap_or(model);
    let table = table();
    if let Some(p) = table.get(name) {
        return Some(*p);
    }
    // A dated snapshot: the name minus its last 9 or 11 bytes is an entry.
    [9, 11].iter().find_map(|&len| {
        let split = name.len().checked_sub(len)?;
        let (base, suffix) = (name.get(..split)?, name.get(split..)?);
        dated(suffix).then(|| table.get(base).copied()).flatten()
    })
}

/// What `input` fresh, `cached` cached and `output` tokens cost, rounded up to the micro-USD.
pub fn cost(price: Price, input: u64, cached: u64, output: u64) -> UsdMicros {
    let term = |tokens: u64, per_mtok: u64| u128::from(tokens) * u128::from(per_mtok);
    let nano_micros = term(input, price.input)
        .saturating_add(term(cached, price.cached_input))
        .saturating_add(term(output, price.output));
    u64::try_from(nano_micros.div_ceil(1_000_000)).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_parses_and_every_price_is_sane() {
        assert!(table().len() > 30);
        for (name, p) in table() {
            assert!(p.input > 0 && p.input <= 100_000_000, "{name}");
            assert!(p.cached_input <= p.input, "{name}");
        }
    }

    #[test]
    fn models_resolve_exactly_by_alias_or_as_dated_snapshots_only() {
        let cases = [
            ("gpt-4o", Some(2_500_000)),
            ("gpt-4o-2024-08-06", Some(2_500_000)),
            ("gpt-4o-mini", Some(150_000)),
            ("gpt-4o-mini-2024-07-18", Some(150_000)),
            ("models/gemini-2.0-flash", Some(100_000)),
            ("gemini-2.0-flash-001", Some(100_000)),
            ("openai/gpt-4o-mini", Some(150_000)),
            ("claude-3-5-haiku-20241022", Some(800_000)),
            ("claude-3-5-sonnet-latest", Some(3_000_000)),
            ("o1", Some(15_000_000)),
            // Never guessed from a prefix.
            ("o1-pro", None),
            ("o1-pro-2025-03-19", None),
            ("gpt-4o-mini-anything", None),
            ("gpt-4o-mini-tts", None),
            ("gpt-4o-audio-preview", None),
            ("gpt-4o-2024-13-06", None),
            ("gpt-4o-20241340", None),
            ("gpt-4omega", None),
            ("evil/gpt-4o-mini", None),
            ("models/openai/gpt-4o", None),
            ("unknown-model", None),
            ("", None),
        ];
        for (model, input) in cases {
            assert_eq!(price(model).map(|p| p.input), input, "{model}");
        }
    }

    #[test]
    fn costs_are_integer_micro_usd_rounded_up() {
        let p = price("gpt-4o-mini").expect("priced");
        // 1000 input at $0.15/M = 150 µUSD; 500 output at $0.60/M = 300 µUSD.
        assert_eq!(cost(p, 1000, 0, 500), 450);
        assert_eq!(
            cost(p, 1, 0, 0),
            1,
            "a fraction of a micro-dollar rounds up"
        );
        assert_eq!(cost(p, 0, 0, 0), 0);
        assert_eq!(cost(p, 0, 1000, 0), 75);
        assert_eq!(
            cost(
                Price {
                    input: u64::MAX,
                    output: u64::MAX,
                    cached_input: 0
                },
                u64::MAX,
                0,
                u64::MAX
            ),
            u64::MAX
        );
    }
}
