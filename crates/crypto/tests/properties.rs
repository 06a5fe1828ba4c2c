//! Property tests: any delivery schedule within the limits decrypts every message
//! exactly once; codecs round-trip and never panic on arbitrary input.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::{NOW, TestRng, pair};
use passage_crypto::codec::{Reader, Writer};
use passage_crypto::padding::{pad, unpad};
use passage_crypto::ratchet::MAX_PLAINTEXT_LEN;
use passage_crypto::{Invitation, RatchetState};
use proptest::prelude::*;

#[derive(Debug, Clone)]
enum Step {
    /// One side writes a message of this length.
    Send { from_inviter: bool, len: usize },
    /// One side receives the pending message at this index (modulo the queue length).
    Deliver { to_inviter: bool, pick: usize },
    /// The pending message at this index is lost.
    Drop { to_inviter: bool, pick: usize },
    /// A delivered message comes again.
    Replay { to_inviter: bool, pick: usize },
    /// A side is stored and restored.
    Restore { inviter: bool },
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        4 => (any::<bool>(), 0..200usize).prop_map(|(from_inviter, len)| Step::Send { from_inviter, len }),
        4 => (any::<bool>(), any::<usize>()).prop_map(|(to_inviter, pick)| Step::Deliver { to_inviter, pick }),
        1 => (any::<bool>(), any::<usize>()).prop_map(|(to_inviter, pick)| Step::Drop { to_inviter, pick }),
        1 => (any::<bool>(), any::<usize>()).prop_map(|(to_inviter, pick)| Step::Replay { to_inviter, pick }),
        1 => any::<bool>().prop_map(|inviter| Step::Restore { inviter }),
    ]
}

struct Side {
    state: RatchetState,
    inbox: Vec<(Vec<u8>, Vec<u8>)>,
    delivered: Vec<Vec<u8>>,
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, .. ProptestConfig::default() })]

    #[test]
    fn any_schedule_decrypts_each_message_exactly_once(seed in any::<u64>(), steps in proptest::collection::vec(step(), 1..80)) {
        let mut rng = TestRng::new(seed);
        let p = pair(&mut rng);
        let mut sides = [
            Side { state: p.inviter, inbox: vec![], delivered: vec![] },
            Side { state: p.acceptor, inbox: vec![], delivered: vec![] },
        ];
        let mut counter = 0u32;
        for step in steps {
            match step {
                Step::Send { from_inviter, len } => {
                    let (from, to) = if from_inviter { (0, 1) } else { (1, 0) };
                    counter += 1;
                    let mut text = counter.to_be_bytes().to_vec();
                    text.resize(len.max(4), b'x');
                    let m = sides[from].state.encrypt(&text, &mut rng).unwrap();
                    sides[to].inbox.push((m, text));
                }
                Step::Deliver { to_inviter, pick } => {
                    let side = &mut sides[if to_inviter { 0 } else { 1 }];
                    if side.inbox.is_empty() { continue; }
                    let (m, text) = side.inbox.remove(pick % side.inbox.len());
                    let got = side.state.decrypt(&m, NOW, &mut rng).unwrap();
                    prop_assert_eq!(got.as_slice(), text.as_slice());
                    side.delivered.push(m);
                }
                Step::Drop { to_inviter, pick } => {
                    let side = &mut sides[if to_inviter { 0 } else { 1 }];
                    if !side.inbox.is_empty() {
                        let len = side.inbox.len();
                        side.inbox.remove(pick % len);
                    }
                }
                Step::Replay { to_inviter, pick } => {
                    let side = &mut sides[if to_inviter { 0 } else { 1 }];
                    if side.delivered.is_empty() { continue; }
                    let m = side.delivered[pick % side.delivered.len()].clone();
                    let before = postcard::to_allocvec(&side.state.snapshot()).unwrap();
                    prop_assert!(side.state.decrypt(&m, NOW, &mut rng).is_err());
                    prop_assert_eq!(postcard::to_allocvec(&side.state.snapshot()).unwrap(), before);
                }
                Step::Restore { inviter } => {
                    let side = &mut sides[if inviter { 0 } else { 1 }];
                    let bytes = postcard::to_allocvec(&side.state.snapshot()).unwrap();
                    side.state = RatchetState::from_snapshot(&postcard::from_bytes(&bytes).unwrap()).unwrap();
                }
            }
        }
        // Whatever is still in flight decrypts, in any order.
        for side in &mut sides {
            while let Some((m, text)) = side.inbox.pop() {
                let got = side.state.decrypt(&m, NOW, &mut rng).unwrap();
                prop_assert_eq!(got.as_slice(), text.as_slice());
            }
        }
    }

    #[test]
    fn padding_round_trips(data in proptest::collection::vec(any::<u8>(), 0..=MAX_PLAINTEXT_LEN)) {
        let padded = pad(&data, MAX_PLAINTEXT_LEN + 2).unwrap();
        prop_assert_eq!(padded.len(), MAX_PLAINTEXT_LEN + 2);
        prop_assert_eq!(unpad(&padded).unwrap(), data.as_slice());
    }

    #[test]
    fn codec_round_trips(a in any::<u8>(), b in any::<u16>(), c in any::<u32>(), d in any::<u64>(),
                         short in proptest::collection::vec(any::<u8>(), 0..=255),
                         long in proptest::collection::vec(any::<u8>(), 0..=2000)) {
        let mut w = Writer::new();
        w.put_u8(a); w.put_u16(b); w.put_u32(c); w.put_u64(d);
        w.put_bytes_u8(&short).unwrap();
        w.put_bytes_u16(&long).unwrap();
        let bytes = w.into_vec();
        let mut r = Reader::new(&bytes);
        prop_assert_eq!(r.u8().unwrap(), a);
        prop_assert_eq!(r.u16().unwrap(), b);
        prop_assert_eq!(r.u32().unwrap(), c);
        prop_assert_eq!(r.u64().unwrap(), d);
        prop_assert_eq!(r.bytes_u8(255).unwrap(), short.as_slice());
        prop_assert_eq!(r.bytes_u16(2000).unwrap(), long.as_slice());
        prop_assert!(r.finish().is_ok());
    }

    #[test]
    fn invitation_decoding_never_panics(text in ".{0,3000}", bytes in proptest::collection::vec(any::<u8>(), 0..2000)) {
        let _ = Invitation::from_link(&text);
        let _ = Invitation::from_link(&format!("passage:i1.{text}"));
        let _ = Invitation::from_bytes(&bytes);
    }

    #[test]
    fn invitations_round_trip(seed in any::<u64>(), queue in proptest::collection::vec(any::<u8>(), 0..=320), expires in any::<u64>()) {
        let mut rng = TestRng::new(seed);
        let pending = passage_crypto::PendingInvitation::create(
            passage_crypto::Identity::generate(&mut rng), &queue, expires, &mut rng).unwrap();
        let back = Invitation::from_link(&pending.invitation().to_link()).unwrap();
        prop_assert_eq!(&back, pending.invitation());
        prop_assert_eq!(back.queue(), queue.as_slice());
        prop_assert_eq!(back.expires_at(), expires);
    }
}
