//! Invoices as durable jobs: charge the card, then mail the receipt, each as a memoized step,
//! with progress and a live event stream.
//!
//!     cargo run --release -p quickstart
//!
//! Run it twice. The second run submits the same invoice with the same idempotency key and
//! gets the same job back, already completed: nothing is charged or mailed again. Press Ctrl-C
//! in the middle of the first run: the engine shuts down gracefully and hands the job back
//! without charging a crash. Run it again: the job resumes, and a step that committed (the
//! charge) is not run again. A kill -9 instead is recovered the same way, charging one crash.

use std::time::Duration;

use jobfile::{Backoff, Engine, JobCtx, JobError, JobEventKind, JobSpec, Outcome};
use serde::{Deserialize, Serialize};

#[derive(Debug, Serialize, Deserialize)]
struct Invoice {
    order: u64,
    amount_cents: u64,
    email: String,
}

#[derive(Debug, Serialize, Deserialize)]
struct Receipt {
    charge_id: String,
    mailed_to: String,
}

/// Stands in for a payment provider: slow, and the part that must never run twice.
async fn charge_card(order: u64, amount_cents: u64) -> Result<String, JobError> {
    println!("  [payments] charging {amount_cents} cents for order {order}");
    tokio::time::sleep(Duration::from_millis(300)).await;
    Ok(format!("ch_{order}_{amount_cents}"))
}

/// Stands in for a mail service.
async fn send_receipt(email: &str, charge_id: &str) -> Result<(), JobError> {
    println!("  [mail] sending receipt for {charge_id} to {email}");
    tokio::time::sleep(Duration::from_millis(200)).await;
    Ok(())
}

async fn invoice(ctx: JobCtx, input: Invoice) -> Result<Receipt, JobError> {
    let charge_id = ctx
        .step("charge", || charge_card(input.order, input.amount_cents))
        .await?;
    ctx.progress(50, "charged").await?;
    let email = input.email.clone();
    let id = charge_id.clone();
    ctx.step("mail", || async move { send_receipt(&email, &id).await })
        .await?;
    ctx.progress(100, "mailed").await?;
    Ok(Receipt {
        charge_id,
        mailed_to: input.email,
    })
}

#[tokio::main]
async fn main() -> jobfile::Result<()> {
    let path = std::env::temp_dir().join("jobfile-quickstart.jobfile");
    let engine = Engine::open(&path).await?;
    println!("opened {} (epoch {})", path.display(), engine.epoch());

    let invoices = engine.register(
        JobSpec::new("invoice").max_attempts(5).backoff(
            Backoff::exponential(Duration::from_millis(200), Duration::from_secs(30)).jitter(0.2),
        ),
        invoice,
    )?;

    let submitted = invoices
        .submit(Invoice {
            order: 1001,
            amount_cents: 4_250,
            email: "ann@example.com".into(),
        })
        .key("invoice:order-1001")
        .meta("correlation_id", "checkout-7f3a")
        .await?;
    if submitted.deduplicated {
        let state = match invoices.get(submitted.id).await? {
            Some(job) => job.state.to_string(),
            None => "pruned".to_string(),
        };
        println!(
            "job {} was submitted by an earlier run and is {state}; the same key gives the same job",
            submitted.id,
        );
    } else {
        println!("submitted job {}", submitted.id);
    }

    // The job's event stream: the history so far, then live events until it ends; then its
    // outcome. Ctrl-C meanwhile shuts down gracefully: the job is handed back without being
    // charged a crash, and the next run resumes it after its last committed step.
    let run = async {
        let mut events = engine.jobs().events(submitted.id).follow(0);
        while let Some(event) = events.next().await {
            let event = event?;
            let detail = match &event.kind {
                JobEventKind::Started { attempt, epoch } => {
                    format!("attempt {attempt}, epoch {epoch}")
                }
                JobEventKind::StepCompleted { step } => step.clone(),
                JobEventKind::Progress { percent, stage, .. } => format!("{percent}% {stage}"),
                JobEventKind::RetryScheduled { error, .. } => error.to_string(),
                JobEventKind::Recovered { reason } => reason.clone(),
                _ => String::new(),
            };
            println!("  event #{} {:<15} {detail}", event.seq, event.kind.name());
        }
        invoices
            .join(submitted.id, Some(Duration::from_secs(30)))
            .await
    };
    let on_signal = tokio::spawn({
        let engine = engine.clone();
        async move { engine.shutdown_on_signal(Duration::from_secs(5)).await }
    });
    let outcome = match run.await {
        Ok(outcome) => outcome,
        // The engine stopped under us: a signal came. Let the shutdown finish handing the job
        // back before the process ends.
        Err(jobfile::Error::Closed) => {
            on_signal
                .await
                .map_err(|e| jobfile::Error::Internal(e.to_string()))??;
            println!(
                "stopped by a signal: shut down gracefully; an unfinished job resumes at the next run"
            );
            return Ok(());
        }
        Err(e) => return Err(e),
    };
    on_signal.abort();
    match outcome {
        Outcome::Completed(receipt) => println!(
            "completed: charge {} mailed to {}",
            receipt.charge_id, receipt.mailed_to
        ),
        Outcome::Failed(e) | Outcome::TimedOut(e) => println!("did not complete: {e}"),
        Outcome::Cancelled(reason) => println!("cancelled: {reason}"),
        other => println!("not ended: {other:?}"),
    }
    let m = engine.jobs().metrics().await?;
    println!(
        "this file so far: {} submitted, {} completed, {} queued now",
        m.submitted, m.completed, m.queued_now
    );
    engine.shutdown(Duration::from_secs(5)).await?;
    Ok(())
}
