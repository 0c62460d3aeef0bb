//! Fuzzes the address guard and the CIDR policy: arbitrary hosts and base URLs never panic, and
//! a host the guard accepts as an IPv4 literal is a public address in every spelling.
#![no_main]

use std::net::{IpAddr, Ipv4Addr};

use feen_core::limits::{self, Policy};
use feen_core::netguard::{check_base_url, is_public_host, is_public_ip};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let _ = is_public_host(&text);
    let _ = check_base_url(&format!("https://{text}/v1"), false);
    if data.len() >= 9 {
        let addr = u32::from_be_bytes([data[0], data[1], data[2], data[3]]);
        let net = u32::from_be_bytes([data[4], data[5], data[6], data[7]]);
        let prefix = data[8] % 33;
        let ip = Ipv4Addr::from(addr);
        assert_eq!(is_public_host(&addr.to_string()), is_public_ip(IpAddr::V4(ip)));
        if let Ok(network) = ipnet::Ipv4Net::new(Ipv4Addr::from(net), prefix) {
            let policy = Policy { allowed_ips: vec![network.into()], ..Policy::default() };
            let request = limits::Request { model: None, endpoint: "/", client_ip: Some(IpAddr::V4(ip)), body: b"", json: None };
            assert_eq!(limits::check_request(&policy, &request, 0).is_ok(), network.contains(&ip));
        }
    }
});
