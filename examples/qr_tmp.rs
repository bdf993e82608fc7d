use jobfile::*;
use std::time::Instant;
#[tokio::main]
async fn main() {
    let a: Vec<String> = std::env::args().collect();
    let path = &a[1];
    let qr = a[2] == "1";
    if a[3] == "fill" {
        let e = EngineOptions::new()
            .quick_repair(qr)
            .open(path)
            .await
            .unwrap();
        let h = e.job::<u64, ()>(JobSpec::new("b")).unwrap();
        for c in 0..200u64 {
            h.submit_many((0..5000).map(|i| h.submit(c * 5000 + i)))
                .await
                .unwrap();
        }
        std::process::abort();
    } else if a[3] == "hold" {
        let e = EngineOptions::new()
            .quick_repair(qr)
            .max_running_jobs(10_000)
            .open(path)
            .await
            .unwrap();
        let n = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
        let n2 = n.clone();
        let _h = e
            .register(
                JobSpec::new("b").concurrency(10_000),
                move |_: JobCtx, _: u64| {
                    n2.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                    async {
                        std::future::pending::<()>().await;
                        Ok(())
                    }
                },
            )
            .unwrap();
        while n.load(std::sync::atomic::Ordering::SeqCst) < 10_000 {
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
        std::process::abort();
    } else {
        let t = Instant::now();
        let e = EngineOptions::new()
            .quick_repair(qr)
            .open(path)
            .await
            .unwrap();
        println!("qr={qr} open {:?}", t.elapsed());
        drop(e);
    }
}
