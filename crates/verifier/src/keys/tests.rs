use super::*;
use crate::clock::ManualClock;
use crate::testing::TestIssuer;
use async_trait::async_trait;
use std::sync::atomic::AtomicUsize;
use std::sync::Mutex;

/// A key set source that yields a few times while fetching (so concurrent
/// callers pile up behind it) and counts fetches.
#[derive(Default)]
struct Slow {
    set: Mutex<JwkSet>,
    fetches: AtomicUsize,
}

#[async_trait]
impl JwksSource for Slow {
    async fn fetch(&self) -> Result<JwkSet, JwksError> {
        self.fetches.fetch_add(1, Ordering::SeqCst);
        for _ in 0..10 {
            tokio::task::yield_now().await;
        }
        Ok(self.set.lock().unwrap().clone())
    }
}

fn cache(source: &Arc<Slow>, clock: &ManualClock) -> KeyCache {
    KeyCache::new(
        Arc::clone(source) as Arc<dyn JwksSource>,
        Algorithm::ALL.to_vec(),
        Arc::new(clock.clone()),
        30,
        300,
    )
}

#[tokio::test]
async fn first_use_fetches_once_for_everyone() {
    let issuer = TestIssuer::new("https://as");
    let source = Arc::new(Slow::default());
    *source.set.lock().unwrap() = issuer.jwks().set().clone();
    let clock = ManualClock::new(1000);
    let keys = cache(&source, &clock);
    let lookups = (0..50).map(|_| keys.keys_for(Some(issuer.kid()), Algorithm::ES256));
    let results = futures_join(lookups).await;
    assert!(results.iter().all(Result::is_ok));
    assert_eq!(source.fetches.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn unknown_kids_single_flight_and_rate_limited() {
    let issuer = TestIssuer::new("https://as");
    let source = Arc::new(Slow::default());
    *source.set.lock().unwrap() = issuer.jwks().set().clone();
    let clock = ManualClock::new(1000);
    let keys = cache(&source, &clock);
    assert_eq!(keys.load().await.unwrap(), 1);
    clock.advance(30);
    let kids: Vec<String> = (0..50).map(|i| format!("unknown-{i}")).collect();
    let lookups = kids
        .iter()
        .map(|kid| keys.keys_for(Some(kid), Algorithm::ES256));
    let results = futures_join(lookups).await;
    assert!(results
        .iter()
        .all(|r| matches!(r, Err(KeyLookupError::Unknown))));
    assert_eq!(source.fetches.load(Ordering::SeqCst), 2);
    // Known kid with an alg its key does not fit: no fetch needed to refuse
    // once the interval has not passed.
    assert!(keys
        .keys_for(Some(issuer.kid()), Algorithm::EdDSA)
        .await
        .is_err());
    assert_eq!(source.fetches.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn old_sets_are_refreshed_and_removed_keys_stop_verifying() {
    let old = TestIssuer::new("https://as");
    let new = TestIssuer::new("https://as");
    let source = Arc::new(Slow::default());
    *source.set.lock().unwrap() = old.jwks().set().clone();
    let clock = ManualClock::new(1000);
    let keys = cache(&source, &clock);
    assert!(keys
        .keys_for(Some(old.kid()), Algorithm::ES256)
        .await
        .is_ok());
    *source.set.lock().unwrap() = new.jwks().set().clone();
    clock.advance(299);
    assert!(keys
        .keys_for(Some(old.kid()), Algorithm::ES256)
        .await
        .is_ok());
    assert_eq!(source.fetches.load(Ordering::SeqCst), 1);
    clock.advance(1);
    assert!(keys
        .keys_for(Some(old.kid()), Algorithm::ES256)
        .await
        .is_err());
    assert!(keys
        .keys_for(Some(new.kid()), Algorithm::ES256)
        .await
        .is_ok());
    assert_eq!(source.fetches.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn an_empty_set_does_not_replace_a_usable_one() {
    let issuer = TestIssuer::new("https://as");
    let source = Arc::new(Slow::default());
    *source.set.lock().unwrap() = issuer.jwks().set().clone();
    let clock = ManualClock::new(1000);
    let keys = cache(&source, &clock);
    assert_eq!(keys.load().await.unwrap(), 1);
    *source.set.lock().unwrap() = JwkSet::default();
    assert!(matches!(keys.load().await, Err(JwksError::Jwk(_))));
    clock.advance(600);
    assert!(keys
        .keys_for(Some(issuer.kid()), Algorithm::ES256)
        .await
        .is_ok());
    assert_eq!(source.fetches.load(Ordering::SeqCst), 3);
}

#[tokio::test]
async fn keys_without_kid_or_with_unusable_material_are_handled() {
    let issuer = TestIssuer::new("https://as");
    let mut document = issuer.jwks_document();
    document["keys"][0].as_object_mut().unwrap().remove("kid");
    let source = Arc::new(Slow::default());
    *source.set.lock().unwrap() = JwkSet::from_value(&document).unwrap();
    let keys = cache(&source, &ManualClock::new(1000));
    let set = keys.keys_for(None, Algorithm::ES256).await.unwrap();
    assert!(set.find(None, Algorithm::ES256).is_some());
    assert!(set.find(Some("x"), Algorithm::ES256).is_none());
    // Two keys and no kid: ambiguous.
    let other = TestIssuer::new("https://as");
    let mut two = other.jwks().set().keys().to_vec();
    two.extend(issuer.jwks().set().keys().iter().cloned());
    *source.set.lock().unwrap() = JwkSet::new(two);
    assert_eq!(keys.load().await.unwrap(), 2);
    assert!(keys.current().find(None, Algorithm::ES256).is_none());
}

/// Runs the futures concurrently on the current task.
async fn futures_join<F: std::future::Future>(futures: impl Iterator<Item = F>) -> Vec<F::Output> {
    let handles: Vec<_> = futures.map(Box::pin).collect();
    let mut outputs: Vec<Option<F::Output>> = handles.iter().map(|_| None).collect();
    let mut handles: Vec<_> = handles.into_iter().map(Some).collect();
    std::future::poll_fn(|cx| {
        let mut pending = false;
        for (slot, out) in handles.iter_mut().zip(outputs.iter_mut()) {
            if let Some(future) = slot {
                match future.as_mut().poll(cx) {
                    std::task::Poll::Ready(value) => {
                        *out = Some(value);
                        *slot = None;
                    }
                    std::task::Poll::Pending => pending = true,
                }
            }
        }
        if pending {
            std::task::Poll::Pending
        } else {
            std::task::Poll::Ready(())
        }
    })
    .await;
    outputs.into_iter().flatten().collect()
}
