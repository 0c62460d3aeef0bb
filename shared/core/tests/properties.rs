//! Property tests for the parsers that see untrusted bytes: the usage parser, the usage filter,
//! the token parser, the address guard and the CIDR policy. They run in CI with every test run.

use std::net::{IpAddr, Ipv4Addr};

use feen_core::crypto::token::{self, TokenKind};
use feen_core::inject::UsageChunkFilter;
use feen_core::limits::{self, Policy};
use feen_core::netguard::{is_public_host, is_public_ip};
use feen_core::usage::{Format, UsageParser};
use proptest::prelude::*;

fn parse(format: Format, bytes: &[u8], cuts: &[usize]) -> (Option<u64>, Option<u64>) {
    let mut parser = UsageParser::new(format);
    let mut at = 0;
    for cut in cuts {
        let end = (*cut).clamp(at, bytes.len());
        parser.feed(&bytes[at..end]);
        at = end;
    }
    parser.feed(&bytes[at..]);
    let usage = parser.finish();
    (usage.input_tokens, usage.output_tokens)
}

fn stream(input: u64, output: u64, words: &[String]) -> String {
    let mut body = String::new();
    for w in words {
        body.push_str(&format!(
            "data: {}\n\n",
            serde_json::json!({"choices": [{"delta": {"content": w}}]})
        ));
    }
    body.push_str(&format!(
        "data: {}\n\ndata: [DONE]\n\n",
        serde_json::json!({"choices": [], "usage": {"prompt_tokens": input, "completion_tokens": output}})
    ));
    body
}

proptest! {
    #[test]
    fn the_usage_parser_never_panics_on_arbitrary_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..2048), cut in 0usize..2048) {
        for format in [Format::Json, Format::Sse, Format::Other] {
            let _ = parse(format, &bytes, &[cut]);
        }
    }

    #[test]
    fn stream_usage_does_not_depend_on_how_the_bytes_are_cut(
        input in 0u64..1_000_000,
        output in 0u64..1_000_000,
        words in proptest::collection::vec("[a-zA-Z \\n\\\\\"]{0,12}", 0..8),
        mut cuts in proptest::collection::vec(0usize..4096, 0..12),
    ) {
        let body = stream(input, output, &words);
        cuts.sort_unstable();
        prop_assert_eq!(parse(Format::Sse, body.as_bytes(), &cuts), (Some(input), Some(output)));
    }

    #[test]
    fn the_usage_filter_removes_only_the_usage_whatever_the_cuts(
        words in proptest::collection::vec("[a-z ]{1,8}", 1..6),
        mut cuts in proptest::collection::vec(0usize..2048, 0..10),
    ) {
        let body = stream(5, 7, &words);
        let expected: String = body.split_inclusive("\n\n").filter(|e| !e.contains("\"usage\"")).collect();
        cuts.sort_unstable();
        let mut filter = UsageChunkFilter::new();
        let (mut out, mut at) = (Vec::new(), 0);
        for cut in cuts {
            let end = cut.clamp(at, body.len());
            out.extend_from_slice(&filter.push(&body.as_bytes()[at..end]));
            at = end;
        }
        out.extend_from_slice(&filter.push(&body.as_bytes()[at..]));
        out.extend_from_slice(&filter.finish());
        prop_assert_eq!(String::from_utf8_lossy(&out).into_owned(), expected);
    }

    #[test]
    fn tokens_verify_exactly_when_untouched(random in any::<[u8; 32]>(), at in 0usize..60, byte in any::<u8>()) {
        let (token, hash) = token::issue(TokenKind::Share, random);
        prop_assert_eq!(token::verify(TokenKind::Share, token.expose()), Some(hash));
        let mut bytes = token.expose().as_bytes().to_vec();
        let at = at % bytes.len();
        if bytes[at] != byte {
            bytes[at] = byte;
            let mutated = String::from_utf8_lossy(&bytes).into_owned();
            prop_assert_eq!(token::verify(TokenKind::Share, &mutated), None);
        }
    }

    #[test]
    fn the_token_parser_never_panics(text in ".{0,80}") {
        let _ = token::verify(TokenKind::Share, &text);
        let _ = token::verify(TokenKind::Pat, &text);
    }

    #[test]
    fn every_spelling_of_an_ipv4_address_gets_the_same_verdict(value in any::<u32>()) {
        let ip = Ipv4Addr::from(value);
        let verdict = is_public_ip(IpAddr::V4(ip));
        let [a, b, c, d] = ip.octets();
        let spellings = [
            ip.to_string(),
            value.to_string(),
            format!("0x{value:x}"),
            format!("0{value:o}"),
            format!("{a}.{}", (u32::from(b) << 16) | (u32::from(c) << 8) | u32::from(d)),
            format!("{a}.{b}.{}", (u32::from(c) << 8) | u32::from(d)),
            format!("0x{a:x}.0{b:o}.{c}.0x{d:X}"),
            format!("[::ffff:{ip}]"),
        ];
        for spelling in spellings {
            prop_assert_eq!(is_public_host(&spelling), verdict, "{}", spelling);
        }
    }

    #[test]
    fn the_host_guard_never_panics(host in ".{0,64}") {
        let _ = is_public_host(&host);
        let _ = feen_core::netguard::check_base_url(&format!("https://{host}/"), false);
    }

    #[test]
    fn cidr_policies_admit_exactly_the_addresses_inside(net in any::<u32>(), prefix in 0u8..=32, addr in any::<u32>()) {
        let network = ipnet::Ipv4Net::new(Ipv4Addr::from(net), prefix).map(|n| n.trunc()).expect("prefix <= 32");
        let mask = if prefix == 0 { 0 } else { u32::MAX << (32 - prefix) };
        let inside = (addr & mask) == (u32::from(network.network()) & mask);
        let policy = Policy { allowed_ips: vec![network.into()], ..Policy::default() };
        let request = limits::Request {
            model: None, endpoint: "/", client_ip: Some(IpAddr::V4(Ipv4Addr::from(addr))), body_len: 0, facts: None,
        };
        prop_assert_eq!(limits::check_request(&policy, &request, 0).is_ok(), inside);
    }

    #[test]
    fn the_body_scan_never_panics_and_only_objects_have_facts(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        if let Ok(Some(_)) = feen_core::scan::scan(&bytes) {
            prop_assert!(serde_json::from_slice::<serde_json::Value>(&bytes).is_ok_and(|v| v.is_object()));
        }
    }

    #[test]
    fn rewritten_bodies_are_the_same_json_plus_the_edits(
        fields in proptest::collection::btree_map("[a-z_]{1,12}", any::<u32>(), 0..6),
        stream in any::<bool>(),
        cap in 1u64..100_000,
    ) {
        let mut doc = serde_json::Map::new();
        for (k, v) in &fields {
            if !["stream", "stream_options", "max_tokens", "n", "model", "best_of", "max_output_tokens", "max_completion_tokens", "tools"].contains(&k.as_str()) {
                doc.insert(k.clone(), (*v).into());
            }
        }
        doc.insert("stream".into(), stream.into());
        let body = serde_json::to_vec(&serde_json::Value::Object(doc.clone())).expect("json");
        let facts = feen_core::scan::scan(&body).expect("accepted").expect("an object");
        let edits = feen_core::scan::Edits {
            include_usage: true,
            output_cap: Some((feen_core::scan::OutputField::Top("max_tokens"), cap)),
        };
        let out = feen_core::scan::rewrite(&body, &facts, edits).expect("rewrites").expect("changed");
        let mut expected = doc;
        expected.insert("max_tokens".into(), cap.into());
        expected.insert("stream_options".into(), serde_json::json!({"include_usage": true}));
        let got: serde_json::Value = serde_json::from_slice(&out).expect("still JSON");
        prop_assert_eq!(got, serde_json::Value::Object(expected));
    }

    #[test]
    fn a_normalised_path_normalises_to_itself_and_never_climbs(raw in "(/(\\.|\\.\\.|%2[eEfF]|[a-z]{1,3}|%41|;|:)){1,6}/?") {
        if let Ok(path) = feen_core::path::normalise(&raw) {
            prop_assert_eq!(feen_core::path::normalise(&path).ok(), Some(path.clone()));
            prop_assert!(path.split('/').all(|seg| seg != "." && seg != ".."));
            prop_assert!(!path.to_ascii_lowercase().contains("%2e") && !path.to_ascii_lowercase().contains("%2f"));
        }
    }
}
