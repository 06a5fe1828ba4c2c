//! Test signals and measures, for the tests and benchmarks of every crate that handles
//! voice: speech-like audio, and how alike two recordings' loudness contours are (the
//! measure the end-to-end tests hold a voice message to). Not used by the codec itself.

/// A speech-like signal: a voiced tone (a fundamental gliding between 110 and 190 Hz
/// with eight harmonics falling off like a voice's) under syllable envelopes (about four
/// syllables a second, with short pauses), `seconds` long at `rate`, interleaved over
/// `channels` (the second channel slightly quieter, as a real stereo recording).
pub fn speech_like(rate: u32, channels: u16, seconds: f32) -> Vec<f32> {
    let n = (rate as f32 * seconds) as usize;
    let mut out = Vec::with_capacity(n * usize::from(channels));
    let mut phase = 0.0f32;
    for i in 0..n {
        let t = i as f32 / rate as f32;
        let f0 = 150.0 + 40.0 * (t * 1.3 * std::f32::consts::TAU).sin();
        phase += f0 * std::f32::consts::TAU / rate as f32;
        let voiced: f32 = (1..=8)
            .map(|h| (phase * h as f32).sin() / (h as f32).powf(1.2))
            .sum();
        // Syllables: a raised-cosine bump every 0.25 s, with every fourth one silent.
        let syllable = (t * 4.0).fract();
        let index = (t * 4.0) as usize;
        let envelope = if index % 4 == 3 {
            0.0
        } else {
            (syllable * std::f32::consts::PI).sin().powi(2)
        };
        let s = 0.25 * envelope * voiced;
        out.push(s);
        if channels == 2 {
            out.push(s * 0.8);
        }
    }
    out
}

/// Mixes interleaved samples down to mono.
pub fn mono(interleaved: &[f32], channels: u16) -> Vec<f32> {
    interleaved
        .chunks_exact(usize::from(channels))
        .map(|frame| frame.iter().sum::<f32>() / frame.len() as f32)
        .collect()
}

/// RMS in 10 ms windows: the loudness contour, 100 values a second at any rate.
pub fn envelope(samples: &[f32], rate: u32) -> Vec<f32> {
    let window = (rate / 100) as usize;
    samples
        .chunks(window)
        .filter(|w| w.len() == window)
        .map(|w| (w.iter().map(|s| s * s).sum::<f32>() / w.len() as f32).sqrt())
        .collect()
}

fn pearson(a: &[f32], b: &[f32]) -> f32 {
    let n = a.len().min(b.len());
    let (a, b) = (&a[..n], &b[..n]);
    let ma = a.iter().sum::<f32>() / n as f32;
    let mb = b.iter().sum::<f32>() / n as f32;
    let cov: f32 = a.iter().zip(b).map(|(x, y)| (x - ma) * (y - mb)).sum();
    let va: f32 = a.iter().map(|x| (x - ma).powi(2)).sum();
    let vb: f32 = b.iter().map(|y| (y - mb).powi(2)).sum();
    cov / (va * vb).sqrt()
}

/// The best correlation of two loudness contours over lags of up to ±50 ms (the codec
/// and resampler delays are compensated, but a test must not depend on it).
pub fn envelope_correlation(
    original: &[f32],
    original_rate: u32,
    decoded: &[f32],
    decoded_rate: u32,
) -> f32 {
    let a = envelope(original, original_rate);
    let b = envelope(decoded, decoded_rate);
    (0..=5)
        .flat_map(|lag| {
            [
                pearson(&a[lag.min(a.len())..], &b),
                pearson(&a, &b[lag.min(b.len())..]),
            ]
        })
        .fold(f32::MIN, f32::max)
}

/// i16 PCM as floats.
pub fn floats(pcm: &[i16]) -> Vec<f32> {
    pcm.iter().map(|&s| f32::from(s) / 32_768.0).collect()
}
