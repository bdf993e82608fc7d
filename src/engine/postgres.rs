//! An engine on a PostgreSQL schema (feature `postgres`): this process joins the schema as a
//! node, its jobs live in the schema's tables, and other nodes' changes reach it by
//! `LISTEN`/`NOTIFY` (with a poll besides). Every primitive is available.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use tokio::sync::watch;

use super::{Engine, EngineInner, EngineOptions, run_timer};
use crate::error::Result;
use crate::job::backend::JobBackend;
use crate::job::core::JobCore;
use crate::job::postgres::PgJobs;
use crate::postgres::{Listener, Node, PgOptions, Postgres, Wake, migrate, sender};
use crate::primitive::Primitive;
use crate::store::Store;

/// What an engine on PostgreSQL holds beside the primitives.
pub(super) struct PgParts {
    /// This process as a node; left at shutdown.
    pub(super) node: tokio::sync::Mutex<Option<Node>>,
    /// Wake-ups from other nodes (none in poll-only mode); stops when dropped.
    _listener: Option<Listener>,
    /// The pool, closed at the end of a shutdown.
    pool: Postgres,
    /// The primitives that hear from other nodes, for [`Engine::tick`]'s poll.
    followed: Arc<Followed>,
    /// No `LISTEN`: other nodes' changes are found by polling alone.
    poll_only: bool,
}

impl std::fmt::Debug for PgParts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgParts").finish_non_exhaustive()
    }
}

/// The name an engine on PostgreSQL goes by in logs and [`Engine::path`]: the server and
/// database from `url`, without credentials, and the schema.
fn display_name(url: &str, schema: &str) -> PathBuf {
    let shown = match url.parse::<tokio_postgres::Config>() {
        Ok(config) => {
            let host = config
                .get_hosts()
                .first()
                .map(|h| match h {
                    tokio_postgres::config::Host::Tcp(h) => h.clone(),
                    #[cfg(unix)]
                    tokio_postgres::config::Host::Unix(p) => p.display().to_string(),
                })
                .unwrap_or_default();
            let db = config.get_dbname().unwrap_or_default();
            format!("postgres://{host}/{db}")
        }
        Err(_) => "postgres".to_string(),
    };
    PathBuf::from(format!("{shown}#{schema}"))
}

pub(super) async fn connect(url: &str, options: EngineOptions) -> Result<Engine> {
    let pg_options = PgOptions {
        url: url.to_string(),
        schema: options.pg_schema.clone(),
        pool_size: options.pg_pool_size,
        liveness: options.pg_liveness,
        poll_only: options.pg_poll_only,
    };
    let pg = Postgres::new(&pg_options)?;
    let mut client = pg.client().await?;
    migrate(&mut client, pg.schema()).await?;
    drop(client);
    let node = Node::join(&pg, pg_options.liveness).await?;
    let id = node.id();
    let path = display_name(url, pg.schema());
    let clock = options.clock.clone();
    // Never opened: no primitive keeps anything in it on PostgreSQL.
    let store = Arc::new(Store::new(&path, clock.clone()));
    let (stop, stop_rx) = watch::channel(false);
    // The database clock, unless the options gave one (tests drive a manual clock).
    let backend_clock = options.explicit_clock.then(|| clock.clone());
    let jobs = JobCore::with_backend(
        clock.clone(),
        options.max_running_jobs,
        options.on_job_metric.clone().map(|h| h.0),
        stop_rx.clone(),
        |core| {
            JobBackend::Postgres(Box::new(PgJobs::new(
                pg.clone(),
                id,
                backend_clock,
                pg_options.liveness,
                core,
            )))
        },
    );
    jobs.set_epoch(id as u64);
    jobs.set_manual_workers(options.manual_workers);
    let listener = (!options.pg_poll_only).then(|| {
        Listener::start(
            pg.clone(),
            vec![
                crate::job::postgres::READY_CHANNEL.to_string(),
                crate::job::postgres::JOBS_CHANNEL.to_string(),
                crate::queue::postgres::QUEUE_CHANNEL.to_string(),
                crate::mutex::postgres::MUTEX_CHANNEL.to_string(),
                crate::topic::postgres::TOPIC_CHANNEL.to_string(),
                crate::ephemeral::postgres::EPHEMERAL_CHANNEL.to_string(),
            ],
        )
    });
    let queues = Arc::new(crate::queue::core::QueueCore::postgres(
        pg.clone(),
        id,
        clock.clone(),
        options.explicit_clock,
        stop_rx.clone(),
    ));
    let mutexes = Arc::new(crate::mutex::core::MutexCore::postgres(
        pg.clone(),
        id,
        clock.clone(),
        options.explicit_clock,
        stop_rx.clone(),
    ));
    let ephemeral = Arc::new(crate::ephemeral::core::EphemeralCore::postgres(
        pg.clone(),
        id,
        clock.clone(),
        options.explicit_clock,
        options.ephemeral_change_retention,
        stop_rx.clone(),
    ));
    let topics = Arc::new(crate::topic::core::TopicCore::postgres(
        pg.clone(),
        id,
        clock.clone(),
        options.explicit_clock,
        stop_rx.clone(),
    ));
    let rate_limits = Arc::new(crate::ratelimit::core::RateLimitCore::postgres(
        pg.clone(),
        options.explicit_clock.then(|| clock.clone()),
    ));
    let mut primitives: Vec<Arc<dyn Primitive>> = vec![
        queues.clone(),
        jobs.clone(),
        ephemeral.clone(),
        topics.clone(),
        rate_limits.clone(),
    ];
    // The first pass at once: dead nodes' work and whatever came due meanwhile.
    jobs.timer.lower(0);
    let followed = Arc::new(Followed {
        jobs: jobs.clone(),
        queues: queues.clone(),
        mutexes: mutexes.clone(),
        topics: topics.clone(),
        ephemeral: ephemeral.clone(),
    });
    let poll_only = options.pg_poll_only;
    let mut tasks = vec![
        tokio::spawn(run_timer(jobs.clone(), clock.clone(), stop_rx.clone())),
        tokio::spawn(run_timer(queues.clone(), clock.clone(), stop_rx.clone())),
        tokio::spawn(run_timer(ephemeral.clone(), clock.clone(), stop_rx.clone())),
        tokio::spawn(run_timer(topics.clone(), clock.clone(), stop_rx.clone())),
        tokio::spawn(run_timer(
            rate_limits.clone(),
            clock.clone(),
            stop_rx.clone(),
        )),
        tokio::spawn(poll_other_nodes(
            followed.clone(),
            poll_only,
            pg_options.liveness.heartbeat,
            stop_rx.clone(),
        )),
    ];
    if let Some(listener) = &listener {
        tasks.push(tokio::spawn(follow_other_nodes(
            id,
            followed.clone(),
            listener.subscribe(),
            stop_rx.clone(),
        )));
    }
    // A fenced node stops claiming at once and tells its handlers to stop; its work belongs
    // to the node that found it dead.
    let mut fenced = node.fenced();
    let stop_on_fence = stop.clone();
    let fenced_jobs = jobs.clone();
    let mut stopping = stop_rx.clone();
    tasks.push(tokio::spawn(async move {
        let was_fenced = tokio::select! {
            fenced = fenced.wait_for(Option::is_some) => fenced.is_ok(),
            _ = stopping.wait_for(|s| *s) => false,
        };
        if was_fenced {
            let _ = stop_on_fence.send(true);
            fenced_jobs.fenced();
        }
    }));
    tracing::info!(path = %path.display(), node = id, "jobfile connected");
    #[cfg(feature = "cron")]
    let scheduler = Arc::new(crate::scheduler::SchedulerCore::new(
        jobs.clone(),
        options.on_scheduler_metric.clone().map(|h| h.0),
    ));
    #[cfg(feature = "cron")]
    {
        scheduler.started();
        primitives.push(scheduler.clone());
        tasks.push(tokio::spawn(run_timer(
            scheduler.clone(),
            clock.clone(),
            stop_rx.clone(),
        )));
    }
    Ok(Engine {
        inner: Arc::new(EngineInner {
            path,
            epoch: id as u64,
            store,
            queues,
            jobs,
            mutexes,
            ephemeral,
            topics,
            rate_limits,
            #[cfg(feature = "cron")]
            scheduler,
            primitives,
            stop,
            tasks: Mutex::new(tasks),
            pg: Some(PgParts {
                node: tokio::sync::Mutex::new(Some(node)),
                _listener: listener,
                pool: pg.clone(),
                followed,
                poll_only,
            }),
        }),
    })
}

/// The primitives that hear from other nodes.
struct Followed {
    jobs: Arc<JobCore>,
    queues: Arc<crate::queue::core::QueueCore>,
    mutexes: Arc<crate::mutex::core::MutexCore>,
    topics: Arc<crate::topic::core::TopicCore>,
    ephemeral: Arc<crate::ephemeral::core::EphemeralCore>,
}

/// How often a node looks for what other nodes changed, whatever the notifications said.
const POLL: std::time::Duration = std::time::Duration::from_secs(1);

impl Followed {
    /// Everything waiting here looks again (after the listener reconnected, or lagged):
    /// notices sent meanwhile are lost.
    async fn rescan(&self) {
        self.jobs.wake_all_workers();
        self.jobs.look_again().await;
        self.queues.wake_all_receivers();
        for name in self.mutexes.released.keys() {
            self.mutexes.released.wake_all(&name);
        }
        self.topics.wake_all_followers();
        self.ephemeral.wake_all_followers();
    }

    /// The poll besides notifications: workers and receivers whose work is ready are woken
    /// (a notice can be missed: one sent before its sender knew this node listened). In
    /// poll-only mode, where no notice comes at all, everything waiting looks again.
    async fn poll(&self, poll_only: bool) -> Result<()> {
        self.jobs.wake_for_ready().await?;
        self.queues.wake_for_ready().await?;
        if poll_only {
            self.jobs.look_again().await;
            for name in self.mutexes.released.keys() {
                self.mutexes.released.wake_all(&name);
            }
            self.topics.wake_all_followers();
            self.ephemeral.wake_all_followers();
        }
        Ok(())
    }
}

/// Polls every [`POLL`] until the engine stops. A node that just joined also looks again at
/// everything once its first heartbeats have told the others that it listens.
async fn poll_other_nodes(
    here: Arc<Followed>,
    poll_only: bool,
    heartbeat: std::time::Duration,
    mut stop: watch::Receiver<bool>,
) {
    let joined = tokio::time::Instant::now();
    let mut rescanned = poll_only;
    let mut every = tokio::time::interval(POLL);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = every.tick() => {}
            _ = stop.wait_for(|s| *s) => return,
        }
        if !rescanned && joined.elapsed() >= heartbeat * 2 {
            rescanned = true;
            here.rescan().await;
        }
        if let Err(e) = here.poll(poll_only).await {
            tracing::debug!(error = %e, "polling for other nodes' changes failed; trying again");
        }
    }
}

/// Applies other nodes' notifications here: ready jobs wake this node's workers, changed jobs
/// wake their watchers (a join waiting here) and stop an attempt running here that lost its
/// job (cancelled or timed out elsewhere); ready messages wake receivers, released mutexes
/// their acquirers, published topics and changed sets their followers. After a reconnect,
/// everything waiting here looks again.
async fn follow_other_nodes(
    this_node: i64,
    here: Arc<Followed>,
    mut wakes: tokio::sync::broadcast::Receiver<Wake>,
    mut stop: watch::Receiver<bool>,
) {
    use crate::postgres::Wake::Notified;
    loop {
        let wake = tokio::select! {
            wake = wakes.recv() => wake,
            _ = stop.wait_for(|s| *s) => return,
        };
        // What this node sent, it applied at its own commit.
        let (channel, payload) = match wake {
            Ok(Notified { channel, payload }) => match sender(&payload) {
                (Some(from), _) if from == this_node => continue,
                (_, body) => (channel, body.to_string()),
            },
            Ok(Wake::Rescan) | Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {
                here.rescan().await;
                continue;
            }
            Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
        };
        let names = payload.lines();
        match channel.as_str() {
            crate::job::postgres::READY_CHANNEL => names.for_each(|n| here.jobs.wake_workers(n)),
            crate::queue::postgres::QUEUE_CHANNEL => {
                names.for_each(|q| here.queues.wake_receivers(q))
            }
            crate::mutex::postgres::MUTEX_CHANNEL => {
                names.for_each(|n| here.mutexes.released.wake_all(n))
            }
            crate::topic::postgres::TOPIC_CHANNEL => {
                names.for_each(|t| here.topics.published_elsewhere(t))
            }
            crate::ephemeral::postgres::EPHEMERAL_CHANNEL => {
                names.for_each(|s| here.ephemeral.changed_elsewhere(s))
            }
            crate::job::postgres::JOBS_CHANNEL => {
                let ids: Vec<u64> = names.filter_map(|l| l.parse().ok()).collect();
                here.jobs.changed_elsewhere(&ids).await;
            }
            _ => {}
        }
    }
}

impl Engine {
    /// Connects to a PostgreSQL database with default options and joins its `jobfile` schema
    /// as a node (feature `postgres`): creates or migrates the schema, registers this process
    /// with a heartbeat and a liveness lock, and starts following the other nodes. Jobs are
    /// shared by every node on the schema; see the README's "Growing past one machine".
    ///
    /// Errors: [`Error::Postgres`] if the server cannot be reached or refuses;
    /// [`Error::NewerSchema`] if a newer jobfile migrated the schema.
    pub async fn connect(url: &str) -> Result<Engine> {
        EngineOptions::default().connect(url).await
    }

    /// [`Engine::tick`]'s part on PostgreSQL: the poll for other nodes' changes, now.
    pub(super) async fn poll_other_nodes(&self) -> Result<()> {
        match &self.inner.pg {
            Some(pg) => pg.followed.poll(pg.poll_only).await,
            None => Ok(()),
        }
    }

    /// Leaves the node registry (after the work is handed back) and closes the pool: later
    /// calls get [`Error::Closed`](crate::Error::Closed).
    pub(super) async fn leave(&self) {
        if let Some(pg) = &self.inner.pg {
            if let Some(node) = pg.node.lock().await.take() {
                node.leave().await;
            }
            pg.pool.close();
        }
    }
}

impl EngineOptions {
    /// Connects to PostgreSQL at `url` with these options; see [`Engine::connect`]. The
    /// engine's clock is the database's unless [`clock`](Self::clock) set one (for tests).
    pub async fn connect(self, url: &str) -> Result<Engine> {
        connect(url, self).await
    }
}
