//! The scheduler of the inference lanes (issue 12): who of the asks (or searches) waiting
//! gets the next free worker.
//!
//! - **Standard: fair queuing.** Each tenant holds at most its share of a lane's places
//!   (waiting plus running): the places divided by the tenants using the lane now (and at
//!   most `tenant_share` when set), so one busy tenant cannot fill the queue; a tenant with
//!   nothing in the lane is admitted even when the lane is full (up to twice its places),
//!   so a flood never locks another tenant out. A free worker goes to the waiting tenant
//!   with the fewest jobs running, then the one served longest ago (round-robin across
//!   tenants, not first come first served).
//! - **Premium: reserved capacity.** `reserved` of the lane's workers and `premium_queue`
//!   places are premium's own. An idle reserved worker takes standard work ("borrowed");
//!   when a premium ask arrives and no worker is free, it takes a borrowed worker back at
//!   once: the standard generation on it pauses at its next token (`llm::with_pause_point`)
//!   and resumes when a worker frees, so nothing is cancelled. And while premium work runs,
//!   standard work in the lane waits: no new standard job starts and running standard
//!   generations pause at their next token. One generation spreads its decoding over every
//!   core (candle's pool), so a standard generation beside a premium one halves premium's
//!   speed (measured: premium p95 1.88× its idle p95 under a flood without this). Standard
//!   work waits at most as long as premium's own places keep it busy. Premium beyond its
//!   places is scheduled like a standard tenant. Enterprise is scheduled as premium.
//!
//! Knows nothing of HTTP beyond the [`ApiError`] it answers with; holds no tenant data.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};

use tokio::sync::oneshot;

use super::ApiError;
use crate::llm::PausePoint;
use crate::store::Tier;

/// The sizes of one lane.
#[derive(Clone, Copy, Debug)]
pub struct LaneSize {
    /// Work running at once, reserved workers included.
    pub workers: usize,
    /// Of `workers`, those reserved for premium (at most `workers - 1`).
    pub reserved: usize,
    /// Standard work allowed to wait.
    pub queue: usize,
    /// Premium work allowed to wait for a reserved worker.
    pub premium_queue: usize,
    /// The most places one standard tenant may hold; 0: the lane's places divided by the
    /// tenants using it.
    pub tenant_share: usize,
}

/// Which worker a job runs on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Worker {
    Shared,
    Reserved,
}

/// One admitted ask or search.
struct Job {
    tenant: String,
    /// Admission order: among tenants equally served, the earliest waiting job goes first.
    seq: u64,
    /// Admitted in premium's own places.
    premium: bool,
    // A std mutex and condvar: the pause point waits on a blocking thread, never on the
    // async runtime; the lane's lock is taken before this one, never after.
    state: Mutex<JobState>,
    resumed: Condvar,
}

#[derive(Default)]
struct JobState {
    worker: Option<Worker>,
    /// Its worker was handed to premium work: it waits at its next token.
    suspended: bool,
}

struct Waiter {
    job: Arc<Job>,
    grant: oneshot::Sender<()>,
}

#[derive(Default)]
struct LaneState {
    free_shared: usize,
    free_reserved: usize,
    /// Standard-class jobs admitted (waiting or running), in all and per tenant.
    standard_admitted: usize,
    by_tenant: HashMap<String, usize>,
    premium_admitted: usize,
    /// Premium-class jobs holding a worker: standard work waits while there are any.
    premium_running: usize,
    premium_waiting: VecDeque<Waiter>,
    standard_waiting: HashMap<String, VecDeque<Waiter>>,
    /// When each tenant with standard work admitted was last given a worker.
    last_served: HashMap<String, u64>,
    clock: u64,
    /// Standard jobs running on a reserved worker: premium takes these back.
    borrowed: Vec<Arc<Job>>,
    /// Standard jobs whose worker premium took, waiting for one to resume on.
    suspended: VecDeque<Arc<Job>>,
}

pub struct Lane {
    size: LaneSize,
    // A std mutex: held only to update counters and queues, never across an await.
    state: Mutex<LaneState>,
    /// Premium jobs running, mirrored from the state for standard generations' pause
    /// points (std mutex and condvar: waited on by blocking threads only; taken after the
    /// state's lock, never before).
    premium_running: Mutex<usize>,
    premium_done: Condvar,
}

/// A place in a lane, from admission until the work is done: dropping it (the work ended,
/// or the request was abandoned while waiting) frees its worker for the next.
pub struct Admission {
    lane: Arc<Lane>,
    job: Arc<Job>,
    granted: Option<oneshot::Receiver<()>>,
}

impl Lane {
    pub fn new(mut size: LaneSize) -> Arc<Lane> {
        size.workers = size.workers.max(1);
        size.reserved = size.reserved.min(size.workers - 1);
        if size.reserved == 0 {
            size.premium_queue = 0;
        }
        Arc::new(Lane {
            size,
            state: Mutex::new(LaneState {
                free_shared: size.workers - size.reserved,
                free_reserved: size.reserved,
                ..LaneState::default()
            }),
            premium_running: Mutex::new(0),
            premium_done: Condvar::new(),
        })
    }

    /// Publishes how many premium jobs run to the pause points; wakes them at zero.
    fn publish_premium_running(&self, state: &LaneState) {
        let mut running = self
            .premium_running
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        *running = state.premium_running;
        if *running == 0 {
            self.premium_done.notify_all();
        }
    }

    /// A place for one job of `tenant`, or at once 503 `overloaded` (the lane is full) or
    /// 429 `rate_limited` (the tenant holds its share).
    pub fn admit(self: &Arc<Lane>, tenant: &str, tier: Tier) -> Result<Admission, ApiError> {
        let mut state = self.lock();
        let premium = matches!(tier, Tier::Premium | Tier::Enterprise)
            && state.premium_admitted < self.size.reserved + self.size.premium_queue;
        if !premium {
            self.check_share(&state, tenant)?;
        }
        state.clock += 1;
        let job = Arc::new(Job {
            tenant: tenant.to_owned(),
            seq: state.clock,
            premium,
            state: Mutex::new(JobState::default()),
            resumed: Condvar::new(),
        });
        let (grant, granted) = oneshot::channel();
        let waiter = Waiter {
            job: job.clone(),
            grant,
        };
        if premium {
            state.premium_admitted += 1;
            state.premium_waiting.push_back(waiter);
            if state.free_reserved == 0 && state.free_shared == 0 {
                take_back_borrowed(&mut state);
            }
        } else {
            state.standard_admitted += 1;
            *state.by_tenant.entry(tenant.to_owned()).or_default() += 1;
            state
                .standard_waiting
                .entry(tenant.to_owned())
                .or_default()
                .push_back(waiter);
        }
        dispatch(&mut state);
        self.publish_premium_running(&state);
        drop(state);
        Ok(Admission {
            lane: self.clone(),
            job,
            granted: Some(granted),
        })
    }

    fn check_share(&self, state: &LaneState, tenant: &str) -> Result<(), ApiError> {
        let places = self.size.workers + self.size.queue;
        let holding = state.by_tenant.get(tenant).copied().unwrap_or(0);
        // A tenant with nothing in the lane always gets a place (within twice the places):
        // a flood that came first must not lock it out.
        let full = if holding == 0 {
            state.standard_admitted >= 2 * places
        } else {
            state.standard_admitted >= places
        };
        if full {
            return Err(ApiError::Overloaded {
                retry_after_seconds: 1,
            });
        }
        let tenants = state.by_tenant.len() + usize::from(holding == 0);
        let mut share = (places / tenants.max(1)).max(1);
        if self.size.tenant_share > 0 {
            share = share.min(self.size.tenant_share);
        }
        if holding >= share {
            return Err(ApiError::RateLimited {
                retry_after_seconds: 1,
            });
        }
        Ok(())
    }

    fn lock(&self) -> MutexGuard<'_, LaneState> {
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The job is done or abandoned: out of every queue, its worker to the next.
    fn finish(&self, job: &Arc<Job>) {
        let mut state = self.lock();
        state
            .premium_waiting
            .retain(|waiter| !Arc::ptr_eq(&waiter.job, job));
        if let Some(queue) = state.standard_waiting.get_mut(&job.tenant) {
            queue.retain(|waiter| !Arc::ptr_eq(&waiter.job, job));
            if queue.is_empty() {
                state.standard_waiting.remove(&job.tenant);
            }
        }
        state.borrowed.retain(|other| !Arc::ptr_eq(other, job));
        state.suspended.retain(|other| !Arc::ptr_eq(other, job));
        let worker = lock_job(job).worker.take();
        match worker {
            Some(Worker::Shared) => state.free_shared += 1,
            Some(Worker::Reserved) => state.free_reserved += 1,
            None => {}
        }
        if job.premium && worker.is_some() {
            state.premium_running -= 1;
        }
        if job.premium {
            state.premium_admitted -= 1;
        } else {
            state.standard_admitted -= 1;
            if let Some(holding) = state.by_tenant.get_mut(&job.tenant) {
                *holding -= 1;
                if *holding == 0 {
                    state.by_tenant.remove(&job.tenant);
                    state.last_served.remove(&job.tenant);
                }
            }
        }
        dispatch(&mut state);
        self.publish_premium_running(&state);
    }
}

impl Admission {
    /// Waits for a worker.
    pub async fn worker(&mut self) -> Result<(), ApiError> {
        match self.granted.take() {
            Some(granted) => granted.await.map_err(|_| ApiError::Internal),
            None => Ok(()),
        }
    }

    /// For standard work: where its generation waits while premium holds its worker or
    /// premium work runs.
    pub fn pause_point(&self) -> Option<PausePoint> {
        if self.job.premium {
            return None;
        }
        let (job, lane) = (self.job.clone(), self.lane.clone());
        Some(Arc::new(move || {
            let mut state = lock_job(&job);
            while state.suspended {
                state = job
                    .resumed
                    .wait(state)
                    .unwrap_or_else(|poisoned| poisoned.into_inner());
            }
            drop(state);
            let mut running = lane
                .premium_running
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            while *running > 0 {
                running = lane
                    .premium_done
                    .wait(running)
                    .unwrap_or_else(|poisoned| poisoned.into_inner());
            }
        }))
    }
}

impl Drop for Admission {
    fn drop(&mut self) {
        self.lane.finish(&self.job);
    }
}

fn lock_job(job: &Job) -> MutexGuard<'_, JobState> {
    job.state
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Premium work waits and no worker is free: the last standard job that borrowed a
/// reserved worker gives it back and waits at its next token.
fn take_back_borrowed(state: &mut LaneState) {
    if let Some(job) = state.borrowed.pop() {
        let mut job_state = lock_job(&job);
        job_state.worker = None;
        job_state.suspended = true;
        drop(job_state);
        state.free_reserved += 1;
        state.suspended.push_back(job);
    }
}

/// Hands free workers out: premium first (a reserved worker, else a shared one), then
/// suspended standard work (it has started), then waiting standard work of the tenant
/// with the fewest jobs running, then of the one served longest ago. Standard work gets
/// nothing while premium work runs or waits.
fn dispatch(state: &mut LaneState) {
    loop {
        let any_free = state.free_shared + state.free_reserved > 0;
        if !any_free {
            return;
        }
        if let Some(waiter) = state.premium_waiting.pop_front() {
            let worker = take_worker(state, true);
            grant(state, waiter, worker);
            continue;
        }
        if state.premium_running > 0 {
            return;
        }
        if let Some(job) = state.suspended.pop_front() {
            let worker = take_worker(state, false);
            let mut job_state = lock_job(&job);
            job_state.worker = Some(worker);
            job_state.suspended = false;
            drop(job_state);
            job.resumed.notify_all();
            if worker == Worker::Reserved {
                state.borrowed.push(job);
            }
            continue;
        }
        let Some(tenant) = next_tenant(state) else {
            return;
        };
        let Some(queue) = state.standard_waiting.get_mut(&tenant) else {
            return;
        };
        let waiter = queue.pop_front();
        if queue.is_empty() {
            state.standard_waiting.remove(&tenant);
        }
        let Some(waiter) = waiter else {
            continue;
        };
        state.clock += 1;
        let now = state.clock;
        state.last_served.insert(tenant, now);
        let worker = take_worker(state, false);
        grant(state, waiter, worker);
    }
}

/// The tenant whose waiting standard work goes next: fewest jobs running, then served
/// longest ago, then waiting longest.
fn next_tenant(state: &LaneState) -> Option<String> {
    state
        .standard_waiting
        .iter()
        .filter_map(|(tenant, queue)| {
            let first = queue.front()?;
            let admitted = state.by_tenant.get(tenant).copied().unwrap_or(0);
            let running = admitted.saturating_sub(queue.len());
            let served = state.last_served.get(tenant).copied().unwrap_or(0);
            Some(((running, served, first.job.seq), tenant))
        })
        .min_by_key(|(key, _)| *key)
        .map(|(_, tenant)| tenant.clone())
}

/// Takes a free worker: premium prefers a reserved one, standard a shared one.
fn take_worker(state: &mut LaneState, premium: bool) -> Worker {
    let reserved = if premium {
        state.free_reserved > 0
    } else {
        state.free_shared == 0
    };
    if reserved {
        state.free_reserved -= 1;
        Worker::Reserved
    } else {
        state.free_shared -= 1;
        Worker::Shared
    }
}

fn grant(state: &mut LaneState, waiter: Waiter, worker: Worker) {
    lock_job(&waiter.job).worker = Some(worker);
    if waiter.job.premium {
        state.premium_running += 1;
    }
    if worker == Worker::Reserved && !waiter.job.premium {
        state.borrowed.push(waiter.job.clone());
    }
    // A receiver already gone is an abandoned request: dropping its admission gives the
    // worker back (under the lane's lock, after this returns).
    let _ = waiter.grant.send(());
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lane(workers: usize, reserved: usize, queue: usize) -> Arc<Lane> {
        Lane::new(LaneSize {
            workers,
            reserved,
            queue,
            premium_queue: 2,
            tenant_share: 0,
        })
    }

    fn running(admission: &mut Admission) -> bool {
        match admission.granted.as_mut() {
            Some(granted) => granted.try_recv().is_ok(),
            None => true,
        }
    }

    #[test]
    fn tiers_a_flooding_tenant_holds_its_share_and_waiting_work_is_served_round_robin() {
        let lane = lane(1, 0, 5);
        let mut flood: Vec<_> = (0..6)
            .map(|_| lane.admit("flood", Tier::Standard).unwrap())
            .collect();
        // The lane is full, yet a tenant with nothing in it is admitted.
        let mut other = lane.admit("other", Tier::Standard).unwrap();
        assert!(matches!(
            lane.admit("flood", Tier::Standard),
            Err(ApiError::Overloaded { .. })
        ));
        // The first flood job ends: the other tenant's job runs next, ahead of the flood's
        // five that waited longer.
        assert!(running(&mut flood[0]));
        flood.remove(0);
        assert!(running(&mut other));
        assert!(!running(&mut flood[0]));
        drop(other);
        // Two tenants use the lane: the flood's share is 3 of its 6 places, it holds 5.
        drop(flood.pop());
        let _second = lane.admit("other", Tier::Standard).unwrap();
        assert!(matches!(
            lane.admit("flood", Tier::Standard),
            Err(ApiError::RateLimited { .. })
        ));
    }

    #[test]
    fn tiers_premium_takes_back_a_borrowed_reserved_worker() {
        let lane = lane(2, 1, 4);
        let mut first = lane.admit("s1", Tier::Standard).unwrap();
        let mut second = lane.admit("s2", Tier::Standard).unwrap();
        assert!(running(&mut first) && running(&mut second));
        // Both workers are busy (one of them borrowed): premium still runs at once, the
        // borrowed job is suspended.
        let mut premium = lane.admit("p", Tier::Premium).unwrap();
        assert!(running(&mut premium));
        assert!(lock_job(&second.job).suspended);
        assert!(!lock_job(&first.job).suspended);
        // While premium runs, a freed worker is not handed to standard work.
        let mut third = lane.admit("s3", Tier::Standard).unwrap();
        drop(first);
        assert!(!running(&mut third));
        assert_eq!(*lane.premium_running.lock().unwrap(), 1);
        // Premium done: the suspended job resumes, and the waiting one starts.
        drop(premium);
        assert_eq!(*lane.premium_running.lock().unwrap(), 0);
        assert!(!lock_job(&second.job).suspended);
        assert!(running(&mut third));
    }
}
