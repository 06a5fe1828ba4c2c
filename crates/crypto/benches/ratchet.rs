//! `cargo bench -p passage-crypto --bench ratchet`: messages per second for encrypt
//! and decrypt of a full padded message in an established session, and handshakes
//! per second. Criterion prints each figure as elements (messages, handshakes) per
//! second; the `primitives` group gives the baseline of the same run (one bare
//! ChaCha20-Poly1305 seal of the same bytes and one X25519 exchange) so ratios can be
//! read off whatever machine runs it.

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use getrandom::SysRng;
use passage_crypto::primitives::{DhPublic, DhSecret, Secret32, chacha_seal};
use passage_crypto::ratchet::MAX_PLAINTEXT_LEN;
use passage_crypto::{ENVELOPE_LEN, Identity, PendingInvitation, RatchetState, accept};
use rand_core::UnwrapErr;

const NOW: u64 = 1_800_000_000;

fn session(rng: &mut UnwrapErr<SysRng>) -> (RatchetState, RatchetState) {
    let pending = PendingInvitation::create(Identity::generate(rng), b"queue", NOW + 100, rng)
        .unwrap_or_else(|e| unreachable!("{e}"));
    let accepted = accept(
        pending.invitation(),
        &Identity::generate(rng),
        b"hi",
        NOW,
        rng,
    )
    .unwrap_or_else(|e| unreachable!("{e}"));
    let done = pending
        .complete(&accepted.message, NOW, NOW, rng)
        .unwrap_or_else(|e| unreachable!("{}", e.error));
    (done.state, accepted.state)
}

fn bench(c: &mut Criterion) {
    let mut rng = UnwrapErr(SysRng);
    let plaintext = vec![0x42u8; MAX_PLAINTEXT_LEN];

    let mut group = c.benchmark_group("primitives");
    group.throughput(Throughput::Elements(1));
    let key = Secret32::from_bytes([7; 32]);
    let body = vec![0u8; ENVELOPE_LEN - 16];
    group.bench_function("chacha20poly1305_seal_envelope", |b| {
        b.iter(|| chacha_seal(&key, &[0; 12], &[], black_box(&body)))
    });
    let secret = DhSecret::generate(&mut rng);
    let public: DhPublic = DhSecret::generate(&mut rng).public_key();
    group.bench_function("x25519", |b| {
        b.iter(|| secret.diffie_hellman(black_box(&public)))
    });
    group.finish();

    let mut group = c.benchmark_group("ratchet");
    group.throughput(Throughput::Elements(1));
    let (mut sender, _) = session(&mut rng);
    group.bench_function("encrypt_full_message", |b| {
        b.iter(|| sender.encrypt(black_box(&plaintext), &mut rng))
    });
    group.bench_function("decrypt_full_message", |b| {
        b.iter_custom(|iters| {
            let mut rng = UnwrapErr(SysRng);
            let (mut tx, mut rx) = session(&mut rng);
            let messages: Vec<_> = (0..iters)
                .map(|_| tx.encrypt(&plaintext, &mut rng).unwrap_or_default())
                .collect();
            let start = Instant::now();
            for m in &messages {
                let _ = black_box(rx.decrypt(m, NOW, &mut rng));
            }
            start.elapsed()
        })
    });
    group.bench_function("round_trip_with_dh_step", |b| {
        // Each message answers the previous one, so every decrypt is a DH ratchet step.
        let (mut a, mut bob) = session(&mut rng);
        b.iter(|| {
            let m = a.encrypt(&plaintext, &mut rng).unwrap_or_default();
            let _ = bob.decrypt(&m, NOW, &mut rng);
            std::mem::swap(&mut a, &mut bob);
        })
    });
    group.finish();

    let mut group = c.benchmark_group("handshake");
    group.throughput(Throughput::Elements(1));
    group.measurement_time(Duration::from_secs(5));
    group.bench_function("invite_accept_complete", |b| b.iter(|| session(&mut rng)));
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
