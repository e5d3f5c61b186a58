//! A pause point between decoded tokens: the caller of `generate` (the HTTP edge's
//! scheduler) may hand its worker to more urgent work and have this generation wait at its
//! next token, without cancelling it. Knows nothing of why it waits.

use std::cell::RefCell;
use std::sync::Arc;

/// What a generation calls between tokens; it returns when the generation may go on.
pub type PausePoint = Arc<dyn Fn() + Send + Sync>;

thread_local! {
    // Per thread: a generation runs on the thread that called `generate`, so the point
    // set around the call is the one its decoding loop sees.
    static POINT: RefCell<Option<PausePoint>> = const { RefCell::new(None) };
}

/// Runs `work` on this thread with `point` called between the tokens of every generation
/// it runs.
pub fn with_pause_point<T>(point: PausePoint, work: impl FnOnce() -> T) -> T {
    struct Restore(Option<PausePoint>);
    impl Drop for Restore {
        fn drop(&mut self) {
            let previous = self.0.take();
            POINT.with(|slot| *slot.borrow_mut() = previous);
        }
    }
    let _restore = Restore(POINT.with(|slot| slot.borrow_mut().replace(point)));
    work()
}

/// Waits here while this thread's pause point says so (returns at once when none is set).
pub(super) fn pause_point() {
    let point = POINT.with(|slot| slot.borrow().clone());
    if let Some(point) = point {
        point();
    }
}
