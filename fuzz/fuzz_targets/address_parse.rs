//! Arbitrary text into the `passage://` parser and arbitrary bytes into the binary
//! address decoders. Whatever parses must print back to text that parses to the same
//! address, and round-trip through the binary form.
#![no_main]

use libfuzzer_sys::fuzz_target;
use passage_wire::RelayAddress;
use passage_wire_fuzz::check_addresses;

fuzz_target!(|data: &[u8]| {
    check_addresses(data);
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    for candidate in [
        text.to_owned(),
        format!("passage://AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8@{text}"),
    ] {
        if let Ok(address) = candidate.parse::<RelayAddress>() {
            let printed = address.to_string();
            assert_eq!(printed.parse::<RelayAddress>().unwrap(), address);
            assert_eq!(RelayAddress::decode(&address.encode()).unwrap(), address);
        }
    }
});
