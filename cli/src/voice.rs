//! `send-voice` and `save-voice`: a WAV file in, a WAV file out, and progress between.

use std::io::IsTerminal as _;
use std::path::Path;

use anyhow::{Context, Result, anyhow, bail};
use indicatif::{ProgressBar, ProgressStyle};
use passage_client::agent::{Agent, AgentEvent, SendReport};
use passage_voice::{Quality, VoiceNote};

use super::output::Printer;

/// Encodes a WAV file, with errors that say what to do.
pub fn encode(file: &Path, quality: Quality) -> Result<VoiceNote> {
    passage_voice::wav::encode_file(file, quality).map_err(|e| match e {
        passage_voice::VoiceError::Wav(_) => anyhow!(
            "could not read {} as a WAV file ({e}); record or convert it to WAV (PCM or float, mono or stereo)",
            file.display()
        ),
        other => anyhow!("{other}"),
    })
}

/// Sends `note`, with a progress bar on a terminal or a JSON object per chunk.
pub async fn send(
    agent: &mut Agent,
    out: &mut Printer,
    name: &str,
    note: &VoiceNote,
) -> Result<SendReport> {
    let bar = (!out.is_json() && std::io::stderr().is_terminal()).then(|| {
        let bar = ProgressBar::new(0);
        bar.set_style(
            ProgressStyle::with_template("sending voice message {bar:30} {pos}/{len} chunks")
                .unwrap_or_else(|_| ProgressStyle::default_bar()),
        );
        bar
    });
    let report = agent
        .send_voice(name, note, |event| {
            if let AgentEvent::VoiceProgress { sent, total, .. } = event {
                if let Some(bar) = &bar {
                    bar.set_length(u64::from(*total));
                    bar.set_position(u64::from(*sent));
                }
                out.event(event);
            }
        })
        .await?;
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }
    Ok(report)
}

/// Writes voice message `id` (or a unique prefix of at least 8 hex digits) of contact
/// `name` to `path`. Returns its duration and sample rate.
pub fn save(agent: &Agent, name: &str, id: &str, path: &Path) -> Result<(u32, u32)> {
    let id = id.trim().to_ascii_lowercase();
    if id.len() < 8 || !id.bytes().all(|b| b.is_ascii_hexdigit()) {
        bail!("give the message id as `receive` or `history` shows it (8 or more hex digits)");
    }
    let matches: Vec<_> = agent
        .history(name)?
        .into_iter()
        .filter(|entry| entry.voice().is_some() && entry.id.to_hex().starts_with(&id))
        .collect();
    let entry = match &matches[..] {
        [entry] => entry,
        [] => bail!("no voice message {id} in the conversation (see `passage history {name}`)"),
        _ => bail!("{id} matches several voice messages; give more digits"),
    };
    let note = agent.voice_note(name, &entry.id)?;
    let pcm = zeroize::Zeroizing::new(
        note.decode()
            .context("could not decode the voice message")?,
    );
    let rate = note.quality().sample_rate();
    passage_voice::wav::write_file(path, rate, &pcm).map_err(|e| {
        anyhow!(
            "could not write {}: {e} (an existing file is never overwritten)",
            path.display()
        )
    })?;
    Ok((note.duration_ms(), rate))
}
