//! What the proxy needs from a JSON request body, read without building a tree of it: the
//! model, the output cap and how many answers are asked for, whether the request streams and
//! asks for usage, and whether it references anything whose cost cannot be known in advance.
//! Every byte is validated as JSON by serde, but only these few fields are kept, so memory stays
//! the size of the body itself; the offsets of the objects the proxy may extend are kept too, so
//! that it can splice a field in instead of re-serialising the body ([`rewrite`]).
//!
//! A field the proxy reads that appears twice at the top level is refused: parsers disagree on
//! which of two `model`s counts, and the policy must check the one the provider runs.

use std::cell::RefCell;
use std::fmt;

use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::value::RawValue;

use crate::Error;

/// The longest model name accepted (it is stored with every usage event).
pub const MAX_MODEL: usize = 256;
/// The largest `stream_options` object Feen will rewrite.
const MAX_STREAM_OPTIONS: usize = 4096;

/// What a JSON request body says, as far as the proxy cares.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct BodyFacts {
    /// The top-level `model`.
    pub model: Option<String>,
    /// `stream: true`.
    pub stream: bool,
    /// The request's own output cap: `max_tokens`, `max_completion_tokens`,
    /// `max_output_tokens` or `generationConfig.maxOutputTokens`.
    pub output_cap: Option<u64>,
    /// How many answers the request asks for: the largest of `n`, `best_of` and
    /// `generationConfig.candidateCount` (1 when none is given).
    pub choices: u64,
    /// `stream_options.include_usage`, when `stream_options` is given.
    pub include_usage: Option<bool>,
    /// Why the cost of the request cannot be bounded before it runs, if it cannot: a tool the
    /// provider bills per call, a remote file or image, a reference to an uploaded file.
    pub unbounded: Option<&'static str>,
    /// Where the top-level object starts (its `{`).
    object_at: usize,
    /// The `stream_options` object: where it starts and its length.
    stream_options: Option<(usize, usize)>,
    /// Where the `generationConfig` object starts, when it is an object.
    generation_config: Option<usize>,
}

/// Which top-level fields were seen, to refuse duplicates.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Field {
    Model,
    Stream,
    StreamOptions,
    MaxTokens,
    MaxCompletionTokens,
    MaxOutputTokens,
    N,
    BestOf,
    GenerationConfig,
    Tools,
    Other,
}

impl Field {
    fn of(key: &str) -> Self {
        match key {
            "model" => Field::Model,
            "stream" => Field::Stream,
            "stream_options" => Field::StreamOptions,
            "max_tokens" => Field::MaxTokens,
            "max_completion_tokens" => Field::MaxCompletionTokens,
            "max_output_tokens" => Field::MaxOutputTokens,
            "n" => Field::N,
            "best_of" => Field::BestOf,
            "generationConfig" | "generation_config" => Field::GenerationConfig,
            "tools" => Field::Tools,
            _ => Field::Other,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Field::Model => "model",
            Field::Stream => "stream",
            Field::StreamOptions => "stream_options",
            Field::MaxTokens => "max_tokens",
            Field::MaxCompletionTokens => "max_completion_tokens",
            Field::MaxOutputTokens => "max_output_tokens",
            Field::N => "n",
            Field::BestOf => "best_of",
            Field::GenerationConfig => "generationConfig",
            Field::Tools => "tools",
            Field::Other => "",
        }
    }
}

/// Scans a request body. `Ok(None)`: not a JSON object (a multipart form, audio, ...), which
/// the proxy forwards without any of these facts. `Err`: a body that starts as a JSON object but
/// is not valid JSON (no provider accepts it, and a lenient one could read fields Feen did not
/// see), or one Feen refuses (a field it reads given twice, a model name that is too long).
pub fn scan(body: &[u8]) -> Result<Option<BodyFacts>, Error> {
    let Some(object_at) = body.iter().position(|b| !b.is_ascii_whitespace()) else {
        return Ok(None);
    };
    if body[object_at] != b'{' {
        return Ok(None);
    }
    let refusal = RefCell::new(None);
    let top = Top {
        body,
        refusal: &refusal,
    };
    let mut de = serde_json::Deserializer::from_slice(body);
    let facts = de
        .deserialize_map(top)
        .and_then(|facts| de.end().map(|()| facts));
    match (facts, refusal.into_inner()) {
        (_, Some(refusal)) => Err(refusal),
        (Ok(mut facts), None) => {
            facts.object_at = object_at;
            Ok(Some(facts))
        }
        (Err(e), None) => Err(invalid(format!("the body is not valid JSON: {e}"))),
    }
}

fn invalid(message: String) -> Error {
    Error::Invalid {
        code: "invalid_body",
        message,
    }
}

/// The offset of `inner` (a slice of `outer`) within `outer`.
fn offset_in(outer: &[u8], inner: &str) -> usize {
    (inner.as_ptr() as usize).saturating_sub(outer.as_ptr() as usize)
}

struct Top<'b, 'r> {
    body: &'b [u8],
    refusal: &'r RefCell<Option<Error>>,
}

impl Top<'_, '_> {
    fn refuse<E: de::Error>(&self, error: Error) -> E {
        let message = error.to_string();
        *self.refusal.borrow_mut() = Some(error);
        E::custom(message)
    }
}

impl<'de> Visitor<'de> for Top<'de, '_> {
    type Value = BodyFacts;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<BodyFacts, A::Error> {
        let mut facts = BodyFacts {
            choices: 1,
            ..BodyFacts::default()
        };
        let mut seen: Vec<Field> = Vec::new();
        let mut caps = [None; 3];
        let mut multipliers = [None; 3];
        while let Some(key) = map.next_key::<KeyName>()? {
            let field = Field::of(&key.0);
            if field != Field::Other {
                if seen.contains(&field) {
                    return Err(self.refuse(invalid(format!(
                        "the body gives {} more than once",
                        field.name()
                    ))));
                }
                seen.push(field);
            }
            match field {
                Field::Model => {
                    let model = map.next_value::<Leaf>()?.text();
                    if model.as_ref().is_some_and(|name| name.len() > MAX_MODEL) {
                        return Err(self.refuse(invalid(format!(
                            "model names are at most {MAX_MODEL} bytes"
                        ))));
                    }
                    facts.model = model;
                }
                Field::Stream => facts.stream = map.next_value::<Leaf>()?.flag() == Some(true),
                Field::StreamOptions => {
                    let raw = map.next_value::<&RawValue>()?;
                    let text = raw.get();
                    if text.len() > MAX_STREAM_OPTIONS {
                        return Err(self.refuse(invalid(format!(
                            "stream_options is larger than {MAX_STREAM_OPTIONS} bytes"
                        ))));
                    }
                    if text.starts_with('{') {
                        facts.stream_options = Some((offset_in(self.body, text), text.len()));
                        let options: StreamOptions =
                            serde_json::from_str(text).map_err(de::Error::custom)?;
                        facts.include_usage = Some(options.include_usage.flag() == Some(true));
                    }
                }
                Field::MaxTokens => caps[0] = map.next_value::<Leaf>()?.count(),
                Field::MaxCompletionTokens => caps[1] = map.next_value::<Leaf>()?.count(),
                Field::MaxOutputTokens => caps[2] = map.next_value::<Leaf>()?.count(),
                Field::N => multipliers[0] = map.next_value::<Leaf>()?.count(),
                Field::BestOf => multipliers[1] = map.next_value::<Leaf>()?.count(),
                Field::GenerationConfig => {
                    let raw = map.next_value::<&RawValue>()?;
                    let text = raw.get();
                    if text.starts_with('{') {
                        facts.generation_config = Some(offset_in(self.body, text));
                        let config: GenerationConfig =
                            serde_json::from_str(text).map_err(de::Error::custom)?;
                        if caps.iter().all(Option::is_none) {
                            facts.output_cap = config.max_output_tokens.count();
                        }
                        multipliers[2] = config.candidate_count.count();
                    }
                }
                Field::Tools => {
                    if let Some(why) = map.next_value::<Tools>()?.0 {
                        facts.unbounded = Some(why);
                    }
                }
                Field::Other => {
                    if let Some(why) = map.next_value::<Media>()?.0 {
                        facts.unbounded.get_or_insert(why);
                    }
                }
            }
        }
        if let Some(cap) = caps.iter().flatten().next() {
            facts.output_cap = Some(*cap);
        }
        facts.choices = multipliers
            .iter()
            .flatten()
            .copied()
            .max()
            .unwrap_or(1)
            .max(1);
        Ok(facts)
    }
}

/// A key, borrowed where the JSON allows.
struct KeyName<'de>(std::borrow::Cow<'de, str>);

impl<'de> de::Deserialize<'de> for KeyName<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = KeyName<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a key")
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(KeyName(std::borrow::Cow::Borrowed(v)))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(KeyName(std::borrow::Cow::Owned(v.to_owned())))
            }
        }
        d.deserialize_str(V)
    }
}

/// A JSON value as far as the scan cares: a string (cut to [`MAX_MODEL`] + 1 bytes: enough to
/// refuse a longer one), an unsigned integer, a boolean, or anything else (skipped without being
/// kept).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
enum Leaf {
    Str(String),
    U64(u64),
    Bool(bool),
    #[default]
    Other,
}

impl<'de> de::Deserialize<'de> for Leaf {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Leaf;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("any value")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Leaf, E> {
                let mut end = v.len().min(MAX_MODEL + 1);
                while !v.is_char_boundary(end) {
                    end -= 1;
                }
                let mut text = v[..end].to_owned();
                if v.len() > MAX_MODEL && text.len() <= MAX_MODEL {
                    text.push(' ');
                }
                Ok(Leaf::Str(text))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Leaf, E> {
                Ok(Leaf::U64(v))
            }
            fn visit_bool<E: de::Error>(self, v: bool) -> Result<Leaf, E> {
                Ok(Leaf::Bool(v))
            }
            fn visit_i64<E: de::Error>(self, _: i64) -> Result<Leaf, E> {
                Ok(Leaf::Other)
            }
            fn visit_f64<E: de::Error>(self, _: f64) -> Result<Leaf, E> {
                Ok(Leaf::Other)
            }
            fn visit_unit<E: de::Error>(self) -> Result<Leaf, E> {
                Ok(Leaf::Other)
            }
            fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Leaf, A::Error> {
                IgnoredAny.visit_seq(seq).map(|_| Leaf::Other)
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Leaf, A::Error> {
                IgnoredAny.visit_map(map).map(|_| Leaf::Other)
            }
        }
        d.deserialize_any(V)
    }
}

impl Leaf {
    fn text(self) -> Option<String> {
        match self {
            Leaf::Str(s) => Some(s),
            _ => None,
        }
    }
    fn count(self) -> Option<u64> {
        match self {
            Leaf::U64(n) => Some(n),
            _ => None,
        }
    }
    fn flag(self) -> Option<bool> {
        match self {
            Leaf::Bool(b) => Some(b),
            _ => None,
        }
    }
}

#[derive(serde::Deserialize)]
struct StreamOptions {
    #[serde(default)]
    include_usage: Leaf,
}

#[derive(serde::Deserialize)]
struct GenerationConfig {
    #[serde(default, alias = "max_output_tokens", rename = "maxOutputTokens")]
    max_output_tokens: Leaf,
    #[serde(default, alias = "candidate_count", rename = "candidateCount")]
    candidate_count: Leaf,
}

/// Keys whose value is an uploaded file or a remote file (cost unknown until read).
const FILE_KEYS: &[&str] = &[
    "file_id",
    "file_url",
    "fileData",
    "file_data",
    "fileUri",
    "file_uri",
];
/// Keys whose string value, when it is an http(s) URL, is media the provider fetches itself.
const URL_KEYS: &[&str] = &["url", "image_url"];

const REMOTE: &str = "it references a remote image or file";
const FILE: &str = "it references an uploaded file";

/// Walks any value looking for references whose cost is unknown in advance.
struct Media(Option<&'static str>);

impl<'de> de::Deserialize<'de> for Media {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        MediaSeed { url: false }.deserialize(d)
    }
}

/// [`Media`], where `url` says the value sits under a URL key.
struct MediaSeed {
    url: bool,
}

impl<'de> DeserializeSeed<'de> for MediaSeed {
    type Value = Media;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Media, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for MediaSeed {
    type Value = Media;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any value")
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Media, E> {
        let remote = v.starts_with("https://") || v.starts_with("http://");
        Ok(Media((self.url && remote).then_some(REMOTE)))
    }
    fn visit_bool<E: de::Error>(self, _: bool) -> Result<Media, E> {
        Ok(Media(None))
    }
    fn visit_i64<E: de::Error>(self, _: i64) -> Result<Media, E> {
        Ok(Media(None))
    }
    fn visit_u64<E: de::Error>(self, _: u64) -> Result<Media, E> {
        Ok(Media(None))
    }
    fn visit_f64<E: de::Error>(self, _: f64) -> Result<Media, E> {
        Ok(Media(None))
    }
    fn visit_unit<E: de::Error>(self) -> Result<Media, E> {
        Ok(Media(None))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Media, A::Error> {
        let mut found = None;
        while let Some(Media(why)) = seq.next_element_seed(MediaSeed { url: false })? {
            found = found.or(why);
        }
        Ok(Media(found))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Media, A::Error> {
        let mut found = None;
        while let Some(key) = map.next_key::<KeyName>()? {
            let key = key.0.as_ref();
            if FILE_KEYS.contains(&key) {
                found = found.or(Some(FILE));
            }
            let seed = MediaSeed {
                url: URL_KEYS.contains(&key),
            };
            found = found.or(map.next_value_seed(seed)?.0);
        }
        Ok(Media(found))
    }
}

/// The tool types that cost nothing beyond tokens: functions the client runs, and Anthropic's
/// client-side tools.
fn free_tool(kind: &str) -> bool {
    matches!(kind, "function" | "custom")
        || ["bash_", "text_editor_", "computer_"]
            .iter()
            .any(|prefix| kind.starts_with(prefix))
}

/// Gemini's tools that the provider runs and bills on its own (they have no `type`).
const GEMINI_BILLED_TOOLS: &[&str] = &[
    "googleSearch",
    "google_search",
    "googleSearchRetrieval",
    "google_search_retrieval",
    "codeExecution",
    "code_execution",
    "urlContext",
    "url_context",
    "retrieval",
    "googleMaps",
    "google_maps",
    "enterpriseWebSearch",
    "enterprise_web_search",
    "computerUse",
    "computer_use",
    "fileSearch",
    "file_search",
];

const BILLED_TOOL: &str = "it uses a tool the provider bills per call";

/// The `tools` list: whether any tool is billed beyond tokens.
struct Tools(Option<&'static str>);

impl<'de> de::Deserialize<'de> for Tools {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct List;
        impl<'de> Visitor<'de> for List {
            type Value = Tools;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a list of tools")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Tools, A::Error> {
                let mut found = None;
                while let Some(Tool(billed)) = seq.next_element::<Tool>()? {
                    if billed {
                        found = Some(BILLED_TOOL);
                    }
                }
                Ok(Tools(found))
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Tools, A::Error> {
                IgnoredAny.visit_map(map).map(|_| Tools(None))
            }
            fn visit_str<E: de::Error>(self, _: &str) -> Result<Tools, E> {
                Ok(Tools(None))
            }
            fn visit_bool<E: de::Error>(self, _: bool) -> Result<Tools, E> {
                Ok(Tools(None))
            }
            fn visit_i64<E: de::Error>(self, _: i64) -> Result<Tools, E> {
                Ok(Tools(None))
            }
            fn visit_u64<E: de::Error>(self, _: u64) -> Result<Tools, E> {
                Ok(Tools(None))
            }
            fn visit_f64<E: de::Error>(self, _: f64) -> Result<Tools, E> {
                Ok(Tools(None))
            }
            fn visit_unit<E: de::Error>(self) -> Result<Tools, E> {
                Ok(Tools(None))
            }
        }
        d.deserialize_any(List)
    }
}

/// One tool: billed beyond tokens or not.
struct Tool(bool);

impl<'de> de::Deserialize<'de> for Tool {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Tool;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a tool")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Tool, A::Error> {
                let mut billed = false;
                while let Some(key) = map.next_key::<KeyName>()? {
                    let key = key.0.as_ref();
                    if key == "type" {
                        let kind = map.next_value::<Leaf>()?.text();
                        billed |= kind.is_some_and(|k| !free_tool(&k));
                    } else {
                        billed |= GEMINI_BILLED_TOOLS.contains(&key);
                        map.next_value::<IgnoredAny>()?;
                    }
                }
                Ok(Tool(billed))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Tool, A::Error> {
                IgnoredAny.visit_seq(seq).map(|_| Tool(false))
            }
            fn visit_str<E: de::Error>(self, _: &str) -> Result<Tool, E> {
                Ok(Tool(false))
            }
            fn visit_bool<E: de::Error>(self, _: bool) -> Result<Tool, E> {
                Ok(Tool(false))
            }
            fn visit_i64<E: de::Error>(self, _: i64) -> Result<Tool, E> {
                Ok(Tool(false))
            }
            fn visit_u64<E: de::Error>(self, _: u64) -> Result<Tool, E> {
                Ok(Tool(false))
            }
            fn visit_f64<E: de::Error>(self, _: f64) -> Result<Tool, E> {
                Ok(Tool(false))
            }
            fn visit_unit<E: de::Error>(self) -> Result<Tool, E> {
                Ok(Tool(false))
            }
        }
        d.deserialize_any(V)
    }
}

/// Changes the proxy makes to a request body before forwarding it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Edits {
    /// Ask an OpenAI-style stream for usage (`stream_options.include_usage: true`).
    pub include_usage: bool,
    /// Add an output cap, as this field at the top level (`max_tokens`, ...) or inside
    /// `generationConfig` (`maxOutputTokens`), with this value.
    pub output_cap: Option<(OutputField, u64)>,
}

/// Where an output cap goes, by API shape.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OutputField {
    /// A top-level field of this name.
    Top(&'static str),
    /// `generationConfig.maxOutputTokens` (Gemini).
    GenerationConfig,
}

/// A byte range to replace with new text.
struct Splice {
    at: usize,
    remove: usize,
    insert: String,
}

/// Text to insert just inside the object whose `{` is at `at`, with a comma when the object
/// already has members.
fn member(body: &[u8], at: usize, text: &str) -> Splice {
    let empty = body
        .get(at + 1..)
        .and_then(|rest| rest.iter().find(|b| !b.is_ascii_whitespace()))
        == Some(&b'}');
    let insert = if empty {
        text.to_owned()
    } else {
        format!("{text},")
    };
    Splice {
        at: at + 1,
        remove: 0,
        insert,
    }
}

/// The body with `edits` applied, or `None` when there is nothing to change. Members are
/// spliced in where they belong; nothing else of the body moves.
pub fn rewrite(body: &[u8], facts: &BodyFacts, edits: Edits) -> Result<Option<Vec<u8>>, Error> {
    let mut splices = Vec::new();
    if edits.include_usage && facts.include_usage != Some(true) {
        match facts.stream_options {
            None => splices.push(member(
                body,
                facts.object_at,
                r#""stream_options":{"include_usage":true}"#,
            )),
            // Present without `include_usage`: add it.
            Some((at, _)) if facts.include_usage.is_none() => {
                splices.push(member(body, at, r#""include_usage":true"#));
            }
            // Present and saying no: the object is rewritten (it is small).
            Some((at, len)) => {
                if len > MAX_STREAM_OPTIONS {
                    return Err(invalid(format!(
                        "stream_options is larger than {MAX_STREAM_OPTIONS} bytes"
                    )));
                }
                let text = std::str::from_utf8(&body[at..at + len])
                    .map_err(|_| invalid("stream_options is not UTF-8".into()))?;
                let mut options: serde_json::Map<String, serde_json::Value> =
                    serde_json::from_str(text).map_err(|e| invalid(e.to_string()))?;
                options.insert("include_usage".into(), true.into());
                let insert = serde_json::to_string(&options).map_err(|e| invalid(e.to_string()))?;
                splices.push(Splice {
                    at,
                    remove: len,
                    insert,
                });
            }
        }
    }
    if let Some((field, cap)) = edits.output_cap
        && facts.output_cap.is_none()
    {
        match (field, facts.generation_config) {
            (OutputField::Top(name), _) => {
                splices.push(member(body, facts.object_at, &format!(r#""{name}":{cap}"#)));
            }
            (OutputField::GenerationConfig, Some(at)) => {
                splices.push(member(body, at, &format!(r#""maxOutputTokens":{cap}"#)));
            }
            (OutputField::GenerationConfig, None) => splices.push(member(
                body,
                facts.object_at,
                &format!(r#""generationConfig":{{"maxOutputTokens":{cap}}}"#),
            )),
        }
    }
    if splices.is_empty() {
        return Ok(None);
    }
    splices.sort_by_key(|s| s.at);
    let extra: usize = splices.iter().map(|s| s.insert.len()).sum();
    let mut out = Vec::with_capacity(body.len() + extra);
    let mut from = 0;
    for splice in splices {
        out.extend_from_slice(&body[from..splice.at]);
        out.extend_from_slice(splice.insert.as_bytes());
        from = splice.at + splice.remove;
    }
    out.extend_from_slice(&body[from..]);
    Ok(Some(out))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value as Json;

    fn facts(body: &str) -> BodyFacts {
        scan(body.as_bytes())
            .expect("accepted")
            .expect("a JSON object")
    }

    #[test]
    fn the_fields_the_proxy_needs_are_read() {
        let f = facts(
            r#" {"model":"gpt-4o","messages":[{"role":"user","content":"hi"}],"stream":true,
               "max_completion_tokens":100,"n":3,"stream_options":{"include_usage":false}}"#,
        );
        assert_eq!(f.model.as_deref(), Some("gpt-4o"));
        assert!(f.stream);
        assert_eq!(f.output_cap, Some(100));
        assert_eq!(f.choices, 3);
        assert_eq!(f.include_usage, Some(false));
        assert_eq!(f.unbounded, None);

        let gemini = facts(
            r#"{"contents":[{"parts":[{"text":"hi"}]}],"generationConfig":{"maxOutputTokens":50,"candidateCount":2,"responseSchema":{"type":"object"}}}"#,
        );
        assert_eq!((gemini.output_cap, gemini.choices), (Some(50), 2));
        assert_eq!(gemini.model, None);

        let legacy = facts(
            r#"{"model":"gpt-3.5-turbo-instruct","prompt":"x","max_tokens":10,"n":2,"best_of":5}"#,
        );
        assert_eq!((legacy.output_cap, legacy.choices), (Some(10), 5));

        let odd = facts(r#"{"model":7,"n":-1,"max_tokens":"many","stream":"yes"}"#);
        assert_eq!(
            (odd.model, odd.output_cap, odd.choices, odd.stream),
            (None, None, 1, false)
        );
    }

    #[test]
    fn non_objects_carry_no_facts_and_broken_objects_are_refused() {
        for body in ["", "  ", "[1,2]", "not json", "--boundary\r\n"] {
            assert_eq!(scan(body.as_bytes()).ok(), Some(None), "{body}");
        }
        for body in [
            "{\"model\":",
            "{\"a\":1} trailing",
            "{\"a\":1,}",
            "{\"generationConfig\":{\"maxOutputTokens\":1,\"maxOutputTokens\":9}}",
        ] {
            assert_eq!(
                scan(body.as_bytes()).expect_err(body).code(),
                "invalid_body",
                "{body}"
            );
        }
    }

    #[test]
    fn a_field_given_twice_or_a_model_too_long_is_refused() {
        for body in [
            r#"{"model":"gpt-4o-mini","messages":[],"model":"o1"}"#,
            r#"{"max_tokens":1,"max_tokens":100000}"#,
            r#"{"n":1,"n":100}"#,
            r#"{"stream":false,"stream":true}"#,
        ] {
            let err = scan(body.as_bytes()).expect_err(body);
            assert_eq!(err.code(), "invalid_body", "{body}");
        }
        let long = format!(r#"{{"model":"{}"}}"#, "m".repeat(MAX_MODEL + 1));
        assert_eq!(
            scan(long.as_bytes()).expect_err("long").code(),
            "invalid_body"
        );
        let fine = format!(r#"{{"model":"{}"}}"#, "m".repeat(MAX_MODEL));
        assert!(scan(fine.as_bytes()).is_ok());
        // Keys deeper down may repeat: only the top level is read.
        assert!(scan(br#"{"messages":[{"model":1},{"model":2}]}"#).is_ok());
    }

    #[test]
    fn costs_that_cannot_be_bounded_are_named() {
        let cases = [
            (
                r#"{"tools":[{"type":"function","function":{"name":"f"}}]}"#,
                None,
            ),
            (r#"{"tools":[{"name":"f","input_schema":{}}]}"#, None),
            (
                r#"{"tools":[{"type":"bash_20250124","name":"bash"}]}"#,
                None,
            ),
            (r#"{"tools":[{"functionDeclarations":[]}]}"#, None),
            (
                r#"{"tools":[{"type":"web_search_preview"}]}"#,
                Some(BILLED_TOOL),
            ),
            (
                r#"{"tools":[{"type":"web_search_20250305","name":"web_search"}]}"#,
                Some(BILLED_TOOL),
            ),
            (r#"{"tools":[{"googleSearch":{}}]}"#, Some(BILLED_TOOL)),
            (
                r#"{"messages":[{"content":[{"type":"image_url","image_url":{"url":"https://x/y.png"}}]}]}"#,
                Some(REMOTE),
            ),
            (
                r#"{"messages":[{"content":[{"type":"image_url","image_url":{"url":"data:image/png;base64,AAAA"}}]}]}"#,
                None,
            ),
            (
                r#"{"input":[{"content":[{"type":"input_image","image_url":"http://x"}]}]}"#,
                Some(REMOTE),
            ),
            (
                r#"{"input":[{"content":[{"type":"input_file","file_id":"file-1"}]}]}"#,
                Some(FILE),
            ),
            (
                r#"{"contents":[{"parts":[{"fileData":{"fileUri":"gs://x"}}]}]}"#,
                Some(FILE),
            ),
            (
                r#"{"messages":[{"content":"see https://example.com"}]}"#,
                None,
            ),
        ];
        for (body, expected) in cases {
            assert_eq!(facts(body).unbounded, expected, "{body}");
        }
    }

    #[test]
    fn edits_are_spliced_in_and_keep_everything_else() {
        let apply = |body: &str, edits: Edits| -> Json {
            let f = facts(body);
            let out = rewrite(body.as_bytes(), &f, edits)
                .expect("rewrites")
                .unwrap_or_else(|| body.as_bytes().to_vec());
            serde_json::from_slice(&out).expect("still JSON")
        };
        let usage = Edits {
            include_usage: true,
            output_cap: None,
        };
        let out = apply(r#"{"model":"m","stream":true}"#, usage);
        assert_eq!(out["stream_options"]["include_usage"], true);
        assert_eq!(out["model"], "m");
        let out = apply(r#"{"stream_options":{"x":1},"stream":true}"#, usage);
        assert_eq!(
            out["stream_options"],
            serde_json::json!({"include_usage": true, "x": 1})
        );
        let out = apply(r#"{"stream_options":{ },"stream":true}"#, usage);
        assert_eq!(
            out["stream_options"],
            serde_json::json!({"include_usage": true})
        );
        let out = apply(
            r#"{"stream_options":{"include_usage":false,"y":2},"stream":true}"#,
            usage,
        );
        assert_eq!(
            out["stream_options"],
            serde_json::json!({"include_usage": true, "y": 2})
        );
        let body = r#"{"stream_options":{"include_usage":true}}"#;
        assert_eq!(
            rewrite(body.as_bytes(), &facts(body), usage).ok(),
            Some(None)
        );

        let cap = |field| Edits {
            include_usage: false,
            output_cap: Some((field, 4096)),
        };
        let out = apply(
            r#"{"model":"m"}"#,
            cap(OutputField::Top("max_completion_tokens")),
        );
        assert_eq!(out["max_completion_tokens"], 4096);
        let out = apply("{}", cap(OutputField::Top("max_tokens")));
        assert_eq!(out, serde_json::json!({"max_tokens": 4096}));
        let out = apply(r#"{"contents":[]}"#, cap(OutputField::GenerationConfig));
        assert_eq!(out["generationConfig"]["maxOutputTokens"], 4096);
        let out = apply(
            r#"{"generationConfig":{"temperature":0.5}}"#,
            cap(OutputField::GenerationConfig),
        );
        assert_eq!(
            out["generationConfig"],
            serde_json::json!({"maxOutputTokens": 4096, "temperature": 0.5})
        );
        // A request with its own cap keeps it.
        let body = r#"{"max_tokens":5}"#;
        assert_eq!(
            rewrite(
                body.as_bytes(),
                &facts(body),
                cap(OutputField::Top("max_tokens"))
            )
            .ok(),
            Some(None)
        );
        // Both at once.
        let both = Edits {
            include_usage: true,
            output_cap: Some((OutputField::Top("max_tokens"), 9)),
        };
        let out = apply(r#"{"stream":true,"messages":[]}"#, both);
        assert_eq!(
            (
                out["max_tokens"].clone(),
                out["stream_options"]["include_usage"].clone()
            ),
            (9.into(), true.into())
        );
    }
}
