//! A streaming mono resampler to the codec's rate that keeps the signal's timing:
//! its delay is dropped at the start and its tail flushed at the end, so `n` input
//! samples give `round(n · out / in)` output samples, aligned with the input.

use rubato::{FftFixedInOut, Resampler};

use crate::VoiceError;

/// Input frames handed to the FFT resampler at a time (it rounds to what the ratio
/// needs).
const CHUNK: usize = 1024;

pub(crate) struct MonoResampler {
    inner: Option<FftFixedInOut<f32>>,
    pending: Vec<f32>,
    /// Output samples still to drop: the resampler's delay.
    drop_front: usize,
    taken_in: u64,
    given_out: u64,
    in_rate: u32,
    out_rate: u32,
}

impl MonoResampler {
    pub(crate) fn new(in_rate: u32, out_rate: u32) -> Result<Self, VoiceError> {
        let inner = if in_rate == out_rate {
            None
        } else {
            Some(
                FftFixedInOut::new(in_rate as usize, out_rate as usize, CHUNK, 1)
                    .map_err(|e| VoiceError::Resample(e.to_string()))?,
            )
        };
        let drop_front = inner.as_ref().map_or(0, Resampler::output_delay);
        Ok(Self {
            inner,
            pending: Vec::new(),
            drop_front,
            taken_in: 0,
            given_out: 0,
            in_rate,
            out_rate,
        })
    }

    /// Resamples what can be of `input` (plus what was left over), appending to `out`.
    pub(crate) fn push(&mut self, input: &[f32], out: &mut Vec<f32>) -> Result<(), VoiceError> {
        self.taken_in += input.len() as u64;
        let Some(inner) = self.inner.as_mut() else {
            out.extend_from_slice(input);
            self.given_out += input.len() as u64;
            return Ok(());
        };
        self.pending.extend_from_slice(input);
        let mut used = 0;
        while self.pending.len() - used >= inner.input_frames_next() {
            let need = inner.input_frames_next();
            let chunk = [&self.pending[used..used + need]];
            let result = inner
                .process(&chunk, None)
                .map_err(|e| VoiceError::Resample(e.to_string()))?;
            used += need;
            emit(&mut self.drop_front, &mut self.given_out, &result[0], out);
        }
        self.pending.drain(..used);
        Ok(())
    }

    /// Flushes the tail: everything still inside the resampler, cut to the exact length.
    pub(crate) fn finish(mut self, out: &mut Vec<f32>) -> Result<(), VoiceError> {
        let expected = (self.taken_in * u64::from(self.out_rate) + u64::from(self.in_rate) / 2)
            / u64::from(self.in_rate);
        if let Some(mut inner) = self.inner.take() {
            let mut pending = core::mem::take(&mut self.pending);
            // Bounded: each round yields at least one chunk of output.
            for _ in 0..64 {
                if self.given_out >= expected {
                    break;
                }
                let result = if pending.is_empty() {
                    inner.process_partial(None::<&[Vec<f32>]>, None)
                } else {
                    inner.process_partial(Some(&[core::mem::take(&mut pending)]), None)
                }
                .map_err(|e| VoiceError::Resample(e.to_string()))?;
                emit(&mut self.drop_front, &mut self.given_out, &result[0], out);
            }
        }
        let extra = self.given_out.saturating_sub(expected) as usize;
        out.truncate(out.len().saturating_sub(extra));
        Ok(())
    }
}

/// Appends resampled `samples` to `out`, first dropping what is left of the delay.
fn emit(drop_front: &mut usize, given_out: &mut u64, samples: &[f32], out: &mut Vec<f32>) {
    let skip = (*drop_front).min(samples.len());
    *drop_front -= skip;
    out.extend_from_slice(&samples[skip..]);
    *given_out += (samples.len() - skip) as u64;
}
