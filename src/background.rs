//! A lane for work that must happen but that no call is waiting on at that moment: creating a
//! call's recording files, writing its provisional sidecar. One thread, lowered priority
//! ([`thread_priority::step_back`]): while fifty calls are being set up it yields to them, and
//! it runs at once when the cores are free.

use std::sync::OnceLock;
use std::sync::mpsc;

use crate::thread_priority;

type Job = Box<dyn FnOnce() + Send>;

fn lane() -> Option<&'static mpsc::Sender<Job>> {
    static LANE: OnceLock<Option<mpsc::Sender<Job>>> = OnceLock::new();
    LANE.get_or_init(|| {
        let (tx, rx) = mpsc::channel::<Job>();
        std::thread::Builder::new()
            .name("wacall-background".into())
            .spawn(move || {
                thread_priority::step_back();
                for job in rx {
                    job();
                }
            })
            .ok()
            .map(|_| tx)
    })
    .as_ref()
}

/// Runs `f` on the background lane and returns its result; `None` if the lane could not be
/// started or `f` panicked.
pub async fn run<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> Option<T> {
    let (tx, rx) = tokio::sync::oneshot::channel();
    let job: Job = Box::new(move || {
        let out = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f));
        if let Ok(out) = out {
            let _ = tx.send(out);
        }
    });
    lane()?.send(job).ok()?;
    rx.await.ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn jobs_run_in_order_and_a_panic_is_contained() {
        let a = run(|| 1).await;
        let boom = run(|| -> i32 { panic!("job fails") }).await;
        let b = run(|| std::thread::current().name().map(str::to_owned)).await;
        assert_eq!(a, Some(1));
        assert_eq!(boom, None);
        assert_eq!(b, Some(Some("wacall-background".to_owned())));
    }
}
