//! An idle daemon and a shell waiting for a reply sleep on futexes: the
//! process uses ~0% CPU. Measured with `getrusage`, generous bound.

use std::time::{Duration, Instant};

use venom_core::channel::{ChannelConfig, DaemonChannel, ShellChannel, WaitStrategy};
use venom_core::{Error, testkit};

/// User + system CPU time of this process.
fn cpu_time() -> Duration {
    // SAFETY: getrusage fills the zeroed struct we pass.
    let ru = unsafe {
        let mut ru: libc::rusage = std::mem::zeroed();
        assert_eq!(libc::getrusage(libc::RUSAGE_SELF, &mut ru), 0);
        ru
    };
    let tv = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    tv(ru.ru_utime) + tv(ru.ru_stime)
}

#[test]
fn idle_daemon_and_waiting_shell_use_almost_no_cpu() {
    for wait in [WaitStrategy::SpinThenPark, WaitStrategy::Park] {
        // Channel A: a daemon serving, with nothing to do.
        let served = testkit::unique_name("idle-a");
        let mut daemon = DaemonChannel::create(&served, ChannelConfig { wait, ..Default::default() }).unwrap();
        let stop = daemon.stop_handle();
        let server = std::thread::spawn(move || daemon.run(|_, c| c.to_vec()));
        // Channel B: a daemon that never answers, so our shell waits.
        let silent = testkit::unique_name("idle-b");
        let _mute = DaemonChannel::create(&silent, ChannelConfig { wait, ..Default::default() }).unwrap();
        let mut shell = ShellChannel::connect(&silent).unwrap();
        let mut live = ShellChannel::connect(&served).unwrap();
        let mut buf = [0u8; 8];
        assert_eq!(live.request(b"warm", &mut buf).unwrap(), 4);

        let (cpu0, t0) = (cpu_time(), Instant::now());
        let r = shell.request_timeout(b"anyone?", &mut buf, Duration::from_secs(1));
        assert!(matches!(r, Err(Error::Timeout(_))), "{r:?}");
        let (cpu, wall) = (cpu_time() - cpu0, t0.elapsed());
        assert!(cpu < wall / 20, "{wait:?}: {cpu:?} of CPU in {wall:?} while idle");

        stop.stop();
        server.join().unwrap().unwrap();
    }
}
