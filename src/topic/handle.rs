//! [`Topic`]: the handle to one named topic.

use std::sync::Arc;

use super::core::TopicCore;
use super::group::ConsumerGroup;
use super::info::{StartAt, TopicEvent};
use super::options::TopicOptions;
use super::publish::PublishEvent;
use super::storage::TopicStorage;
use crate::error::{Result, check_name, check_ttl};
use crate::feed::{self, Feed};

/// A named topic. Get one from [`Engine::topic`](crate::Engine::topic); cheap to clone.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> jobfile::Result<()> {
/// # let dir = tempfile::tempdir().unwrap();
/// use std::time::Duration;
/// use jobfile::StartAt;
/// let engine = jobfile::Engine::open(dir.path().join("app.jobfile")).await?;
/// let orders = engine.topic("orders")?;
/// assert_eq!(orders.publish(b"created 1".to_vec()).await?.seq, 1);
/// let billing = orders.group_at("billing", StartAt::Beginning);
/// let got = billing.receive(10).await?;
/// assert_eq!(got[0].event.payload, b"created 1");
/// assert!(billing.commit(got[0].event.seq).await?);
/// # engine.shutdown(Duration::from_secs(1)).await?; Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct Topic {
    name: Arc<str>,
    options: Arc<TopicOptions>,
    core: Arc<TopicCore>,
}

impl Topic {
    pub(crate) fn new(core: Arc<TopicCore>, name: &str, options: TopicOptions) -> Result<Self> {
        check_name("topic name", name)?;
        check_ttl("retention", options.retention)?;
        check_ttl("reclaim", options.reclaim)?;
        Ok(Topic {
            name: name.into(),
            options: Arc::new(options),
            core,
        })
    }

    /// Publishes an event; `.await` the returned [`PublishEvent`] (after
    /// [`key`](PublishEvent::key), if the event has an idempotency key). Durable when it
    /// returns.
    ///
    /// Errors: [`Error::PayloadTooLarge`](crate::Error::PayloadTooLarge); [`Error::InvalidArgument`](crate::Error::InvalidArgument) for a bad key. Nothing is
    /// written then.
    pub fn publish(&self, payload: Vec<u8>) -> PublishEvent<'_> {
        PublishEvent::new(&self.core, &self.name, &self.options, payload)
    }

    /// Up to `limit` events from sequence `from` on.
    ///
    /// Errors: [`Error::Lagged`](crate::Error::Lagged) if events at or after `from` were pruned.
    pub async fn read(&self, from: u64, limit: usize) -> Result<Vec<TopicEvent>> {
        self.core.backend.read(&self.name, from, limit).await
    }

    /// The sequence number of the newest event (0 if none).
    pub async fn last_seq(&self) -> Result<u64> {
        Ok(self.core.backend.bounds(&self.name).await?.last_seq)
    }

    /// Every event from `start` on, then live ones as they are published (woken by the
    /// publish, not by polling). Ends with [`Error::Lagged`](crate::Error::Lagged) if the reader falls behind
    /// retention, or [`Error::Closed`](crate::Error::Closed) at shutdown.
    pub async fn subscribe(&self, start: StartAt) -> TopicStream {
        // The start is read now, before this returns: an event published after the call is
        // always in the stream.
        let changes = self.core.followers.subscribe(&*self.name);
        let from = match start {
            StartAt::Seq(n) => Ok(n.max(1)),
            StartAt::Beginning => self
                .core
                .backend
                .bounds(&self.name)
                .await
                .map(|b| b.pruned_through + 1),
            StartAt::Now => self
                .core
                .backend
                .bounds(&self.name)
                .await
                .map(|b| b.last_seq + 1),
        };
        let core = self.core.clone();
        let topic = self.name.clone();
        let source = feed::Source {
            read: move |from, limit| {
                let (core, topic) = (core.clone(), topic.clone());
                async move { core.backend.read(&topic, from, limit).await }
            },
            after: |e: &TopicEvent| e.seq + 1,
            last: |_: &TopicEvent| false,
        };
        feed::spawn(from, source, changes, self.core.stop.clone())
    }

    /// The consumer group `name` of this topic. A new group starts at `start` (its first
    /// receive creates it); an existing group keeps its committed cursor and `start` is ignored.
    pub fn group(&self, name: &str) -> ConsumerGroup {
        self.group_at(name, StartAt::Beginning)
    }

    /// Like [`Topic::group`], choosing where a new group starts.
    pub fn group_at(&self, name: &str, start: StartAt) -> ConsumerGroup {
        ConsumerGroup::new(
            self.core.clone(),
            self.name.clone(),
            self.options.clone(),
            name,
            start,
        )
    }
}

/// A live feed of a topic; see [`Topic::subscribe`].
pub type TopicStream = Feed<TopicEvent>;
