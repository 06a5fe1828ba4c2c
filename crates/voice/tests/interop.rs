//! What Passage encodes, another Opus implementation decodes: the note's packets, put
//! in an Ogg Opus file (RFC 7845) by the test, are decoded by `opusdec` (libopus's
//! command-line tool, Debian's opus-tools, which the test command installs), and the
//! result lasts as long and sounds like the original by the measure of `codec.rs`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::process::Command;

use common::{envelope_correlation, floats, speech_like};
use ogg::writing::{PacketWriteEndInfo, PacketWriter};
use passage_voice::{Quality, VoiceEncoder, VoiceNote};

/// An Ogg Opus stream of `note` (granule positions at 48 kHz, as RFC 7845 says).
fn ogg_opus(note: &VoiceNote) -> Vec<u8> {
    let to_48k = 48_000 / note.quality().sample_rate() as u64;
    let mut writer = PacketWriter::new(Vec::new());
    let serial = 0x5041_5353;
    let mut head = b"OpusHead".to_vec();
    head.push(1); // version
    head.push(1); // channels
    head.extend_from_slice(&((note.pre_skip() as u64 * to_48k) as u16).to_le_bytes());
    head.extend_from_slice(&note.quality().sample_rate().to_le_bytes());
    head.extend_from_slice(&0i16.to_le_bytes()); // output gain
    head.push(0); // mapping family
    writer
        .write_packet(head, serial, PacketWriteEndInfo::EndPage, 0)
        .unwrap();
    let mut tags = b"OpusTags".to_vec();
    tags.extend_from_slice(&4u32.to_le_bytes());
    tags.extend_from_slice(b"test");
    tags.extend_from_slice(&0u32.to_le_bytes());
    writer
        .write_packet(tags, serial, PacketWriteEndInfo::EndPage, 0)
        .unwrap();
    let frame_48k = note.quality().frame_samples() as u64 * to_48k;
    let end = (note.pre_skip() as u64 + note.samples() as u64) * to_48k;
    let count = note.packets().len();
    for (i, packet) in note.packets().iter().enumerate() {
        let last = i + 1 == count;
        let granule = if last {
            end
        } else {
            (i as u64 + 1) * frame_48k
        };
        let info = if last {
            PacketWriteEndInfo::EndStream
        } else {
            PacketWriteEndInfo::NormalPacket
        };
        writer
            .write_packet(packet.clone(), serial, info, granule)
            .unwrap();
    }
    writer.into_inner()
}

#[test]
fn opusdec_decodes_what_passage_encodes() {
    let opusdec = which("opusdec").unwrap_or_else(|| {
        panic!("opusdec not found: install Debian's opus-tools (the README's test command does)")
    });
    let dir = tempfile::tempdir().unwrap();
    for quality in [Quality::Low, Quality::Normal, Quality::High] {
        let input = speech_like(48_000, 1, 5.0);
        let mut encoder = VoiceEncoder::new(48_000, 1, quality).unwrap();
        encoder.push(&input).unwrap();
        let note = encoder.finish().unwrap();
        let ogg = dir.path().join(format!("{}.opus", quality.name()));
        let wav = dir.path().join(format!("{}.wav", quality.name()));
        std::fs::write(&ogg, ogg_opus(&note)).unwrap();
        let out = Command::new(&opusdec)
            .arg("--quiet")
            .args(["--rate", "48000"])
            .arg(&ogg)
            .arg(&wav)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let mut reader = hound::WavReader::open(&wav).unwrap();
        assert_eq!(reader.spec().channels, 1);
        let rate = reader.spec().sample_rate;
        let decoded: Vec<i16> = reader.samples::<i16>().map(Result::unwrap).collect();
        let seconds = decoded.len() as f32 / rate as f32;
        assert!(
            (seconds - 5.0).abs() / 5.0 < 0.01,
            "{}: {seconds} s",
            quality.name()
        );
        let r = envelope_correlation(&input, 48_000, &floats(&decoded), rate);
        eprintln!(
            "{}: opusdec {seconds:.3} s, envelope r = {r:.4}",
            quality.name()
        );
        assert!(r > 0.9, "{}: r = {r}", quality.name());
    }
}

fn which(program: &str) -> Option<std::path::PathBuf> {
    std::env::var_os("PATH")?
        .to_str()?
        .split(':')
        .map(|dir| std::path::Path::new(dir).join(program))
        .find(|path| path.is_file())
}
