//! A file with something of every kind for an operator to look at: a failed and a completed
//! mail job, a queue with a dead letter, a topic with a consumer group, an ephemeral set, a
//! held mutex and a schedule. Shared by the dashboard and CLI tests.

use std::time::Duration;

use jobfile::{Engine, JobHandle, JobSpec, ScheduleSpec, StartAt};

use super::jobs::mail_bounced_then_sent;

/// What [`populate`] made.
pub struct Populated {
    pub mail: JobHandle<String, String>,
    /// The mail job that failed (`FULL`).
    pub bounced: u64,
    /// The mail job that completed.
    pub sent: u64,
}

/// Fills `engine` with:
/// - `mail` jobs to ann@example.com (failed: "FULL: ann@example.com: mailbox full") and to
///   bob@example.com (completed);
/// - queue `emails`: messages a, b, c, with a dead ("bounced");
/// - topic `orders`: 3 events, group `billing` committed through 1, delivered through 2;
/// - ephemeral set `devices`: `sensor-7` = "online";
/// - mutex `nightly-report` held by `worker-a` for 300 s;
/// - schedule `nightly-report`: `30 2 * * *` in Europe/Berlin, submitting `report` jobs.
pub async fn populate(engine: &Engine) -> Populated {
    let (mail, bounced, sent) =
        mail_bounced_then_sent(engine, "ann@example.com", "bob@example.com").await;
    let emails = engine.queue("emails").unwrap();
    for p in [b"a", b"b", b"c"] {
        emails.send(p.to_vec()).await.unwrap();
    }
    let first = emails.receive().await.unwrap();
    first.dead_letter("bounced").await.unwrap();
    let orders = engine.topic("orders").unwrap();
    for p in [b"1", b"2", b"3"] {
        orders.publish(p.to_vec()).await.unwrap();
    }
    let billing = orders.group_at("billing", StartAt::Beginning);
    let got = billing.receive(2).await.unwrap();
    billing.commit(got[0].event.seq).await.unwrap();
    engine
        .ephemeral("devices")
        .unwrap()
        .upsert("sensor-7", b"online".to_vec())
        .await
        .unwrap();
    engine
        .mutex("nightly-report")
        .unwrap()
        .try_acquire("worker-a", Duration::from_secs(300))
        .await
        .unwrap();
    let report = engine.job::<u32, ()>(JobSpec::new("report")).unwrap();
    engine
        .scheduler()
        .register(
            ScheduleSpec::new("nightly-report", "30 2 * * *").zone("Europe/Berlin"),
            &report,
            1,
        )
        .await
        .unwrap();
    Populated {
        mail,
        bounced,
        sent,
    }
}
