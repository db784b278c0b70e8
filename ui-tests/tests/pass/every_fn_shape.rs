//! Every fn shape `#[ziggy::context]` and `#[ziggy::timeit]` support compiles and runs.

use std::fmt::Display;
use std::future::Future;
use std::task::{Context, Poll, Waker};

ziggy::channels! { request { sql, cache }, job }

/// A free fn with a doc comment and another attribute.
#[ziggy::context("request")]
#[must_use]
pub fn free(n: u32) -> u32 {
    n + 1
}

#[ziggy::context("request.sql", sample = ("request", 0.25))]
#[ziggy::timeit("query_time")]
fn result_fn(fail: bool) -> Result<u32, String> {
    if fail {
        return Err("no".into());
    }
    let v: u32 = "3".parse().map_err(|_| "parse".to_string())?;
    Ok(v)
}

#[ziggy::timeit]
#[ziggy::context("job")]
fn timeit_first() {}

#[ziggy::context("request", id = key.to_string())]
fn with_id(key: &str) -> usize {
    key.len()
}

struct Svc(u32);

impl Svc {
    #[ziggy::context("request.cache")]
    fn by_ref(&self) -> &u32 {
        &self.0
    }

    #[ziggy::context("request.cache")]
    fn by_mut(&mut self) {
        self.0 += 1;
    }

    #[ziggy::context("request.cache")]
    fn by_value(self) -> u32 {
        self.0
    }

    #[ziggy::context("request.cache")]
    async fn async_method(&self) -> u32 {
        self.0
    }

    /// A `Result` borrowing from `&mut self`, with `self` in a closure, a macro, a `self::`
    /// path and a nested impl that has its own `self`.
    #[ziggy::context("request.cache")]
    fn result_borrowing_self(&mut self, fail: bool) -> Result<&mut u32, String> {
        struct Inner(u32);
        impl Inner {
            fn get(&self) -> u32 {
                self.0
            }
        }
        let add = |n: u32| self.0 + n + Inner(0).get() + self::helper();
        if fail {
            return Err(format!("failed at {}", self.0));
        }
        let _ = add(1);
        Ok(&mut self.0)
    }

    #[ziggy::context("request.cache")]
    fn result_by_mut_value(mut self) -> Result<u32, String> {
        self.0 += 1;
        Ok(self.0)
    }

    #[ziggy::context("request.cache")]
    fn result_boxed(self: Box<Self>) -> Result<u32, String> {
        Ok(self.0)
    }
}

fn helper() -> u32 {
    0
}

trait Named {
    fn name(&self) -> String;
}

impl Named for Svc {
    #[ziggy::context("job")]
    fn name(&self) -> String {
        format!("svc{}", self.0)
    }
}

#[ziggy::context("job")]
fn generic<T: Display, U>(t: T, u: U) -> String
where
    U: Into<u64>,
{
    format!("{t}{}", u.into())
}

#[ziggy::context("job")]
fn returns_impl() -> impl Iterator<Item = u8> {
    0..3
}

#[ziggy::context("job")]
unsafe fn unsafe_fn(p: *const u8) -> u8 {
    unsafe { *p }
}

#[ziggy::context("request")]
async fn async_fn(x: u32) -> Result<u32, std::num::ParseIntError> {
    let y: u32 = "2".parse()?;
    Ok(x + y)
}

#[ziggy::timeit]
async fn async_timed() -> impl Display {
    5
}

fn block_on<F: Future>(f: F) -> F::Output {
    let mut f = std::pin::pin!(f);
    let mut cx = Context::from_waker(Waker::noop());
    loop {
        if let Poll::Ready(v) = f.as_mut().poll(&mut cx) {
            return v;
        }
    }
}

fn main() {
    let events = ziggy::testing::capture(|| {
        assert_eq!(free(1), 2);
        assert!(result_fn(true).is_err());
        assert_eq!(result_fn(false), Ok(3));
        timeit_first();
        assert_eq!(with_id("abc"), 3);
        let mut s = Svc(1);
        assert_eq!(*s.by_ref(), 1);
        s.by_mut();
        assert_eq!(block_on(s.async_method()), 2);
        assert_eq!(s.name(), "svc2");
        *s.result_borrowing_self(false).unwrap() += 0;
        assert!(s.result_borrowing_self(true).is_err());
        assert_eq!(Svc(1).result_by_mut_value(), Ok(2));
        assert_eq!(Box::new(Svc(4)).result_boxed(), Ok(4));
        assert_eq!(s.by_value(), 2);
        assert_eq!(generic("a", 1u8), "a1");
        assert_eq!(returns_impl().count(), 3);
        assert_eq!(unsafe { unsafe_fn(&7) }, 7);
        assert_eq!(block_on(async_fn(1)), Ok(3));
        assert_eq!(block_on(async_timed()).to_string(), "5");
    });
    assert!(events.len() >= 12, "{}", events.len());
}
