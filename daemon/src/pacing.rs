//! Even reply times, so the time a login takes does not tell names apart (checklist item
//! 20). NSS answers a name it does not know more slowly than one it knows (nss-systemd
//! asks systemd after the files miss: about 60 µs against 7 µs here), and that is visible
//! in the time to the prompt. Every reply that asks for a code or refuses one is held
//! until the floor (`[login] timing_floor_us`); work that took longer is held to the
//! next doubling of the floor, as OpenSSH does for failed authentications, so a slower
//! name falls into the same step as the others. Replies that show a real account anyway
//! (a pass, a trusted device, out of scope) and errors are not held.

use std::time::Duration;

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

    #[test]
    fn work_far_past_the_floor_is_not_held() {
        let floor = 250 * US;
        assert_eq!(hold(floor, floor * 32), Duration::ZERO);
        assert_eq!(hold(floor, floor * 31), floor);
        assert_eq!(hold(floor, Duration::from_secs(2)), Duration::ZERO);
    }
}
