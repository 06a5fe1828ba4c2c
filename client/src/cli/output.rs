//! What the CLI prints: text for people, or with `--json` one JSON object per line on
//! stdout for scripts. Notes for people go to stderr in both modes, so stdout carries
//! only data (an invitation link, messages, objects).

use std::io::Write;

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

    fn line(&mut self, text: &str) {
        let mut stdout = std::io::stdout().lock();
        let _ = writeln!(stdout, "{text}");
        let _ = stdout.flush();
    }

    fn object(&mut self, value: Value) {
        self.line(&value.to_string());
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
            self.line(&format!(
                "{}  {}  {}{}",
                contact.name,
                contact.status.as_str(),
                verified,
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
                "no relay reachable: the message is queued in the vault and goes out with the next `passage send` or `passage receive`",
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
            } => {
                if !self.json {
                    self.line(&format!(
                        "[{}] {contact}: {}",
                        time(*sent_at),
                        text.as_str()
                    ));
                    return;
                }
                json!({"type": "message", "contact": contact, "id": id.to_hex(), "text": text.as_str(),
                       "sent_at": sent_at, "received_at": received_at})
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
                    self.line(&format!(
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
                    self.line(&format!("({contact} is connected)"));
                    return;
                }
                json!({"type": "connected", "contact": contact})
            }
            AgentEvent::TimerChanged { contact, seconds } => {
                if !self.json {
                    self.line(&format!(
                        "({contact} set disappearing messages: {})",
                        timer(*seconds)
                    ));
                    return;
                }
                json!({"type": "timer", "contact": contact, "seconds": seconds})
            }
            AgentEvent::InvitationRefused { contact } => {
                if !self.json {
                    self.line(&format!(
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
                EntryKind::Timer(seconds) => {
                    value["type"] = json!("timer");
                    value["seconds"] = json!(seconds);
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
            EntryKind::Text(text) => self.line(&format!(
                "[{}] {who}: {text}  ({})",
                time(entry.sent_at),
                entry.status.as_str()
            )),
            EntryKind::Timer(seconds) => self.line(&format!(
                "[{}] {who} set disappearing messages: {}",
                time(entry.sent_at),
                timer(*seconds)
            )),
        }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_are_civil_utc() {
        assert_eq!(time(0), "1970-01-01 00:00");
        assert_eq!(time(951_782_400), "2000-02-29 00:00");
        assert_eq!(time(1_798_761_599), "2026-12-31 23:59");
    }
}
