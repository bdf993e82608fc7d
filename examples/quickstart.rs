//! A thumbnail service's work queue: send work, receive it under a lease, settle it, and look at
//! the dead-letter list. Run it twice: the file keeps what the first run left. A key holds while
//! its message is stored, so the dead-lettered photo is not queued again on the second run.
//!
//!     cargo run --release --example quickstart

use std::time::{Duration, Instant};

use jobfile::{Engine, QueueOptions};

#[tokio::main]
async fn main() -> jobfile::Result<()> {
    let path = std::env::temp_dir().join("jobfile-quickstart.jobfile");
    let engine = Engine::open(&path).await?;
    println!("opened {} (epoch {})", path.display(), engine.epoch());

    let thumbs = engine.queue_with(
        "thumbnails",
        QueueOptions::default()
            .lease(Duration::from_secs(5))
            .max_deliveries(2),
    )?;

    // A send with the key of a stored message (queued, leased or dead) stores nothing new.
    for photo in ["beach.jpg", "cat.jpg", "corrupt.jpg", "dog.jpg"] {
        let receipt = thumbs
            .send(photo.as_bytes().to_vec())
            .key(format!("thumb:{photo}"))
            .priority(if photo == "cat.jpg" { 10 } else { 0 })
            .await?;
        let what = if receipt.deduplicated {
            "already queued"
        } else {
            "queued"
        };
        println!("{photo}: message {} {what}", receipt.id);
    }

    // Work through what is ready. The corrupt photo fails twice and lands in the dead letters.
    while let Some(delivery) = thumbs.try_receive(1, Duration::from_secs(5)).await?.pop() {
        let name = String::from_utf8_lossy(delivery.payload()).into_owned();
        if name == "corrupt.jpg" {
            delivery
                .nack_with_error(Duration::ZERO, "not a JPEG file")
                .await?;
            println!(
                "{name}: failed (delivery {}), given back",
                delivery.deliveries()
            );
        } else {
            delivery.ack().await?;
            println!(
                "{name}: thumbnail made (delivery {})",
                delivery.deliveries()
            );
        }
    }

    for dead in thumbs.dead_letters(100)? {
        println!(
            "dead letter {}: {} after {} deliveries ({})",
            dead.id,
            dead.reason,
            dead.deliveries,
            dead.last_error.as_deref().unwrap_or("no error recorded"),
        );
    }
    println!("queue now: {:?}", thumbs.stats()?);

    // Throughput of fsync'd round trips, for a feel of the cost.
    let started = Instant::now();
    let n = 200;
    for i in 0..n {
        thumbs.send(format!("bulk-{i}").into_bytes()).await?;
    }
    let mut done = 0;
    while done < n {
        for d in thumbs.try_receive(64, Duration::from_secs(5)).await? {
            d.ack().await?;
            done += 1;
        }
    }
    let stats = engine.store_stats();
    println!(
        "{n} sequential send+receive+ack round trips in {:?}; {} commits so far",
        started.elapsed(),
        stats.commits
    );

    engine.shutdown(Duration::from_secs(5)).await?;
    Ok(())
}
