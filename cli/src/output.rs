//! What the CLI prints: text for people, or with `--json` one JSON object per line on
//! stdout for scripts. Notes for people go to stderr in both modes, so stdout carries
//! only data (an invitation link, messages, objects).
//!
//! Every line (message text, a contact's name, an invitation link) is formatted into a buffer
//! of its exact size (no reallocation leaves a copy in freed memory) and written in one
//! call, newline included, so that the standard output's line buffer, empty after each
//! flush, passes it straight through; the buffer is wiped once written. A JSON object's
//! strings are wiped too. What reached the terminal is the terminal's to keep.

use std::fmt::Write as _;
use std::io::Write;

use zeroize::{Zeroize, Zeroizing};

use passage_client::agent::{
    AgentEvent, ContactInfo, Direction, EntryKind, HistoryEntry, SendReport,
};
use serde_json::{Value, json};

/// Prints in the chosen mode.
pub struct Printer {
    json: bool,
}

impl Printer {
    pub fn new(json: bool) -> Self {
        Self { json }
    }

    /// Whether output is `--json`.
    pub fn is_json(&self) -> bool {
        self.json
    }

    fn line(&mut self, text: &str) {
        self.private_line(format_args!("{text}"));
    }

    /// Prints a line that may carry message text, a contact's name or an invitation
    /// (see the module documentation).
    fn private_line(&mut self, args: std::fmt::Arguments<'_>) {
        let line = exact_line(args);
        write_whole(line.as_bytes());
    }

    /// Prints `value` as one line, then wipes its strings.
    fn object(&mut self, mut value: Value) {
        let mut size = Measure(0);
        if serde_json::to_writer(&mut size, &value).is_ok() {
            let mut line = Zeroizing::new(Vec::with_capacity(size.0 + 1));
            if serde_json::to_writer(&mut *line, &value).is_ok() {
                line.push(b'\n');
                write_whole(&line);
            }
        }
        scrub(&mut value);
    }

    /// A note for people, on stderr.
    pub fn note(&mut self, text: &str) {
        eprintln!("{text}");
    }

    /// `passage run` locked itself.
    pub fn locked(&mut self) {
        if self.json {
            self.object(json!({"type": "locked"}));
        } else {
            self.note("locked after inactivity: every key is gone from memory");
        }
    }

    pub fn link(&mut self, link: &str) {
        if self.json {
            self.object(json!({"type": "invitation", "link": link}));
        } else {
            self.line(link);
        }
    }

    pub fn contact(&mut self, contact: &ContactInfo) {
        if self.json {
            self.object(json!({
                "type": "contact",
                "contact": contact.name,
                "status": contact.status.as_str(),
                "verified": contact.verified,
                "trusted": contact.trusted,
                "disappear_after_secs": contact.disappear_after_secs,
                "created_at": contact.created_at,
                "invitation_expires_at": contact.invitation_expires_at,
            }));
        } else {
            let verified = if contact.verified {
                "verified"
            } else {
                "unverified"
            };
            let timer = match contact.disappear_after_secs {
                0 => String::new(),
                s => format!("  disappearing after {}", human_duration(s)),
            };
            let trusted = if contact.trusted { "  trusted" } else { "" };
            self.private_line(format_args!(
                "{}  {}  {}{}{}",
                contact.name,
                contact.status.as_str(),
                verified,
                trusted,
                timer
            ));
        }
    }

    pub fn safety_number(&mut self, name: &str, digits: &str) {
        if self.json {
            self.object(json!({"type": "safety_number", "contact": name, "digits": digits}));
        } else {
            let groups: Vec<&str> = digits
                .as_bytes()
                .chunks(5)
                .filter_map(|c| core::str::from_utf8(c).ok())
                .collect();
            for row in groups.chunks(4) {
                self.line(&row.join(" "));
            }
        }
    }

    pub fn sent(&mut self, name: &str, report: &SendReport) {
        if self.json {
            self.object(json!({
                "type": "sent",
                "contact": name,
                "id": report.id.to_hex(),
                "status": report.status.as_str(),
            }));
        }
        if report.status == passage_client::agent::MessageStatus::Queued {
            self.note(
                "the relay has not taken all of it yet (not reachable, or the contact's queue is full): the rest is queued in the vault and goes out with the next `passage send`, `receive` or `run`",
            );
        }
    }

    pub fn event(&mut self, event: &AgentEvent) {
        let value = match event {
            AgentEvent::Message {
                contact,
                id,
                text,
                sent_at,
                received_at,
            }
            | AgentEvent::Sos {
                contact,
                id,
                text,
                sent_at,
                received_at,
            } => {
                let sos = matches!(event, AgentEvent::Sos { .. });
                if !self.json {
                    let mark = if sos { "!!! SOS from " } else { "" };
                    self.private_line(format_args!(
                        "[{}] {mark}{contact}: {}",
                        time(*sent_at),
                        text.as_str()
                    ));
                    return;
                }
                let kind = if sos { "sos" } else { "message" };
                json!({"type": kind, "contact": contact, "id": id.to_hex(), "text": text.as_str(),
                       "sent_at": sent_at, "received_at": received_at})
            }
            AgentEvent::Voice {
                contact,
                id,
                duration_ms,
                bytes,
                sent_at,
                received_at,
                ..
            } => {
                if !self.json {
                    self.private_line(format_args!(
                        "[{}] {contact}: voice message {}, {} (id {}; save it with `passage save-voice`)",
                        time(*sent_at),
                        clock(*duration_ms),
                        size(*bytes),
                        short(id)
                    ));
                    return;
                }
                json!({"type": "voice", "contact": contact, "id": id.to_hex(),
                       "duration_ms": duration_ms, "bytes": bytes,
                       "sent_at": sent_at, "received_at": received_at})
            }
            AgentEvent::RelayMoved { old_pin_until } => {
                if !self.json {
                    self.note(
                        "a relay you use changed its key; its new address is saved (invitations you make now carry it)",
                    );
                    return;
                }
                json!({"type": "relay_moved", "old_pin_until": old_pin_until})
            }
            AgentEvent::VoiceProgress {
                contact,
                id,
                sent,
                total,
            } => {
                if !self.json {
                    return;
                }
                json!({"type": "progress", "contact": contact, "id": id.to_hex(),
                       "sent": sent, "total": total})
            }
            AgentEvent::Status {
                contact,
                id,
                status,
            } => {
                let kind = if *status == passage_client::agent::MessageStatus::Delivered {
                    "receipt"
                } else {
                    "status"
                };
                if !self.json {
                    self.private_line(format_args!(
                        "({contact}: message {} {})",
                        short(id),
                        status.as_str()
                    ));
                    return;
                }
                json!({"type": kind, "contact": contact, "id": id.to_hex(), "status": status.as_str()})
            }
            AgentEvent::Connected { contact } => {
                if !self.json {
                    self.private_line(format_args!("({contact} is connected)"));
                    return;
                }
                json!({"type": "connected", "contact": contact})
            }
            AgentEvent::TimerChanged { contact, seconds } => {
                if !self.json {
                    self.private_line(format_args!(
                        "({contact} set disappearing messages: {})",
                        timer(*seconds)
                    ));
                    return;
                }
                json!({"type": "timer", "contact": contact, "seconds": seconds})
            }
            AgentEvent::InvitationRefused { contact } => {
                if !self.json {
                    self.private_line(format_args!(
                        "({contact}: the invitation was used already; the contact was removed)"
                    ));
                    return;
                }
                json!({"type": "invitation_refused", "contact": contact})
            }
            AgentEvent::Dropped { contact, reason } => {
                if !self.json {
                    self.note(&format!("warning: {reason}"));
                    return;
                }
                json!({"type": "dropped", "contact": contact, "reason": reason.as_str()})
            }
            AgentEvent::Error(error) => {
                if !self.json {
                    self.note(&format!("warning: {error}"));
                    return;
                }
                json!({"type": "error", "error": error.to_string()})
            }
            _ => return,
        };
        self.object(value);
    }

    pub fn history(&mut self, name: &str, entry: &HistoryEntry) {
        let direction = match entry.direction {
            Direction::Outgoing => "out",
            Direction::Incoming => "in",
        };
        if self.json {
            let mut value = json!({
                "type": "message",
                "contact": name,
                "id": entry.id.to_hex(),
                "direction": direction,
                "status": entry.status.as_str(),
                "sent_at": entry.sent_at,
                "received_at": entry.received_at,
                "expires_at": entry.expires_at,
            });
            match &entry.kind {
                EntryKind::Text(text) => value["text"] = json!(text),
                EntryKind::Sos(text) => {
                    value["type"] = json!("sos");
                    value["text"] = json!(text);
                }
                EntryKind::Timer(seconds) => {
                    value["type"] = json!("timer");
                    value["seconds"] = json!(seconds);
                }
                EntryKind::Voice { duration_ms, bytes } => {
                    value["type"] = json!("voice");
                    value["duration_ms"] = json!(duration_ms);
                    value["bytes"] = json!(bytes);
                }
            }
            self.object(value);
            return;
        }
        let who = match entry.direction {
            Direction::Outgoing => "me",
            Direction::Incoming => name,
        };
        match &entry.kind {
            EntryKind::Text(text) => self.private_line(format_args!(
                "[{}] {who}: {text}  ({})",
                time(entry.sent_at),
                entry.status.as_str()
            )),
            EntryKind::Sos(text) => self.private_line(format_args!(
                "[{}] {who}: !!! SOS: {text}  ({})",
                time(entry.sent_at),
                entry.status.as_str()
            )),
            EntryKind::Timer(seconds) => self.private_line(format_args!(
                "[{}] {who} set disappearing messages: {}",
                time(entry.sent_at),
                timer(*seconds)
            )),
            EntryKind::Voice { duration_ms, bytes } => self.private_line(format_args!(
                "[{}] {who}: voice message {}, {} (id {})  ({})",
                time(entry.sent_at),
                clock(*duration_ms),
                size(*bytes),
                short(&entry.id),
                entry.status.as_str()
            )),
        }
    }
}

/// A duration as m:ss.
fn clock(ms: u32) -> String {
    let secs = ms.div_ceil(1000);
    format!("{}:{:02}", secs / 60, secs % 60)
}

/// A size in KB (or bytes below one).
fn size(bytes: u32) -> String {
    if bytes < 1000 {
        format!("{bytes} bytes")
    } else {
        format!("{} KB", bytes.div_ceil(1000))
    }
}

fn short(id: &passage_client::agent::MessageId) -> String {
    id.to_hex()[..8].to_owned()
}

fn timer(seconds: u32) -> String {
    if seconds == 0 {
        "off".to_owned()
    } else {
        human_duration(seconds)
    }
}

fn human_duration(seconds: u32) -> String {
    match seconds {
        s if s % 86_400 == 0 => format!("{}d", s / 86_400),
        s if s % 3600 == 0 => format!("{}h", s / 3600),
        s if s % 60 == 0 => format!("{}m", s / 60),
        s => format!("{s}s"),
    }
}

/// Unix seconds as `YYYY-MM-DD HH:MM` in UTC.
fn time(unix: u64) -> String {
    let days = (unix / 86_400) as i64;
    let secs = unix % 86_400;
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02}",
        secs / 3600,
        (secs % 3600) / 60
    )
}

/// Draws the link as a QR code on stderr (so stdout keeps only the link).
pub fn qr_to_stderr(link: &str) {
    use qrcode::render::unicode::Dense1x2;
    use qrcode::{EcLevel, QrCode};
    match QrCode::with_error_correction_level(link.as_bytes(), EcLevel::L) {
        Ok(code) => {
            let image = code
                .render::<Dense1x2>()
                .dark_color(Dense1x2::Light)
                .light_color(Dense1x2::Dark)
                .quiet_zone(true)
                .build();
            eprintln!("{image}");
        }
        Err(_) => eprintln!("(the link is too long for a QR code; share it as text)"),
    }
}

/// Formats `args` and a newline into a wiped-on-drop string of exactly their length:
/// measured first, so the string never grows (growing would leave a copy behind).
fn exact_line(args: std::fmt::Arguments<'_>) -> Zeroizing<String> {
    let mut size = Measure(0);
    let _ = std::fmt::Write::write_fmt(&mut size, args);
    let mut line = Zeroizing::new(String::with_capacity(size.0.saturating_add(1)));
    let _ = line.write_fmt(args);
    line.push('\n');
    line
}

/// Counts the bytes written to it (formatted text or a JSON serialisation) without
/// keeping them: the size of the buffer to allocate once.
struct Measure(usize);

impl std::fmt::Write for Measure {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        self.0 = self.0.saturating_add(s.len());
        Ok(())
    }
}

impl Write for Measure {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0 = self.0.saturating_add(bytes.len());
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Writes a whole line (newline included) in one call and flushes.
fn write_whole(line: &[u8]) {
    let mut stdout = std::io::stdout().lock();
    let _ = stdout.write_all(line);
    let _ = stdout.flush();
}

/// Wipes every string in `value` (message text, contact names).
fn scrub(value: &mut Value) {
    match value {
        Value::String(text) => text.zeroize(),
        Value::Array(items) => items.iter_mut().for_each(scrub),
        Value::Object(fields) => fields.values_mut().for_each(scrub),
        Value::Null | Value::Bool(_) | Value::Number(_) => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_private_line_is_built_in_one_allocation_of_its_exact_size() {
        let text = "a message long enough that a growing string would reallocate ".repeat(20);
        let line = exact_line(format_args!("[{}] {}: {text}", time(0), "contact"));
        assert_eq!(line.len(), line.capacity());
        assert!(line.ends_with(&format!("{text}\n")));
    }

    #[test]
    fn scrub_wipes_every_string_of_an_object() {
        let mut value =
            json!({"type": "message", "text": "secret", "nested": ["name", {"k": "v"}], "n": 3});
        scrub(&mut value);
        let mut strings = Vec::new();
        fn collect(value: &Value, out: &mut Vec<String>) {
            match value {
                Value::String(s) => out.push(s.clone()),
                Value::Array(items) => items.iter().for_each(|v| collect(v, out)),
                Value::Object(fields) => fields.values().for_each(|v| collect(v, out)),
                _ => {}
            }
        }
        collect(&value, &mut strings);
        assert_eq!(strings.len(), 4);
        assert!(strings.iter().all(String::is_empty), "{strings:?}");
        assert_eq!(value["n"], 3);
    }

    #[test]
    fn dates_are_civil_utc() {
        assert_eq!(time(0), "1970-01-01 00:00");
        assert_eq!(time(951_782_400), "2000-02-29 00:00");
        assert_eq!(time(1_798_761_599), "2026-12-31 23:59");
    }
}
