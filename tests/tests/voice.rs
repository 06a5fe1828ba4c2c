//! Voice messages through real relay processes and the real CLI: speech-like WAV files
//! at 8, 16, 44.1 and 48 kHz, mono and stereo, sent with `send-voice`, received,
//! saved back with `save-voice`: the saved audio lasts as long as the recording (within
//! 1 %) and its loudness contour matches (envelope correlation above 0.95 at 12 kbit/s,
//! 0.90 at 6 kbit/s: see `passage_voice::signal`). A transfer that the relay takes only
//! in part (its queue quota), cut by a relay killed with `kill -9` in the middle,
//! completes later without a chunk sent twice; a recording past five minutes is refused
//! with a clear error; and afterwards the seized-device scan finds no WAV, Ogg or Opus
//! signature and no marker in anything the clients wrote.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::path::Path;

use common::{client, connect, objects, ok, one_line_error, receive_until, start};
use passage_e2e::CliClient;
use passage_e2e::TestRelay;
use passage_voice::signal::{envelope_correlation, mono, speech_like};
use serde_json::Value;

/// Amal and Yusuf, each with a profile on `relay`, connected.
fn connected(dir: &Path, relay: &passage_wire::RelayAddress) -> (CliClient, CliClient) {
    let address = relay.to_string();
    let amal = client(&dir.join("amal"), "lanternfish quarry hollow 6620");
    let yusuf = client(&dir.join("yusuf"), "seashell picnic compass 4812");
    ok(&amal, &["init", "--relay", &address]);
    ok(&yusuf, &["init", "--relay", &address]);
    connect(&amal, &[], "Yusuf", &yusuf, "Amal");
    receive_until(&amal, "nothing", |_| true);
    (amal, yusuf)
}

fn write_wav(path: &Path, rate: u32, channels: u16, samples: &[f32]) {
    let spec = hound::WavSpec {
        channels,
        sample_rate: rate,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    let mut writer = hound::WavWriter::create(path, spec).unwrap();
    for &s in samples {
        writer.write_sample((s * 32_767.0) as i16).unwrap();
    }
    writer.finalize().unwrap();
}

fn read_wav(path: &Path) -> (Vec<f32>, u32) {
    let mut reader = hound::WavReader::open(path).unwrap();
    assert_eq!(reader.spec().channels, 1);
    let rate = reader.spec().sample_rate;
    let samples = reader
        .samples::<i16>()
        .map(|s| f32::from(s.unwrap()) / 32_768.0)
        .collect();
    (samples, rate)
}

/// `send-voice --json`: (the progress objects, the final `sent` object).
fn send_voice(client: &CliClient, name: &str, file: &Path, bitrate: &str) -> (Vec<Value>, Value) {
    let out = ok(
        client,
        &[
            "send-voice",
            name,
            file.to_str().unwrap(),
            "--bitrate",
            bitrate,
            "--json",
        ],
    );
    let mut all = objects(&out);
    let sent = all.pop().unwrap();
    assert_eq!(sent["type"], "sent", "{sent}");
    assert!(all.iter().all(|o| o["type"] == "progress"), "{all:?}");
    (all, sent)
}

fn receive_voice(client: &CliClient, from: &str, id: &str) -> Value {
    let got = receive_until(client, "the voice message", |o| {
        o.iter().any(|o| o["type"] == "voice" && o["id"] == id)
    });
    got.into_iter()
        .find(|o| o["type"] == "voice" && o["id"] == id && o["contact"] == from)
        .unwrap()
}

#[test]
fn voice_messages_at_every_common_rate_are_heard_as_recorded() {
    let relay = start();
    let dir = tempfile::tempdir().unwrap();
    let (amal, yusuf) = connected(dir.path(), relay.address());

    let cases = [
        (8_000, 1, "12k", 0.95),
        (16_000, 2, "12k", 0.95),
        (44_100, 1, "16k", 0.95),
        (48_000, 2, "6k", 0.90),
    ];
    for (rate, channels, bitrate, threshold) in cases {
        let input = speech_like(rate, channels, 5.0);
        let wav = dir.path().join(format!("in-{rate}-{channels}.wav"));
        write_wav(&wav, rate, channels, &input);
        let (progress, sent) = send_voice(&amal, "Yusuf", &wav, bitrate);
        assert_eq!(sent["status"], "sent");
        let total = progress[0]["total"].as_u64().unwrap();
        assert_eq!(
            progress.len() as u64,
            total,
            "one progress object per chunk"
        );
        let id = sent["id"].as_str().unwrap();
        let voice = receive_voice(&yusuf, "Amal", id);
        let duration = voice["duration_ms"].as_u64().unwrap() as f64 / 1000.0;
        assert!((duration - 5.0).abs() < 0.05, "{rate} Hz: {duration} s");

        let out = dir.path().join(format!("out-{rate}-{channels}.wav"));
        ok(
            &yusuf,
            &["save-voice", "Amal", &id[..8], out.to_str().unwrap()],
        );
        let (saved, saved_rate) = read_wav(&out);
        let seconds = saved.len() as f64 / f64::from(saved_rate);
        assert!(
            (seconds - 5.0).abs() / 5.0 < 0.01,
            "{rate} Hz: saved {seconds} s"
        );
        let r = envelope_correlation(&mono(&input, channels), rate, &saved, saved_rate);
        eprintln!("{rate} Hz × {channels} at {bitrate}: {total} chunks, envelope r = {r:.4}");
        assert!(r > threshold, "{rate} Hz × {channels}: r = {r}");
        // An existing file is never overwritten.
        let again = yusuf
            .run(&["save-voice", "Amal", id, out.to_str().unwrap()])
            .unwrap();
        one_line_error(&again, "never overwritten");
        std::fs::remove_file(&out).unwrap();
        // The sender sees it delivered, the history shows it on both sides.
        receive_until(&amal, "the receipt", |o| {
            o.iter().any(|o| o["type"] == "receipt" && o["id"] == id)
        });
        let history = objects(&ok(&yusuf, &["history", "Amal", "--json"]));
        assert!(
            history
                .iter()
                .any(|e| e["type"] == "voice" && e["id"] == id)
        );
    }

    // Past five minutes: refused before anything is queued.
    let long = dir.path().join("long.wav");
    write_wav(&long, 8_000, 1, &vec![0.0; 8_000 * 301]);
    let out = amal
        .run(&["send-voice", "Yusuf", long.to_str().unwrap()])
        .unwrap();
    one_line_error(&out, "longer than 300 seconds");
    let history = objects(&ok(&amal, &["history", "Yusuf", "--json"]));
    assert_eq!(
        history.iter().filter(|e| e["type"] == "voice").count(),
        cases.len()
    );

    // The seized-device scan: no audio signature and no marker anywhere they wrote.
    for who in [&amal, &yusuf] {
        let files = passage_e2e::scan::files_under(&who.vault()).unwrap();
        for file in files {
            let bytes = std::fs::read(&file).unwrap();
            for signature in [
                &b"RIFF"[..],
                b"WAVE",
                b"OggS",
                b"OpusHead",
                b"OpusTags",
                b"Amal",
                b"Yusuf",
            ] {
                assert!(
                    !bytes.windows(signature.len()).any(|w| w == signature),
                    "{} holds {:?}",
                    file.display(),
                    String::from_utf8_lossy(signature)
                );
            }
        }
        for place in [who.home(), who.tmp()] {
            assert!(passage_e2e::scan::files_under(&place).unwrap().is_empty());
        }
    }
}

/// The relay takes only part of the message (its queue holds 8), is killed with
/// `kill -9` and restarted in the middle; the rest goes out as room is made, from where
/// it stopped, and the contact gets the message once, whole.
#[test]
fn an_interrupted_voice_transfer_completes_without_resending() {
    let mut relay = TestRelay::start_restartable(Some("queue_quota = 8\n")).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (amal, yusuf) = connected(dir.path(), relay.address());

    let input = speech_like(16_000, 1, 40.0);
    let wav = dir.path().join("in.wav");
    write_wav(&wav, 16_000, 1, &input);
    let (progress, sent) = send_voice(&amal, "Yusuf", &wav, "12k");
    assert_eq!(sent["status"], "queued", "the queue holds only 8");
    let total = progress
        .first()
        .map(|p| p["total"].as_u64().unwrap())
        .unwrap();
    assert!(total > 8, "{total} chunks");
    let mut reported = progress.len() as u64;
    assert_eq!(reported, 8);

    relay.process.kill().unwrap();
    relay.process.restart_same_port().unwrap();

    // Yusuf drains the queue, Amal sends on; bounded rounds.
    let id = sent["id"].as_str().unwrap().to_owned();
    let mut voice = None;
    for _ in 0..40 {
        let got = objects(&ok(&yusuf, &["receive", "--wait", "1", "--json"]));
        if let Some(v) = got.iter().find(|o| o["type"] == "voice") {
            voice = Some(v.clone());
            break;
        }
        let more = objects(&ok(&amal, &["receive", "--wait", "1", "--json"]));
        reported += more.iter().filter(|o| o["type"] == "progress").count() as u64;
    }
    let voice = voice.expect("the voice message arrived");
    assert_eq!(voice["id"], id.as_str());
    // Every chunk was reported stored once: none was sent twice after its OK.
    let more = objects(&ok(&amal, &["receive", "--wait", "1", "--json"]));
    reported += more.iter().filter(|o| o["type"] == "progress").count() as u64;
    assert_eq!(reported, total, "chunks reported stored");
    let history = objects(&ok(&yusuf, &["history", "Amal", "--json"]));
    assert_eq!(history.iter().filter(|e| e["type"] == "voice").count(), 1);
}
