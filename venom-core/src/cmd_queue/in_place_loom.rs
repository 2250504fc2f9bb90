//! Loom models of the channel's in-place replies (`scripts/loom.sh`): the
//! request/reply handoff with slot reuse after a reply, a stale reply
//! racing a client that takes over the lane, and a deliberately broken
//! publication order that the model must catch.
//!
//! Loom does not see the byte copies of payloads (`atomic_copy` is inline
//! assembly), so the models carry their values in the slot's atomic
//! length word: a request of id `i` has length `i`, its reply `10 * i`.

use super::loom_models::{SendModel, model, ring};
use super::ring::{OutMsg, Ring, STAMP_REPLIED, STATUS_OK};
use crate::loom::sync::Ordering;

/// The daemon side: serves `n` requests from position `from`, in order,
/// answering request `i` (length `i`) with length `10 * i`. With
/// `in_order == false` the reply stamp is stored Relaxed instead of
/// Release (the broken order).
fn serve(r: Ring, from: u64, n: u64, in_order: bool) {
    let mut head = from;
    while head < from + n {
        if r.stamp(head) != head + 1 {
            loom::thread::yield_now();
            continue;
        }
        let req = r.header(head);
        assert_eq!(req.len as u64, req.tag, "request intact");
        // As in Consumer::try_pop: free the head before answering.
        r.release_to(head + 1);
        let len = (10 * req.tag) as u32;
        if in_order {
            r.reply_in_place(head, STATUS_OK, len, &[]);
        } else {
            // Broken on purpose: the reply stamp stored Relaxed, so it does
            // not publish the reply written before it.
            r.fill_body(head, STATUS_OK, len, &[]);
            r.slot(head).0.seq.store(STAMP_REPLIED | (head + 1), Ordering::Relaxed);
        }
        head += 1;
    }
}

/// The client side: sends request `id` at its next position (waiting for
/// the slot as `ShellChannel::send` does) and waits for its reply.
fn round_trip(r: Ring, tail: &mut u64, cached_head: &mut u64, id: u64, generation: u64) {
    let pos = *tail;
    let msg = OutMsg { tag: id, generation, status: STATUS_OK, len_field: id as u32, payload: &[] };
    while !r.try_push(tail, cached_head, msg, || {}) {
        loom::thread::yield_now();
    }
    loop {
        if let Some(p) = r.reply(pos) {
            assert_eq!(p.len as u64, 10 * id, "reply read before its payload, or another request's reply");
            assert_eq!((p.tag, p.generation), (id, generation));
            return;
        }
        loom::thread::yield_now();
    }
}

/// Request/reply handoff in one slot, and slot reuse after the reply:
/// three synchronous round trips through a 2-slot ring (the third reuses
/// the first slot once its reply has been taken).
#[test]
fn loom_in_place_request_reply_and_slot_reuse() {
    loom::model(|| {
        let m = model(2);
        let d = SendModel(m.clone());
        let daemon = loom::thread::spawn(move || serve(ring(&d.0), 0, 3, true));
        let r = ring(&m);
        let (mut tail, mut cached_head) = (0, 0);
        for id in 1..=3 {
            round_trip(r, &mut tail, &mut cached_head, id, 1);
        }
        daemon.join().unwrap();
    });
}

/// One request and a single look for its reply. The request is pushed
/// from a thread of its own, joined before the look: loom does not let a
/// thread re-read a value it saw before it yielded, so a client that
/// pushed and then spun could never be shown its own request as the
/// "reply", and a look without a spin keeps the model small.
fn publication_model(in_order: bool) {
    loom::model(move || {
        let m = model(2);
        let d = SendModel(m.clone());
        let daemon = loom::thread::spawn(move || serve(ring(&d.0), 0, 1, in_order));
        let c = SendModel(m.clone());
        let pusher = loom::thread::spawn(move || {
            let msg = OutMsg { tag: 1, generation: 1, status: STATUS_OK, len_field: 1, payload: &[] };
            let (mut tail, mut cached_head) = (0, 0);
            assert!(ring(&c.0).try_push(&mut tail, &mut cached_head, msg, || {}));
        });
        pusher.join().unwrap();
        if let Some(p) = ring(&m).reply(0) {
            assert_eq!(p.len, 10, "reply read before its payload");
        }
        daemon.join().unwrap();
    });
}

/// The reply stamp's Release publishes the reply written in place.
#[test]
fn loom_in_place_reply_publication() {
    publication_model(true);
}

/// The same with the reply stamp stored Relaxed: the client can see the
/// stamp without the reply, and the model must find it.
#[test]
#[should_panic(expected = "reply read before its payload")]
fn loom_in_place_relaxed_reply_stamp_is_caught() {
    publication_model(false);
}

/// A client took over the lane while the daemon still holds its dead
/// predecessor's request (position 0, already read). The daemon's late
/// reply (its own thread: a `Command` may be answered at any time) races
/// the new client, which reuses the contested slot for position 1 (a
/// one-slot ring); the main thread, playing the daemon too, serves it.
/// There is no CAS anywhere: the new client holds the slot until the
/// stale reply hands it back (`Ring::awaiting_reply`, as
/// `ShellChannel::connect` adopts its predecessor's positions). Whatever
/// the interleaving, the stale reply never lands in the reused slot. With
/// `hold == false` the new client reuses the slot at once, and the model
/// must catch the stale reply overwriting it.
fn takeover_model(hold: bool) {
    loom::model(move || {
        let m = model(1);
        let r = ring(&m);
        // The dead client's request at position 0, read by the daemon.
        let (mut tail, mut cached_head) = (0, 0);
        let old = OutMsg { tag: 7, generation: 1, status: STATUS_OK, len_field: 7, payload: &[] };
        assert!(r.try_push(&mut tail, &mut cached_head, old, || {}));
        r.release_to(1);
        let d = SendModel(m.clone());
        let stale = loom::thread::spawn(move || ring(&d.0).reply_in_place(0, STATUS_OK, 99, &[]));
        // The new client (generation 2): recover the tail, hold the
        // predecessor's unanswered position, then a request in the slot.
        let mut tail = r.recover_tail();
        assert_eq!(tail, 1);
        if hold {
            while r.awaiting_reply(0) {
                loom::thread::yield_now();
            }
        }
        // Acquire: as in Producer::claim.
        let mut cached_head = r.ctl().head.0.load(Ordering::Acquire);
        let msg = OutMsg { tag: 1, generation: 2, status: STATUS_OK, len_field: 1, payload: &[] };
        assert!(r.try_push(&mut tail, &mut cached_head, msg, || {}));
        // The daemon serves it.
        if r.stamp(1) == 2 {
            assert_eq!(r.header(1).len, 1, "stale reply over a reused slot's request");
            r.release_to(2);
            r.reply_in_place(1, STATUS_OK, 10, &[]);
        }
        stale.join().unwrap();
        // The slot holds position 1's reply, intact.
        assert_eq!(r.stamp(1), STAMP_REPLIED | 2, "stale reply over a reused slot's stamp");
        assert_eq!(r.header(1).len, 10, "stale reply over a reused slot's reply");
    });
}

#[test]
fn loom_in_place_stale_reply_after_takeover() {
    takeover_model(true);
}

#[test]
#[should_panic(expected = "stale reply over a reused slot")]
fn loom_in_place_unheld_slot_reuse_is_caught() {
    takeover_model(false);
}
