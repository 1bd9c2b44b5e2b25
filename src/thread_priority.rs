//! Scheduling hints: latency-bound threads ask to run soon after they wake, bookkeeping threads
//! step back when the cores are busy.
//!
//! On two busy cores a thread that wakes for 0.2 ms of work can wait several milliseconds
//! behind media workers that are mid-slice. Linux's EEVDF scheduler (6.12 and later) lets a
//! normal, unprivileged thread ask for a shorter time slice: its deadlines come sooner, so it
//! preempts on wakeup instead of queueing. Older kernels ignore the request. Raising a thread's
//! nice value needs no privilege either; it only matters while the cores are contended.

/// Asks the scheduler to run the calling thread soon after it wakes (a short slice). Returns
/// whether the kernel took the request; refusing it is harmless.
pub fn favour_wakeup_latency() -> bool {
    #[cfg(target_os = "linux")]
    {
        linux::short_slice(std::time::Duration::from_micros(100))
    }
    #[cfg(not(target_os = "linux"))]
    {
        false
    }
}

/// Lets the calling thread yield to everything else while the cores are busy (nice 10): for
/// work nobody waits on at that moment, such as creating recording files or committing
/// history. Returns whether the kernel took it.
pub fn step_back() -> bool {
    #[cfg(target_os = "linux")]
    {
        // SAFETY: setpriority has no memory effects; on Linux, PRIO_PROCESS with 0 names the
        // calling thread.
        unsafe { libc::setpriority(libc::PRIO_PROCESS, 0, 10) == 0 }
    }
    #[cfg(not(target_os = "linux"))]
    {
        false
    }
}

#[cfg(target_os = "linux")]
mod linux {
    use std::time::Duration;

    /// `struct sched_attr` (include/uapi/linux/sched/types.h), first version plus utilisation
    /// clamps.
    #[repr(C)]
    #[derive(Default)]
    struct SchedAttr {
        size: u32,
        sched_policy: u32,
        sched_flags: u64,
        sched_nice: i32,
        sched_priority: u32,
        sched_runtime: u64,
        sched_deadline: u64,
        sched_period: u64,
        sched_util_min: u32,
        sched_util_max: u32,
    }

    const SCHED_OTHER: u32 = 0;

    pub(super) fn short_slice(slice: Duration) -> bool {
        // Keep the thread's current nice value: the request changes only the slice.
        // SAFETY: getpriority has no memory effects; errno handling is not needed because any
        // value in the valid range is used as is.
        let nice = unsafe { libc::getpriority(libc::PRIO_PROCESS, 0) };
        let attr = SchedAttr {
            size: std::mem::size_of::<SchedAttr>() as u32,
            sched_policy: SCHED_OTHER,
            sched_nice: nice,
            sched_runtime: slice.as_nanos() as u64,
            ..SchedAttr::default()
        };
        // SAFETY: `attr` is a valid, fully initialised sched_attr whose `size` field matches its
        // layout; pid 0 is the calling thread.
        let rc = unsafe { libc::syscall(libc::SYS_sched_setattr, 0, &attr as *const SchedAttr, 0) };
        rc == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(target_os = "linux")]
    fn nice() -> i32 {
        // SAFETY: no memory effects; 0 names the calling thread.
        unsafe { libc::getpriority(libc::PRIO_PROCESS, 0) }
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn hints_touch_only_the_calling_thread() {
        let before = nice();
        let (stepped, nice_after, favoured, nice_favoured) = std::thread::spawn(|| {
            let stepped = step_back();
            let nice_after = nice();
            let favoured = favour_wakeup_latency();
            (stepped, nice_after, favoured, nice())
        })
        .join()
        .unwrap();
        assert!(stepped, "raising one's own nice value needs no privilege");
        assert_eq!(nice_after, 10);
        // A short slice keeps the nice value (kernels before 6.12 may refuse it: harmless).
        if favoured {
            assert_eq!(nice_favoured, 10);
        }
        assert_eq!(nice(), before, "the test's own thread is untouched");
    }
}
