//! [`ConsumerGroup`]: members sharing a topic's deliveries.

use std::sync::Arc;

use super::core::TopicCore;
use super::info::{GroupDelivery, StartAt};
use super::options::TopicOptions;
use super::storage::{GroupTake, TopicStorage};
use crate::clock::millis;
use crate::error::{Error, Result, check_name};

/// A consumer group: its members share the deliveries, and every group sees every event.
/// Cheap to clone; each clone is a member.
#[derive(Debug, Clone)]
pub struct ConsumerGroup {
    core: Arc<TopicCore>,
    topic: Arc<str>,
    options: Arc<TopicOptions>,
    name: Arc<str>,
    start: StartAt,
}

impl ConsumerGroup {
    pub(crate) fn new(
        core: Arc<TopicCore>,
        topic: Arc<str>,
        options: Arc<TopicOptions>,
        name: &str,
        start: StartAt,
    ) -> Self {
        ConsumerGroup {
            core,
            topic,
            options,
            name: name.into(),
            start,
        }
    }

    /// Takes up to `max` events (at least one), waiting until there is one: first deliveries
    /// not committed within the reclaim time, then new events. Woken by publishes and by the
    /// clock, not by polling.
    ///
    /// Errors: [`Error::Lagged`] if the group's next event was pruned ([`ConsumerGroup::seek`]
    /// moves it on); [`Error::InvalidArgument`] for a bad group name.
    pub async fn receive(&self, max: usize) -> Result<Vec<GroupDelivery>> {
        check_name("group name", &self.name)?;
        let core = &self.core;
        let clock = core.clock.clone();
        let mut published = core.followers.subscribe(&*self.topic);
        let mut stop = core.stop.clone();
        loop {
            if *stop.borrow_and_update() {
                return Err(Error::Closed);
            }
            published.borrow_and_update();
            let (got, next_reclaim) = self.try_take(max.max(1)).await?;
            if !got.is_empty() {
                return Ok(got);
            }
            let reclaim = async {
                match next_reclaim {
                    Some(at) => clock.sleep_until(at).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                r = published.changed() => if r.is_err() { return Err(Error::Closed) },
                _ = reclaim => {}
                _ = stop.changed() => return Err(Error::Closed),
            }
        }
    }

    /// Takes what is ready now, without waiting (maybe nothing).
    pub async fn try_receive(&self, max: usize) -> Result<Vec<GroupDelivery>> {
        check_name("group name", &self.name)?;
        Ok(self.try_take(max).await?.0)
    }

    async fn try_take(&self, max: usize) -> Result<(Vec<GroupDelivery>, Option<u64>)> {
        let take = GroupTake {
            topic: self.topic.to_string(),
            group: self.name.to_string(),
            start: self.start,
            max,
            reclaim_ms: millis(self.options.reclaim),
        };
        self.core.backend.take(take).await
    }

    /// Commits a delivered event. Returns false if it was already committed. The group's
    /// durable cursor moves over every committed event in a row.
    ///
    /// Errors: [`Error::InvalidArgument`] for an event never delivered to this group.
    pub async fn commit(&self, seq: u64) -> Result<bool> {
        let n = self
            .core
            .backend
            .commit(&self.topic, &self.name, vec![seq])
            .await?;
        Ok(n == 1)
    }

    /// Commits several delivered events in one durable write (one fsync for all). Returns how
    /// many were newly committed.
    ///
    /// Errors: [`Error::InvalidArgument`] if any was never delivered to this group; then none
    /// is committed.
    pub async fn commit_many(&self, seqs: &[u64]) -> Result<usize> {
        self.core
            .backend
            .commit(&self.topic, &self.name, seqs.to_vec())
            .await
    }

    /// The group's durable cursor: every event up to it is committed.
    pub async fn committed_through(&self) -> Result<u64> {
        self.core
            .backend
            .committed_through(&self.topic, &self.name)
            .await
    }

    /// Moves the group so that its next event is `seq` (after a [`Error::Lagged`], say),
    /// dropping its uncommitted deliveries.
    pub async fn seek(&self, seq: u64) -> Result<()> {
        self.core
            .backend
            .seek(&self.topic, &self.name, seq.saturating_sub(1))
            .await
    }
}
