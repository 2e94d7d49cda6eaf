//! Case 5: the toriid provider with the in-process session cache
//! (`toriid_client::SessionCache` on a `Subscriber` of the same daemon), its
//! revocation delay and its memory.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::json;
use torii::Torii;
use torii_core::SessionToken;
use torii_storage_toriid::ToriidRepositoryProvider;
use toriid_client::{Config, SessionCache, Subscriber, SubscriberConfig};

use crate::{cpu, load, run_all, Args, BoxError, Plan};

/// A provider on `endpoint` whose session checks go through a cache of
/// `capacity` sessions kept honest by a subscriber of `events`; waits until
/// the subscriber is live (the cache serves only then).
async fn cached_provider(
    endpoint: &str,
    events: &str,
    capacity: usize,
) -> Result<(ToriidRepositoryProvider, SessionCache, Subscriber), BoxError> {
    let sub = SubscriberConfig::new([events]).start()?;
    let cache = SessionCache::new(&sub, capacity);
    let provider = ToriidRepositoryProvider::connect(Config::new([endpoint]))?
        .with_session_cache(cache.clone());
    if !sub.wait_live(Duration::from_secs(30)).await {
        return Err(format!("the subscriber of {events} did not become live within 30 s").into());
    }
    Ok((provider, cache, sub))
}

fn session_id(j: u64) -> String {
    format!("00000001-0000-4000-8000-{j:012x}")
}

pub async fn run(a: &Args, label: &str, plan: &Plan, tasks: &[usize]) -> Result<(), BoxError> {
    let revocations: usize = a.num("revocations", 0)?;
    let capacity = plan.tokens.len() + revocations + 1024;
    let (provider, cache, _sub) =
        cached_provider(a.req("endpoint")?, a.req("events")?, capacity).await?;
    let tenant = provider.client().tenant().to_string();
    // When each session's deletion was applied in the cache (session uuid
    // -> the instant the hook reports, on the subscriber's thread).
    let applied: Arc<Mutex<HashMap<String, Instant>>> = Arc::default();
    let sink = applied.clone();
    cache.set_applied_hook(move |e, when| {
        if e.topic == "session.deleted" {
            if let Some(id) = e.str("id") {
                sink.lock().unwrap().insert(id.to_string(), when);
            }
        }
    });
    let torii = Arc::new(Torii::new(Arc::new(provider)));
    run_all(label, &torii, plan, tasks).await?;
    let st = cache.stats();
    println!(
        "{}",
        json!({"backend": label, "cache": {
            "len": cache.len(), "hits": st.hits, "misses": st.misses, "drops": st.drops,
            "not_live_lookups": st.not_live_lookups, "memory_bytes": cache.memory_bytes(),
        }})
    );
    if revocations == 0 {
        return Ok(());
    }
    let second = Torii::new(Arc::new(ToriidRepositoryProvider::connect(Config::new([
        a.req("revoke-endpoint")?,
    ]))?));
    let first: u64 = a.num("revoke-first", plan.tokens.len() as u64)?;
    let readers: usize = a.num("readers", 2)?;
    let mut delay_ms = Vec::new();
    let mut event_ms = Vec::new();
    let (mut after_event, mut checks_after_event, mut after_delete) = (0u64, 0u64, 0u64);
    let (mut not_cached_before, mut no_reject, mut no_event) = (0u64, 0u64, 0u64);
    for i in 0..revocations as u64 {
        let j = first + i;
        let token = SessionToken::new(&load::token(j));
        let id = session_id(j);
        // Cached by a check, as a live session is.
        let mut cached = false;
        for _ in 0..20 {
            torii
                .get_session(&token)
                .await
                .map_err(|e| format!("revocation session {j}: {e}"))?;
            if cache.lookup(&tenant, token.as_str()).is_some() {
                cached = true;
                break;
            }
        }
        if !cached {
            not_cached_before += 1;
        }
        // Readers of the first instance checking it in a loop: each check's
        // start and verdict, until one rejects it (or 5 s pass). Plain
        // threads that pause ~20 us between checks (a busy service's request
        // rate, not a spin): spinning readers would take both cores from
        // the daemons, PostgreSQL and the subscriber's thread and delay the
        // very event they wait for.
        let stop = Arc::new(AtomicBool::new(false));
        let started = Arc::new(AtomicUsize::new(0));
        let rt = tokio::runtime::Handle::current();
        let mut hs = Vec::new();
        for _ in 0..readers {
            let (torii, token, stop, started, rt) = (
                torii.clone(),
                token.clone(),
                stop.clone(),
                started.clone(),
                rt.clone(),
            );
            hs.push(std::thread::spawn(move || {
                let mut checks: Vec<(Instant, bool)> = Vec::with_capacity(4096);
                loop {
                    let s = Instant::now();
                    let ok = rt.block_on(torii.get_session(&token)).is_ok();
                    checks.push((s, ok));
                    if checks.len() == 1 {
                        started.fetch_add(1, Ordering::SeqCst);
                    }
                    if !ok || stop.load(Ordering::Relaxed) {
                        return checks;
                    }
                    std::thread::sleep(Duration::from_micros(20));
                }
            }));
        }
        while started.load(Ordering::SeqCst) < readers {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        // A second service instance, on the other daemon, logs it out.
        let t0 = Instant::now();
        second
            .delete_session(&token)
            .await
            .map_err(|e| format!("delete of session {j}: {e}"))?;
        let deadline = t0 + Duration::from_secs(5);
        while hs.iter().any(|h| !h.is_finished()) && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_micros(200)).await;
        }
        stop.store(true, Ordering::Relaxed);
        let mut all = Vec::new();
        for h in hs {
            all.extend(h.join().map_err(|_| "a reader thread panicked")?);
        }
        // The applied instant may be recorded a moment after a reader saw
        // the eviction (the hook runs right after applying).
        let mut ev = None;
        let wait = Instant::now() + Duration::from_secs(2);
        while ev.is_none() && Instant::now() < wait {
            ev = applied.lock().unwrap().remove(&id);
            if ev.is_none() {
                tokio::time::sleep(Duration::from_micros(200)).await;
            }
        }
        match all.iter().filter(|(_, ok)| !ok).map(|(s, _)| *s).min() {
            Some(r) => delay_ms.push(r.saturating_duration_since(t0).as_secs_f64() * 1e3),
            None => no_reject += 1,
        }
        match ev {
            Some(e) => {
                event_ms.push(e.saturating_duration_since(t0).as_secs_f64() * 1e3);
                checks_after_event += all.iter().filter(|(s, _)| *s > e).count() as u64;
                after_event += all.iter().filter(|(s, ok)| *ok && *s > e).count() as u64;
            }
            None => no_event += 1,
        }
        after_delete += all.iter().filter(|(s, ok)| *ok && *s > t0).count() as u64;
    }
    let st = cache.stats();
    println!(
        "{}",
        json!({"backend": label, "revocation": {
            "revocations": revocations,
            "readers": readers,
            "delay_ms": summary(&mut delay_ms),
            "event_ms": summary(&mut event_ms),
            "accepted_after_event": after_event,
            "checks_after_event": checks_after_event,
            "accepted_after_delete": after_delete,
            "not_cached_before": not_cached_before,
            "no_reject_within_5s": no_reject,
            "no_event": no_event,
            "drops": st.drops,
        }})
    );
    Ok(())
}

fn summary(v: &mut [f64]) -> serde_json::Value {
    if v.is_empty() {
        return json!({"n": 0});
    }
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let q = |p: f64| v[((p * v.len() as f64).ceil() as usize).clamp(1, v.len()) - 1];
    json!({"n": v.len(), "p50": q(0.50), "p99": q(0.99), "max": v[v.len() - 1]})
}

/// A service whose cache holds `--sessions` M sessions, each checked once
/// through Torii: RSS before and after, per session.
pub async fn cmd_rss(a: &Args) -> Result<(), BoxError> {
    let m: u64 = a.num("sessions", 100_000)?;
    let (provider, cache, _sub) =
        cached_provider(a.req("endpoint")?, a.req("events")?, m as usize).await?;
    let torii = Arc::new(Torii::new(Arc::new(provider)));
    // One check first: connections and the runtime's threads exist before
    // the "before" reading.
    torii
        .get_session(&SessionToken::new(&load::token(0)))
        .await?;
    let me = std::process::id();
    let before = cpu::rss_kib(me);
    let t = Instant::now();
    const LANES: u64 = 32;
    let mut hs = Vec::new();
    for lane in 0..LANES {
        let torii = torii.clone();
        hs.push(tokio::spawn(async move {
            let mut missing = 0u64;
            let mut j = lane;
            while j < m {
                // Tokens made one at a time: a list of a million would
                // count in the RSS.
                if torii
                    .get_session(&SessionToken::new(&load::token(j)))
                    .await
                    .is_err()
                {
                    missing += 1;
                }
                j += LANES;
            }
            missing
        }));
    }
    let mut missing = 0;
    for h in hs {
        missing += h.await?;
    }
    let fill_s = t.elapsed().as_secs_f64();
    let after = cpu::rss_kib(me);
    let cached = cache.len();
    println!(
        "{}",
        json!({"memory": {
            "sessions": m,
            "cached": cached,
            "missing": missing,
            "fill_seconds": fill_s,
            "rss_kib_before": before,
            "rss_kib_after": after,
            "bytes_per_session": if cached > 0 { (after.saturating_sub(before)) as f64 * 1024.0 / cached as f64 } else { 0.0 },
            "estimate_bytes_per_session": if cached > 0 { cache.memory_bytes() as f64 / cached as f64 } else { 0.0 },
            "not_live_lookups": cache.stats().not_live_lookups,
        }})
    );
    Ok(())
}
