//! Status codes, the thread-local last error and the panic barrier that
//! every exported function runs its body in.

use std::cell::RefCell;
use std::ffi::{CStr, CString, c_char};
use std::panic::{AssertUnwindSafe, catch_unwind};

/// Result of every `venom_*` call. The numeric values are part of the ABI
/// and never change; new codes are only ever appended.
///
/// On any value other than `VENOM_OK`, `venom_last_error_message()` returns
/// a human-readable description of the failure on the calling thread.
#[allow(non_camel_case_types)]
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum venom_status {
    /// Success.
    VENOM_OK = 0,
    /// A NULL handle or pointer, a bad name, an invalid configuration or an
    /// otherwise invalid argument.
    VENOM_EINVAL = 1,
    /// The caller's buffer is too small; the size needed was written to the
    /// function's length out-parameter.
    VENOM_ETOOSMALL = 2,
    /// No segment with that name, or (KvCache) no such key.
    VENOM_ENOTFOUND = 3,
    /// A live process already owns a segment with that name.
    VENOM_EEXIST = 4,
    /// The wait ran out of time.
    VENOM_ETIMEDOUT = 5,
    /// The peer is gone: the daemon died or closed the channel, or the
    /// writer of a region died mid-write.
    VENOM_EGONE = 6,
    /// Another live process holds the role: a region's writer, a queue's
    /// consumer, or every client slot of a channel is taken.
    VENOM_EBUSY = 7,
    /// No room: a command ring or a `Reject` cache is full.
    VENOM_EFULL = 8,
    /// A command, reply, key or value exceeds the configured maximum.
    VENOM_ETOOLARGE = 9,
    /// The segment failed validation (corrupt, wrong kind, incompatible
    /// layout version, still initialising after the timeout).
    VENOM_ECORRUPT = 10,
    /// The daemon was stopped with `venom_daemon_stop`.
    VENOM_ESTOPPED = 11,
    /// The daemon dropped the request without answering it.
    VENOM_ENOREPLY = 12,
    /// The region was left torn by a crashed writer and not yet rewritten.
    VENOM_ETORN = 13,
    /// An offset/length pair lies outside the region.
    VENOM_ERANGE = 14,
    /// An operating-system call failed (see the message for errno).
    VENOM_EOS = 15,
    /// An internal error (a bug in Venom) was caught at the C boundary; the
    /// handle involved should be freed.
    VENOM_EPANIC = 16,
    /// Any other failure.
    VENOM_EOTHER = 17,
}

use venom_status::*;

/// A failed call: its status and message.
#[derive(Debug)]
pub(crate) struct Failure {
    pub(crate) status: venom_status,
    pub(crate) message: String,
}

impl Failure {
    pub(crate) fn new(status: venom_status, message: impl Into<String>) -> Failure {
        Failure { status, message: message.into() }
    }

    pub(crate) fn inval(message: impl Into<String>) -> Failure {
        Failure::new(VENOM_EINVAL, message)
    }
}

/// Shorthand for the bodies of exported functions.
pub(crate) type FfiResult<T = ()> = Result<T, Failure>;

impl From<venom_core::Error> for Failure {
    fn from(e: venom_core::Error) -> Failure {
        use venom_core::Error as E;
        let status = match &e {
            E::InvalidName { .. } | E::InvalidConfig(_) => VENOM_EINVAL,
            E::AlreadyExists { .. } => VENOM_EEXIST,
            E::NotFound(_) => VENOM_ENOTFOUND,
            E::Corrupt { .. } | E::WrongKind { .. } | E::VersionMismatch { .. } | E::InitTimeout(_) => VENOM_ECORRUPT,
            E::OutOfBounds { .. } => VENOM_ERANGE,
            E::BufferTooSmall { .. } => VENOM_ETOOSMALL,
            E::WriterDead { .. } | E::DaemonGone { .. } => VENOM_EGONE,
            E::Torn => VENOM_ETORN,
            E::WriterBusy { .. } | E::ConsumerBusy { .. } | E::TooManyClients { .. } => VENOM_EBUSY,
            E::RequestsOutstanding { .. } => VENOM_EBUSY,
            E::Timeout(_) => VENOM_ETIMEDOUT,
            E::Full => VENOM_EFULL,
            E::MessageTooLarge { .. } | E::ReplyTooLarge { .. } => VENOM_ETOOLARGE,
            E::NoReply { .. } => VENOM_ENOREPLY,
            E::Stopped => VENOM_ESTOPPED,
            E::Os { .. } => VENOM_EOS,
            _ => VENOM_EOTHER,
        };
        Failure::new(status, e.to_string())
    }
}

impl From<venom_collections::Error> for Failure {
    fn from(e: venom_collections::Error) -> Failure {
        use venom_collections::Error as E;
        let status = match e {
            E::Core(core) => return core.into(),
            E::InvalidConfig(_) => VENOM_EINVAL,
            E::Timeout(_) => VENOM_ETIMEDOUT,
            E::Corrupt(_) => VENOM_ECORRUPT,
            E::KeyTooLarge { .. } | E::ValueTooLarge { .. } => VENOM_ETOOLARGE,
            E::CacheFull => VENOM_EFULL,
            E::BufferTooSmall { .. } => VENOM_ETOOSMALL,
            _ => VENOM_EOTHER,
        };
        Failure::new(status, e.to_string())
    }
}

thread_local! {
    /// Message of the last failed call on this thread.
    static LAST_ERROR: RefCell<Option<CString>> = const { RefCell::new(None) };
}

fn set_last_error(message: &str) {
    // A message cannot carry a NUL into C; replace any (names are C strings,
    // so this only guards against future messages).
    let clean = CString::new(message.replace('\0', "?")).unwrap_or_default();
    // try_with: during thread teardown the slot may be gone; the status code
    // still reports the failure.
    let _ = LAST_ERROR.try_with(|slot| *slot.borrow_mut() = Some(clean));
}

/// Runs an exported function's body: converts its failure into a status
/// (recording the message) and stops any panic at the boundary.
///
/// The success path never touches thread-local storage, so a successful call
/// costs no more than the Rust call it wraps.
pub(crate) fn guard(body: impl FnOnce() -> FfiResult) -> venom_status {
    match catch_unwind(AssertUnwindSafe(body)) {
        Ok(Ok(())) => VENOM_OK,
        Ok(Err(f)) => {
            set_last_error(&f.message);
            f.status
        }
        Err(payload) => {
            let what = payload
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| payload.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "unknown panic".to_owned());
            // Dropping the payload could itself panic; leak it instead (a
            // bug path, once per panic).
            std::mem::forget(payload);
            set_last_error(&format!("internal error (panic caught at the C boundary): {what}"));
            VENOM_EPANIC
        }
    }
}

/// The message describing the most recent failed `venom_*` call on the
/// calling thread, or an empty string if none failed yet.
///
/// Successful calls do not clear it (like `errno`): read it right after a
/// call returned something other than `VENOM_OK`. The returned pointer is
/// owned by the library and stays valid until the next `venom_*` call on the
/// same thread; copy the string to keep it. Never returns NULL.
#[unsafe(no_mangle)]
pub extern "C" fn venom_last_error_message() -> *const c_char {
    const EMPTY: &CStr = c"";
    let got = catch_unwind(|| {
        LAST_ERROR
            .try_with(|slot| slot.borrow().as_ref().map(|s| s.as_ptr()).unwrap_or(EMPTY.as_ptr()))
            .unwrap_or(EMPTY.as_ptr())
    });
    got.unwrap_or(EMPTY.as_ptr())
}

/// A static, NUL-terminated name for a status code (`"VENOM_EINVAL"`, ...),
/// or `"VENOM_UNKNOWN"` for a value that is not a status. Never NULL; the
/// string must not be freed.
#[unsafe(no_mangle)]
pub extern "C" fn venom_status_name(status: i32) -> *const c_char {
    let name: &CStr = match status {
        0 => c"VENOM_OK",
        1 => c"VENOM_EINVAL",
        2 => c"VENOM_ETOOSMALL",
        3 => c"VENOM_ENOTFOUND",
        4 => c"VENOM_EEXIST",
        5 => c"VENOM_ETIMEDOUT",
        6 => c"VENOM_EGONE",
        7 => c"VENOM_EBUSY",
        8 => c"VENOM_EFULL",
        9 => c"VENOM_ETOOLARGE",
        10 => c"VENOM_ECORRUPT",
        11 => c"VENOM_ESTOPPED",
        12 => c"VENOM_ENOREPLY",
        13 => c"VENOM_ETORN",
        14 => c"VENOM_ERANGE",
        15 => c"VENOM_EOS",
        16 => c"VENOM_EPANIC",
        17 => c"VENOM_EOTHER",
        _ => c"VENOM_UNKNOWN",
    };
    name.as_ptr()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn panics_become_epanic_with_a_message() {
        let prev = std::panic::take_hook();
        std::panic::set_hook(Box::new(|_| {}));
        let st = guard(|| panic!("boom"));
        std::panic::set_hook(prev);
        assert_eq!(st, VENOM_EPANIC);
        // SAFETY: the pointer is a valid C string until the next call.
        let msg = unsafe { CStr::from_ptr(venom_last_error_message()) }.to_str().unwrap().to_owned();
        assert!(msg.contains("boom"), "{msg}");
    }

    #[test]
    fn every_status_has_a_name() {
        for code in 0..=17 {
            // SAFETY: static C strings.
            let name = unsafe { CStr::from_ptr(venom_status_name(code)) }.to_str().unwrap();
            assert!(name.starts_with("VENOM_E") || code == 0, "{code} -> {name}");
            assert_ne!(name, "VENOM_UNKNOWN");
        }
        // SAFETY: static C string.
        assert_eq!(unsafe { CStr::from_ptr(venom_status_name(-1)) }.to_str().unwrap(), "VENOM_UNKNOWN");
    }
}
