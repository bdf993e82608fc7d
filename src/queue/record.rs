//! The stored form of a queue message.

use serde::{Deserialize, Serialize};

/// Versioned on-disk message record; add variants, never change old ones.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) enum StoredMessage {
    V1(MessageV1),
    /// As `V1`, and whether the payload is stored apart, in the queue payloads table (see
    /// [`crate::store::apart`]), leaving the record's payload empty.
    V2(MessageV1, bool),
}

impl StoredMessage {
    /// The message; a payload stored apart is not loaded (see [`MessageV1::payload_apart`]).
    pub(crate) fn into_message(self) -> MessageV1 {
        match self {
            StoredMessage::V1(m) => m,
            StoredMessage::V2(mut m, apart) => {
                m.payload_apart = apart;
                m
            }
        }
    }
}

/// The borrowed twin of [`StoredMessage`] for writing: it encodes to the same bytes (same
/// variant order) without cloning the payload. Always written as the newest version.
#[derive(Debug, Serialize)]
pub(crate) enum StoredMessageRef<'a> {
    /// No longer written; kept so that later variants keep their index.
    #[allow(dead_code)]
    V1(&'a MessageV1),
    V2(&'a MessageV1, bool),
}

impl<'a> StoredMessageRef<'a> {
    pub(crate) fn new(m: &'a MessageV1) -> Self {
        StoredMessageRef::V2(m, m.payload_apart)
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct MessageV1 {
    pub(crate) queue: String,
    pub(crate) payload: Vec<u8>,
    pub(crate) priority: i32,
    pub(crate) key: Option<String>,
    pub(crate) enqueued_at: u64,
    /// Past `enqueued_at + max_age_ms` the message is dead-lettered as `expired`.
    pub(crate) max_age_ms: u64,
    pub(crate) max_deliveries: u32,
    pub(crate) dead_retention_ms: u64,
    pub(crate) deliveries: u32,
    pub(crate) state: MessageState,
    pub(crate) last_error: Option<String>,
    /// The payload is in the queue payloads table and `payload` is empty (see
    /// [`crate::store::apart`]). Not part of the `V1` layout; [`StoredMessage::V2`] stores it.
    #[serde(skip)]
    pub(crate) payload_apart: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) enum MessageState {
    Ready {
        seq: u64,
    },
    Delayed {
        until: u64,
    },
    Leased {
        deadline: u64,
    },
    Dead {
        reason: DeadReason,
        at: u64,
        purge_at: u64,
    },
}

/// Why a message was moved to the dead-letter list. In JSON: `max_deliveries`, `expired`,
/// `nacked` (the stored form is by variant index, so the names do not touch the file).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[non_exhaustive]
#[serde(rename_all = "snake_case")]
pub enum DeadReason {
    /// It was delivered `max_deliveries` times without being acknowledged.
    MaxDeliveries,
    /// It outlived the queue's maximum message age before being acknowledged.
    Expired,
    /// A consumer dead-lettered it explicitly with [`Delivery::dead_letter`](crate::Delivery::dead_letter).
    Nacked,
}

impl DeadReason {
    /// The reason's stable name: `max_deliveries`, `expired` or `nacked`.
    pub fn as_str(self) -> &'static str {
        match self {
            DeadReason::MaxDeliveries => "max_deliveries",
            DeadReason::Expired => "expired",
            DeadReason::Nacked => "nacked",
        }
    }
}

impl std::fmt::Display for DeadReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl MessageV1 {
    pub(crate) fn expired(&self, now: u64) -> bool {
        now >= self.expires_at()
    }

    /// The instant the message passes its maximum age.
    pub(crate) fn expires_at(&self) -> u64 {
        self.enqueued_at.saturating_add(self.max_age_ms)
    }
}

/// Decodes a stored message record (for fuzzing the decoder).
#[cfg(feature = "testing")]
pub(crate) fn decode_message_record(bytes: &[u8]) -> crate::Result<()> {
    crate::store::codec::decode::<StoredMessage>("queue_messages", bytes)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::{MessageState, MessageV1, StoredMessage, StoredMessageRef};
    use crate::store::codec::{decode, encode};

    #[test]
    fn borrowed_and_owned_records_encode_identically() {
        let m = MessageV1 {
            queue: "q".into(),
            payload: vec![1, 2, 3],
            priority: -2,
            key: Some("k".into()),
            enqueued_at: 7,
            max_age_ms: 9,
            max_deliveries: 10,
            dead_retention_ms: 11,
            deliveries: 1,
            state: MessageState::Leased { deadline: 99 },
            last_error: Some("e".into()),
            payload_apart: false,
        };
        let owned = encode(&StoredMessage::V2(m.clone(), false));
        assert_eq!(encode(&StoredMessageRef::new(&m)), owned);
        let back = decode::<StoredMessage>("t", &owned)
            .expect("decode")
            .into_message();
        assert_eq!(back.payload, m.payload);
        assert_eq!(back.state, m.state);
    }
}
