//! Server-Sent Events as the admin API sends them: `event:` and `data:` lines, a blank line
//! ending each event, `:` lines keeping the connection alive.

/// One event: its name and its data (lines joined with `\n`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SseEvent {
    pub event: String,
    pub data: String,
}

/// Turns text arriving in arbitrary chunks into whole events.
#[derive(Debug, Default)]
pub struct SseParser {
    /// The unfinished last line.
    partial: String,
    event: String,
    data: Vec<String>,
}

impl SseParser {
    /// Takes the next chunk of the stream; the events it completed.
    pub fn push(&mut self, chunk: &str) -> Vec<SseEvent> {
        self.partial.push_str(chunk);
        let mut done = Vec::new();
        while let Some(end) = self.partial.find('\n') {
            let line: String = self.partial.drain(..=end).collect();
            let line = line.trim_end_matches(['\n', '\r']);
            if line.is_empty() {
                if !self.data.is_empty() || !self.event.is_empty() {
                    done.push(SseEvent {
                        event: std::mem::take(&mut self.event),
                        data: std::mem::take(&mut self.data).join("\n"),
                    });
                }
                continue;
            }
            let (field, value) = line.split_once(':').unwrap_or((line, ""));
            let value = value.strip_prefix(' ').unwrap_or(value);
            match field {
                "event" => self.event = value.to_string(),
                "data" => self.data.push(value.to_string()),
                _ => {} // a comment (keep-alive), `id` or `retry`
            }
        }
        done
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_split_across_chunks_are_joined() {
        let mut p = SseParser::default();
        assert_eq!(p.push(":\n\nevent: job_ev"), vec![]);
        assert_eq!(
            p.push("ent\ndata: {\"seq\":0}\n\nevent: running\r\ndata: [1,\ndata: 2]\n"),
            vec![SseEvent {
                event: "job_event".into(),
                data: "{\"seq\":0}".into()
            }]
        );
        assert_eq!(
            p.push("\n"),
            vec![SseEvent {
                event: "running".into(),
                data: "[1,\n2]".into()
            }]
        );
    }
}
