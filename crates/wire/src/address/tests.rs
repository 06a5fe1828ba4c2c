use super::*;

const PIN: &str = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8";

fn parse(text: &str) -> Result<RelayAddress, AddressParseError> {
    text.parse()
}

fn long_host(len: usize) -> String {
    // Labels of 63 'a's separated by dots, trimmed to `len` (never ending in '.').
    let mut host = String::new();
    while host.len() < len {
        if host.len() % 64 == 63 {
            host.push('.');
        } else {
            host.push('a');
        }
    }
    assert!(!host.ends_with('.'));
    host
}

#[test]
fn parses_and_displays_each_host_kind() {
    let pin: [u8; 32] = core::array::from_fn(|i| i as u8);
    for (text, host) in [
        (
            format!("passage://{PIN}@relay.example.org:443"),
            Host::Dns(DnsName::new("relay.example.org").unwrap()),
        ),
        (
            format!("passage://{PIN}@192.0.2.7:8443"),
            Host::Ipv4(Ipv4Addr::new(192, 0, 2, 7)),
        ),
        (
            format!("passage://{PIN}@[2001:db8::1]:1"),
            Host::Ipv6("2001:db8::1".parse().unwrap()),
        ),
        (
            format!("passage://{PIN}@[::1]:65535"),
            Host::Ipv6(Ipv6Addr::LOCALHOST),
        ),
        (
            format!("passage://{PIN}@localhost:443"),
            Host::Dns(DnsName::new("localhost").unwrap()),
        ),
    ] {
        let address = parse(&text).unwrap();
        assert_eq!(address.pin().as_bytes(), &pin);
        assert_eq!(address.host(), &host);
        assert_eq!(address.to_string(), text);
        assert_eq!(RelayAddress::decode(&address.encode()).unwrap(), address);
    }
    let upper = parse(&format!("passage://{PIN}@Relay.EXAMPLE.org:443")).unwrap();
    assert_eq!(
        upper.to_string(),
        format!("passage://{PIN}@relay.example.org:443")
    );
}

#[test]
fn refuses_malformed_text() {
    use AddressParseError::*;
    let cases: &[(&str, AddressParseError)] = &[
        ("https://x@relay.example.org:443", WrongScheme),
        ("PASSAGE://x@a:1", WrongScheme),
        ("passage://relay.example.org:443", BadPin),
        ("passage://AAEC@relay.example.org:443", BadPin),
        // 43 characters whose last one carries non-zero trailing bits.
        (
            "passage://AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh9@a:1",
            BadPin,
        ),
        (
            "passage://AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh+@a:1",
            BadPin,
        ),
        (
            "passage://AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=@a:1",
            BadPin,
        ),
    ];
    for (text, want) in cases {
        assert_eq!(parse(text), Err(*want), "{text}");
    }
    for (host_port, want) in [
        ("relay.example.org", BadPort),
        ("relay.example.org:", BadPort),
        ("relay.example.org:0", BadPort),
        ("relay.example.org:65536", BadPort),
        ("relay.example.org:0443", BadPort),
        ("relay.example.org:+443", BadPort),
        ("relay.example.org:443/", BadPort),
        ("relay.example.org:100000", BadPort),
        (":443", BadHost),
        ("-relay.example.org:443", BadHost),
        ("relay-.example.org:443", BadHost),
        ("relay..example.org:443", BadHost),
        ("relay.example.org.:443", BadHost),
        ("relay_1.example.org:443", BadHost),
        ("rélay.example.org:443", BadHost),
        ("user@relay.example.org:443", BadHost),
        ("1.2.3.256:443", BadHost),
        ("1.2.3:443", BadHost),
        ("::1:443", BadHost),
        ("[::1:443", BadHost),
        ("[relay.example.org]:443", BadHost),
        ("[::1]x:443", BadHost),
        ("[fe80::1%eth0]:443", BadHost),
    ] {
        assert_eq!(
            parse(&format!("passage://{PIN}@{host_port}")),
            Err(want),
            "{host_port}"
        );
    }
}

#[test]
fn host_length_at_the_limit_and_one_past_it() {
    let host = long_host(MAX_HOST_LEN);
    assert!(parse(&format!("passage://{PIN}@{host}:443")).is_ok());
    let host = long_host(MAX_HOST_LEN + 1);
    assert_eq!(
        parse(&format!("passage://{PIN}@{host}:443")),
        Err(AddressParseError::BadHost)
    );
    // Label length.
    let label = "a".repeat(MAX_LABEL_LEN);
    assert!(DnsName::new(&format!("{label}.org")).is_ok());
    let label = "a".repeat(MAX_LABEL_LEN + 1);
    assert_eq!(DnsName::new(&format!("{label}.org")), Err(InvalidDnsName));
}

#[test]
fn text_length_at_the_limit_and_one_past_it() {
    let text = format!("passage://{PIN}@{}:65535", long_host(MAX_HOST_LEN));
    assert_eq!(text.len(), MAX_RELAY_ADDRESS_TEXT_LEN);
    assert!(parse(&text).is_ok());
    let text = format!("{text}0");
    assert_eq!(
        parse(&text),
        Err(AddressParseError::TooLong {
            len: MAX_RELAY_ADDRESS_TEXT_LEN + 1
        })
    );
}

#[test]
fn queue_address_length_at_the_limit_and_one_past_it() {
    let relay = parse(&format!("passage://{PIN}@{}:443", long_host(MAX_HOST_LEN))).unwrap();
    let queue = QueueAddress {
        relay,
        sender_id: SenderId::from_bytes([9; QUEUE_ID_LEN]),
    };
    let mut bytes = queue.encode();
    assert_eq!(bytes.len(), MAX_QUEUE_ADDRESS_LEN);
    assert_eq!(QueueAddress::decode(&bytes).unwrap(), queue);
    assert_eq!(
        RelayAddress::decode(&queue.relay.encode())
            .unwrap()
            .encode()
            .len(),
        MAX_RELAY_ADDRESS_LEN
    );
    bytes.push(0);
    assert_eq!(
        QueueAddress::decode(&bytes),
        Err(AddressDecodeError::TooLong {
            len: MAX_QUEUE_ADDRESS_LEN + 1,
            max: MAX_QUEUE_ADDRESS_LEN
        })
    );
    let mut relay_bytes = queue.relay.encode();
    relay_bytes.push(0);
    assert!(matches!(
        RelayAddress::decode(&relay_bytes),
        Err(AddressDecodeError::TooLong { .. })
    ));
}

#[test]
fn binary_decoding_is_strict() {
    let relay = parse(&format!("passage://{PIN}@relay.example.org:443")).unwrap();
    let queue = QueueAddress {
        relay,
        sender_id: SenderId::from_bytes([9; QUEUE_ID_LEN]),
    };
    let bytes = queue.encode();
    for cut in 0..bytes.len() {
        assert!(QueueAddress::decode(&bytes[..cut]).is_err(), "{cut}");
    }
    let mut upper = bytes.clone();
    upper[1 + 32 + 2] = b'R';
    assert_eq!(
        QueueAddress::decode(&upper),
        Err(AddressDecodeError::BadHost)
    );
    let mut format = bytes.clone();
    format[0] = 2;
    assert_eq!(
        QueueAddress::decode(&format),
        Err(AddressDecodeError::UnknownFormat(2))
    );
    let mut port = bytes.clone();
    let n = port.len();
    port[n - 26..n - 24].copy_from_slice(&[0, 0]);
    assert_eq!(
        QueueAddress::decode(&port),
        Err(AddressDecodeError::BadPort)
    );
}

#[test]
fn debug_hides_pin_and_host() {
    let address = parse(&format!("passage://{PIN}@198.51.100.9:443")).unwrap();
    let shown = format!(
        "{address:?} {:?}",
        QueueAddress {
            relay: address.clone(),
            sender_id: SenderId::from_bytes([1; 24])
        }
    );
    assert!(!shown.contains("198") && !shown.contains(PIN), "{shown}");
    let err = parse(&format!("passage://{PIN}@198.51.100.9:0")).unwrap_err();
    assert!(!err.to_string().contains("198"));
}
