//! `#[ziggy::context]`'s recording options on every fn shape the attribute supports: free, generic,
//! `impl Trait` returns, methods on `self` / `&self` / `&mut self` / `mut self` / `Box<Self>`,
//! trait impls, `unsafe`, `async`, destructured parameters, with `#[ziggy::timeit]` on either side.
#![deny(warnings)]

use std::fmt::{self, Debug, Display};
use std::future::Future;
use std::task::{Context, Poll, Waker};

ziggy::channels! { request { sql }, job }

#[derive(Debug, serde::Serialize)]
struct User {
    name: String,
}

#[derive(Debug)]
struct Failure;

impl Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("failure")
    }
}

#[ziggy::context(
    "request",
    id = user.name.clone(),
    sample = ("request", 1.0),
    fields(path = "/", response.status = 200, "user agent" = ?user, shown = %user.name),
    args,
    skip(password),
    err,
    ret
)]
#[ziggy::timeit]
pub fn free(user: &User, password: &str, (a, b): (u8, u8), _: u8) -> Result<u8, Failure> {
    if password.is_empty() {
        return Err(Failure);
    }
    Ok(a + b)
}

#[ziggy::timeit("query_time")]
#[ziggy::context("request.sql", args, err(Debug), ret(Serialize))]
fn sql(query: String) -> Result<Vec<u8>, Failure> {
    let n: u8 = "1".parse().map_err(|_| Failure)?;
    Ok(vec![n; query.len()])
}

#[ziggy::context("job", args, ret(Display), fields(shown = %t))]
fn generic<T: Display + Debug, U>(t: T, u: U) -> String
where
    U: Into<u64> + serde::Serialize + Copy,
{
    format!("{t}{}", u.into())
}

#[ziggy::context("job", args, ret)]
fn returns_impl(n: u8) -> impl Iterator<Item = u8> + Debug {
    0..n
}

#[ziggy::context("job", args, ret)]
unsafe fn unsafe_fn(p: *const u8) -> u8 {
    unsafe { *p }
}

#[ziggy::context("job", skip_all, fields(n = n))]
fn skip_all(n: u8, f: impl Fn(u8) -> u8) -> u8 {
    f(n)
}

struct Svc(u32);

impl Svc {
    #[ziggy::context("request", args, fields(svc = self.0), ret)]
    fn by_ref(&self, by: u32) -> &u32 {
        let _ = by;
        &self.0
    }

    #[ziggy::context("request", args, skip(self), err, ret)]
    fn by_mut(&mut self, limit: u32) -> Result<&mut u32, String> {
        if self.0 > limit {
            return Err(format!("{} over {limit}", self.0));
        }
        Ok(&mut self.0)
    }

    #[ziggy::context("request", args, err, ret)]
    fn by_mut_value(mut self, by: u32) -> Result<u32, String> {
        self.0 += by;
        Ok(self.0)
    }

    #[ziggy::context("request", ret)]
    fn by_value(self) -> u32 {
        self.0
    }

    #[ziggy::context("request", args, err(Display), ret)]
    fn boxed(self: Box<Self>, by: u32) -> Result<u32, String> {
        Ok(self.0 + by)
    }

    #[ziggy::context("request", args, fields(svc = self.0), err, ret(Serialize))]
    #[ziggy::timeit]
    async fn async_method(&self, by: u32) -> Result<u32, Failure> {
        Ok(self.0 + by)
    }

    #[ziggy::context("request", args, ret)]
    async fn async_mut(&mut self, by: u32) -> u32 {
        self.0 += by;
        self.0
    }
}

trait Named {
    fn name(&self, prefix: &str) -> String;
}

impl Named for Svc {
    #[ziggy::context("job", args, fields(n = self.0), ret)]
    fn name(&self, prefix: &str) -> String {
        format!("{prefix}{}", self.0)
    }
}

#[ziggy::context("request", args, skip(secret), fields(kind = "async"), err, ret)]
async fn async_fn(x: u32, secret: String, user: User) -> Result<u32, std::num::ParseIntError> {
    let _ = (secret, user);
    let y: u32 = "2".parse()?;
    Ok(x + y)
}

#[ziggy::context("job", args, ret)]
#[ziggy::timeit]
async fn async_impl(n: u8) -> impl Display {
    n
}

#[ziggy::context("job", args, ret)]
async fn async_generic<T: Debug + Send>(t: T) -> T {
    t
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
        let user = User { name: "ann".into() };
        assert_eq!(free(&user, "pw", (1, 2), 0).ok(), Some(3));
        assert!(free(&user, "", (1, 2), 0).is_err());
        assert_eq!(sql("ab".into()).ok(), Some(vec![1, 1]));
        assert_eq!(generic("a", 1u8), "a1");
        assert_eq!(returns_impl(3).count(), 3);
        assert_eq!(unsafe { unsafe_fn(&7) }, 7);
        assert_eq!(skip_all(2, |n| n * 2), 4);
        let mut s = Svc(1);
        assert_eq!(*s.by_ref(0), 1);
        *s.by_mut(10).unwrap() += 1;
        assert!(s.by_mut(0).is_err());
        assert_eq!(block_on(s.async_method(1)).ok(), Some(3));
        assert_eq!(block_on(s.async_mut(1)), 3);
        assert_eq!(s.name("svc"), "svc3");
        assert_eq!(Svc(1).by_mut_value(1), Ok(2));
        assert_eq!(Box::new(Svc(4)).boxed(1), Ok(5));
        assert_eq!(s.by_value(), 3);
        assert_eq!(block_on(async_fn(1, "s".into(), user)), Ok(3));
        assert_eq!(block_on(async_impl(5)).to_string(), "5");
        assert_eq!(block_on(async_generic(Some(1))), Some(1));
    });
    assert_eq!(events.len(), 19, "{events:?}");
    assert_eq!(events[0].body.get_str("return").unwrap(), "3");
}
