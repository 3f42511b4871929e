//! The leader lease: which machine's orchestrator runs the single-writer
//! stages when several share one sprint.
//!
//! The lease is `leader:` in `sprint.yaml`, and the holder's heartbeats
//! (on its own ref, see [`super`]) renew it: nothing is written to the
//! state while the leader lives. Once its beats stop for
//! `timeouts.machine`, any machine may take the lease over, by a
//! compare-and-swap on the state like every other write, so exactly one
//! does. A leader that stops cleanly gives the lease back at once.

use std::collections::BTreeMap;

use crate::clock;
use crate::state::{Actor, Leader, StateError, Store, Transition};

/// Who holds the lease now, as this machine sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Lead {
    /// This machine.
    Here,
    /// Another machine, alive.
    Elsewhere(String),
}

/// Holds the lease for machine `me` if it is free or its holder is lost
/// (no beat in `beats` for `lost_after_secs`); says who holds it after.
pub(crate) fn hold(
    store: &Store,
    me: &str,
    beats: &BTreeMap<String, i64>,
    now: i64,
    lost_after_secs: i64,
) -> Result<Lead, StateError> {
    // A lease just taken counts as a sign of life: the holder's first
    // beat may not have reached this machine yet.
    let free = |leader: Option<&Leader>| match leader {
        None => true,
        Some(l) if l.machine == me => false,
        Some(l) => {
            let taken = clock::parse_rfc3339(&l.since);
            let sign = beats.get(&l.machine).copied().max(taken);
            super::is_lost(sign, now, lost_after_secs)
        }
    };
    let current = store.read(|txn| txn.meta())?.and_then(|m| m.leader);
    if !free(current.as_ref()) {
        return Ok(lead_of(current, me));
    }
    let done = store.transact(&Actor::named("orchestrator"), |txn| {
        let mut meta = txn
            .meta()?
            .unwrap_or_else(|| crate::state::SprintMeta::new(&clock::now_rfc3339()));
        if !free(meta.leader.as_ref()) {
            return Ok(meta.leader);
        }
        let before = meta.leader.take();
        let taken = Leader {
            machine: me.to_owned(),
            since: clock::rfc3339(now),
        };
        let reason = match &before {
            None => "no machine held the lead".to_owned(),
            Some(l) => format!("{} is lost: no heartbeat for {lost_after_secs}s", l.machine),
        };
        txn.subject(format!("machine {me} takes the lead"));
        txn.record(Transition {
            task: "leader".into(),
            from: before.map_or_else(|| "none".into(), |l| l.machine),
            to: me.to_owned(),
            reason: Some(reason),
            policy: None,
        });
        meta.leader = Some(taken.clone());
        txn.put_meta(&meta)?;
        Ok(Some(taken))
    })?;
    Ok(lead_of(done.value, me))
}

fn lead_of(leader: Option<Leader>, me: &str) -> Lead {
    match leader {
        Some(l) if l.machine != me => Lead::Elsewhere(l.machine),
        _ => Lead::Here,
    }
}

/// Gives the lease back if `me` holds it: the orchestrator stops cleanly,
/// and another machine need not wait out `timeouts.machine`.
pub(crate) fn release(store: &Store, me: &str) -> Result<(), StateError> {
    store.transact(&Actor::named("orchestrator"), |txn| {
        let Some(mut meta) = txn.meta()? else {
            return Ok(());
        };
        if meta.leader.as_ref().is_none_or(|l| l.machine != me) {
            return Ok(());
        }
        meta.leader = None;
        txn.put_meta(&meta)?;
        txn.subject(format!("machine {me} gives up the lead"));
        txn.record(Transition {
            task: "leader".into(),
            from: me.to_owned(),
            to: "none".into(),
            reason: Some("its orchestrator stopped".into()),
            policy: None,
        });
        Ok(())
    })?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_lease_is_taken_when_free_kept_while_the_holder_beats_and_taken_over_when_lost() {
        let (_dir, store) = Store::temp();
        let now = 10_000;
        let mut beats = BTreeMap::from([("m1".to_owned(), now), ("m2".to_owned(), now)]);
        assert_eq!(hold(&store, "m1", &beats, now, 90).unwrap(), Lead::Here);
        let tip = store.tip().unwrap();
        // Held: asking again writes nothing, and m2 does not get it.
        assert_eq!(hold(&store, "m1", &beats, now, 90).unwrap(), Lead::Here);
        assert_eq!(
            hold(&store, "m2", &beats, now, 90).unwrap(),
            Lead::Elsewhere("m1".into())
        );
        assert_eq!(store.tip().unwrap(), tip, "no write while the leader beats");
        // m1 stops beating: m2 takes over after the timeout, not before.
        let later = now + 90;
        beats.insert("m2".into(), later);
        assert_eq!(
            hold(&store, "m2", &beats, later, 90).unwrap(),
            Lead::Elsewhere("m1".into())
        );
        assert_eq!(
            hold(&store, "m2", &beats, later + 1, 90).unwrap(),
            Lead::Here
        );
        let log = crate::state::log::history(&store, Some(1), |_| true).unwrap();
        assert_eq!(log[0].subject, "machine m2 takes the lead");
        assert_eq!(log[0].transitions[0].from, "m1");
        // A clean stop gives it back; the other takes it at once.
        release(&store, "m2").unwrap();
        release(&store, "m1").unwrap(); // not its lease: nothing happens
        beats.insert("m1".into(), later);
        assert_eq!(hold(&store, "m1", &beats, later, 90).unwrap(), Lead::Here);
        // A lease just taken is a sign of life before any beat arrives.
        let (_dir, fresh) = Store::temp();
        assert_eq!(
            hold(&fresh, "m1", &BTreeMap::new(), now, 90).unwrap(),
            Lead::Here
        );
        assert_eq!(
            hold(&fresh, "m2", &BTreeMap::new(), now + 5, 90).unwrap(),
            Lead::Elsewhere("m1".into())
        );
    }
}
