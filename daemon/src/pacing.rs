//! Even reply times, so the time a login takes does not tell names apart (checklist item
//! 20). NSS answers a name it does not know more slowly than one it knows (nss-systemd
//! asks systemd after the files miss: about 60 µs against 7 µs here), and that is visible
//! in the time to the prompt. Every reply that asks for a code or refuses one is held
//! until the floor (`[login] timing_floor_us`); work that took longer is held to the
//! next doubling of the floor, as OpenSSH does for failed authentications, so a slower
//! name falls into the same step as the others. Replies that show a real account anyway
//! (a pass, a trusted device, out of scope) and errors are not held.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

/// Beyond this many floors the work itself varies by far more than a lookup costs, and a
/// hold would only add to a login that is already slow (a store waiting for its lock).
const MAX_STEPS: u32 = 32;

/// How long to hold a reply whose work took `worked`, for a floor of `floor`.
pub fn hold(floor: Duration, worked: Duration) -> Duration {
    let mut target = floor;
    while target < worked {
        if target >= floor * MAX_STEPS {
            return Duration::ZERO;
        }
        target *= 2;
    }
    target - worked
}

/// Holds replies on one thread of its own: the runtime's timer counts whole milliseconds,
/// coarser than the floor, and a thread per held reply would let a flood of wrong codes
/// take every thread the runtime has (each waits on this one instead, costing nothing).
#[derive(Clone)]
pub struct Pacer(Arc<(Mutex<BinaryHeap<Reverse<Due>>>, Condvar)>);

/// A reply's wake-up, ordered by when it is due (two due at once go in either order).
struct Due {
    at: Instant,
    wake: tokio::sync::oneshot::Sender<()>,
}

impl PartialEq for Due {
    fn eq(&self, other: &Self) -> bool {
        self.at == other.at
    }
}
impl Eq for Due {}
impl PartialOrd for Due {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Due {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.at.cmp(&other.at)
    }
}

impl Pacer {
    pub fn start() -> std::io::Result<Pacer> {
        let pacer = Pacer(Arc::default());
        let inner = pacer.0.clone();
        std::thread::Builder::new()
            .name("twofold-pacer".into())
            .spawn(move || wake_when_due(&inner))?;
        Ok(pacer)
    }

    /// Returns `d` from now (at once for zero). Should the pacer's thread be gone, the
    /// wait ends at once: only the evenness of the time would be lost, never a decision.
    pub async fn hold(&self, d: Duration) {
        if d.is_zero() {
            return;
        }
        let (wake, woken) = tokio::sync::oneshot::channel();
        {
            let (due, added) = &*self.0;
            let Ok(mut due) = due.lock() else { return };
            due.push(Reverse(Due {
                at: crate::clock::monotonic() + d,
                wake,
            }));
            added.notify_one();
        }
        let _ = woken.await;
    }
}

fn wake_when_due(inner: &(Mutex<BinaryHeap<Reverse<Due>>>, Condvar)) {
    let (due, added) = inner;
    let Ok(mut queue) = due.lock() else { return };
    loop {
        let now = crate::clock::monotonic();
        match queue.peek() {
            None => match added.wait(queue) {
                Ok(q) => queue = q,
                Err(_) => return,
            },
            Some(Reverse(first)) if first.at <= now => {
                if let Some(Reverse(first)) = queue.pop() {
                    let _ = first.wake.send(());
                }
            }
            Some(Reverse(first)) => {
                let wait = first.at - now;
                match added.wait_timeout(queue, wait) {
                    Ok((q, _)) => queue = q,
                    Err(_) => return,
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const US: Duration = Duration::from_micros(1);

    #[test]
    fn work_under_the_floor_ends_at_the_floor_and_longer_work_at_the_next_doubling() {
        let floor = 250 * US;
        assert_eq!(hold(floor, Duration::ZERO), floor);
        assert_eq!(hold(floor, 100 * US), 150 * US);
        assert_eq!(hold(floor, 250 * US), Duration::ZERO);
        assert_eq!(hold(floor, 251 * US), 249 * US);
        assert_eq!(hold(floor, 900 * US), 100 * US);
        // Every reply of one step ends at the same moment, whatever its own work took.
        for worked in [0, 40, 130, 249] {
            assert_eq!(worked * US + hold(floor, worked * US), floor);
        }
    }

    #[tokio::test]
    async fn the_pacer_holds_each_reply_its_own_time_on_one_thread() {
        let pacer = Pacer::start().unwrap();
        let started = crate::clock::monotonic();
        let holds = [900, 300, 600, 0].map(|us| {
            let pacer = pacer.clone();
            tokio::spawn(async move {
                pacer.hold(us * US).await;
                (us, crate::clock::monotonic() - started)
            })
        });
        for h in holds {
            let (us, took) = h.await.unwrap();
            assert!(took >= us * US, "{us} µs held only {took:?}");
            assert!(
                took < us * US + Duration::from_millis(50),
                "{us} µs held {took:?}"
            );
        }
    }

    #[test]
    fn work_far_past_the_floor_is_not_held() {
        let floor = 250 * US;
        assert_eq!(hold(floor, floor * 32), Duration::ZERO);
        assert_eq!(hold(floor, floor * 31), floor);
        assert_eq!(hold(floor, Duration::from_secs(2)), Duration::ZERO);
    }
}
