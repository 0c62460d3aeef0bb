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
}

fn micros(usd_per_mtok: f64) -> u64 {
    (usd_per_mtok * 1_000_000.0).round().max(0.0) as u64
}

fn table() -> &'static BTreeMap<String, Price> {
    static TABLE: OnceLock<BTreeMap<String, Price>> = OnceLock::new();
    TABLE.get_or_init(|| {
        let raw: BTreeMap<String, serde_json::Value> =
            serde_json::from_str(include_str!("prices.json")).unwrap_or_default();
        raw.into_iter()
            .filter(|(name, _)| !name.starts_with('_'))
            .filter_map(|(name, value)| {
                let e: Entry = serde_json::from_value(value).ok()?;
                let price = Price {
                    input: micros(e.input),
                    output: micros(e.output),
                    cached_input: micros(e.cached_input.unwrap_or(e.input)),
                };
                Some((name, price))
            })
            .collect()
    })
}

/// The price of `model`: an exact entry, or the longest entry the name starts with followed by
/// `-` (so `gpt-4o-2024-08-06` costs what `gpt-4o` costs, but `gpt-4o-mini` keeps its own).
/// Provider prefixes such as `models/` (Gemini) or `openai/` (OpenRouter) are ignored.
pub fn price(model: &str) -> Option<Price> {
    let name = model.rsplit('/').next().unwrap_or(model);
    let table = table();
    if let Some(p) = table.get(name) {
        return Some(*p);
    }
    table
        .iter()
        .filter(|(k, _)| {
            name.len() > k.len() && name.starts_with(k.as_str()) && name.as_bytes()[k.len()] == b'-'
        })
        .max_by_key(|(k, _)| k.len())
        .map(|(_, p)| *p)
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
    fn models_resolve_exactly_or_by_their_longest_prefix() {
        let cases = [
            ("gpt-4o", Some(2_500_000)),
            ("gpt-4o-2024-08-06", Some(2_500_000)),
            ("gpt-4o-mini", Some(150_000)),
            ("gpt-4o-mini-2024-07-18", Some(150_000)),
            ("models/gemini-2.0-flash", Some(100_000)),
            ("openai/gpt-4o-mini", Some(150_000)),
            ("claude-3-5-haiku-20241022", Some(800_000)),
            ("gpt-4omega", None),
            ("unknown-model", None),
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
