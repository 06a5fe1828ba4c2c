//! The SOS: one command reaches every contact marked trusted, and no other, as its own
//! event type; what was queued before it goes after it.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::{client, connect, has, has_text, objects, ok, one_line_error, receive_until, send};
use passage_e2e::TestRelay;

#[test]
fn an_sos_reaches_every_trusted_contact_and_no_other() {
    let relay = TestRelay::start(None).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let amal = client(&dir.path().join("amal"), "heliotrope ferry anchor 2291");
    let yusuf = client(&dir.path().join("yusuf"), "obsidian wheelbarrow gale 8846");
    let rosa = client(&dir.path().join("rosa"), "cardamom lighthouse pebble 0357");
    let lena = client(&dir.path().join("lena"), "juniper avalanche teapot 5120");
    let address = relay.address().to_string();
    for who in [&amal, &yusuf, &rosa, &lena] {
        ok(who, &["init", "--relay", &address]);
    }
    connect(&amal, &[], "Yusuf", &yusuf, "Amal");
    connect(&amal, &[], "Rosa", &rosa, "Amal");
    connect(&amal, &[], "Lena", &lena, "Amal");

    // Nobody trusted yet: a clear error, nothing sent.
    let refused = amal.run(&["sos", "help"]).unwrap();
    one_line_error(&refused, "no trusted contact");
    assert!(
        refused.stderr.contains("passage trust NAME"),
        "{}",
        refused.stderr
    );

    ok(&amal, &["trust", "Yusuf"]);
    ok(&amal, &["trust", "Rosa"]);
    ok(&amal, &["trust", "Lena"]);
    ok(&amal, &["trust", "Lena", "--off"]);
    let contacts = objects(&ok(&amal, &["contacts", "--json"]));
    let trusted: Vec<_> = contacts
        .iter()
        .filter(|c| c["trusted"] == true)
        .map(|c| c["contact"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(trusted, ["Rosa", "Yusuf"]);

    let sent = objects(&ok(&amal, &["sos", "taken at the border post", "--json"]));
    let to: Vec<_> = sent
        .iter()
        .map(|o| o["contact"].as_str().unwrap())
        .collect();
    assert_eq!(to, ["Rosa", "Yusuf"], "{sent:?}");
    assert!(
        sent.iter()
            .all(|o| o["type"] == "sent" && o["status"] == "sent")
    );

    for who in [&yusuf, &rosa] {
        let got = receive_until(who, "the SOS", |o| {
            o.iter().any(|e| {
                e["type"] == "sos"
                    && e["contact"] == "Amal"
                    && e["text"] == "taken at the border post"
            })
        });
        assert!(
            !has_text(&got, "Amal", "taken at the border post"),
            "not an ordinary message"
        );
        let history = objects(&ok(who, &["history", "Amal", "--json"]));
        assert!(history.iter().any(|e| e["type"] == "sos"), "{history:?}");
        let text = ok(who, &["history", "Amal"]).stdout;
        assert!(text.contains("SOS"), "{text}");
    }
    // Lena, not trusted, gets nothing; an ordinary message after still arrives.
    send(&amal, &[], "Lena", "just a text");
    let got = receive_until(&lena, "the text", |o| has_text(o, "Amal", "just a text"));
    assert!(!got.iter().any(|e| e["type"] == "sos"), "{got:?}");
    assert!(!has(&got, "sos", "Amal"));
}
