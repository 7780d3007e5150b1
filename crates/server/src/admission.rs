//! Admission: what a request may hold before and while it is served.
//!
//! - Bytes in flight: every request reserves the bytes it will hold (its declared
//!   body, or each frame as it arrives when nothing is declared) from one budget
//!   before reading them, and keeps the reservation until its evaluation has
//!   finished — the blocking work owns a share of it, so a client that disconnects
//!   does not free bytes that an evaluation still holds.
//! - Evaluations: one per model instance; at most `max_queue` more wait, the rest get
//!   503 / UNAVAILABLE at once rather than queueing without bound.
//! - Time: a body must arrive within `body_timeout` of its header.
//! - Connections: accepted only while fewer than `max_connections` are open; a
//!   connection that sends nothing within `header_timeout` of its accept is closed.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use http_body::Body as HttpBody;
use http_body_util::BodyExt;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, OwnedSemaphorePermit, Semaphore};
use tokio::time::{Instant, Sleep};
use tonic::transport::server::Connected;

use crate::error::RequestError;
use crate::limits::Limits;

/// The shared budgets of one server.
pub struct Admission {
    pub limits: Limits,
    pub max_request_bytes: usize,
    bytes: Arc<Semaphore>,
    /// requests (or merged groups) waiting for a model instance
    pub(crate) queue: Arc<Semaphore>,
}

impl Admission {
    pub fn new(max_request_bytes: usize, limits: Limits) -> Self {
        let bytes = Arc::new(Semaphore::new(limits.max_inflight_bytes.min(Semaphore::MAX_PERMITS)));
        let queue = Arc::new(Semaphore::new(limits.max_queue));
        Admission { limits, max_request_bytes, bytes, queue }
    }

    /// Request bytes reserved now (for tests and logs).
    pub fn inflight_bytes(&self) -> usize {
        self.limits.max_inflight_bytes.min(Semaphore::MAX_PERMITS) - self.bytes.available_permits()
    }

    /// An empty reservation that requests grow as they learn what they will hold.
    pub fn reservation(&self) -> Reservation {
        Reservation(Arc::new(Held {
            budget: self.bytes.clone(),
            total: self.limits.max_inflight_bytes,
            permit: Mutex::new(None),
        }))
    }

    pub(crate) fn busy_queue(&self) -> RequestError {
        RequestError::Unavailable(format!(
            "the server is busy: every model instance is evaluating and {} requests already wait (heinfer serve --max-queue); retry later",
            self.limits.max_queue
        ))
    }
}

struct Held {
    budget: Arc<Semaphore>,
    total: usize,
    permit: Mutex<Option<OwnedSemaphorePermit>>,
}

/// Bytes one request holds against the in-flight budget; released when the last
/// clone (the handler's, the blocking evaluation's) is dropped.
#[derive(Clone)]
pub struct Reservation(Arc<Held>);

impl Reservation {
    /// Reserves `n` more bytes, or refuses at once when the budget cannot cover them:
    /// a request never waits holding a part of the budget.
    pub fn grow(&self, n: usize) -> Result<(), RequestError> {
        if n == 0 {
            return Ok(());
        }
        let busy = || {
            RequestError::Unavailable(format!(
                "the server is busy: requests in flight already hold most of the {} MB of request data it accepts at once (heinfer serve --max-inflight-mb); retry later",
                self.0.total >> 20
            ))
        };
        let n32 = u32::try_from(n).map_err(|_| busy())?;
        let p = self.0.budget.clone().try_acquire_many_owned(n32).map_err(|_| busy())?;
        let mut held = self.0.permit.lock().unwrap_or_else(|e| e.into_inner());
        match held.as_mut() {
            Some(h) => h.merge(p),
            None => *held = Some(p),
        }
        Ok(())
    }

    pub fn bytes(&self) -> usize {
        self.0.permit.lock().unwrap_or_else(|e| e.into_inner()).as_ref().map_or(0, |p| p.num_permits())
    }
}

/// Reads a request body frame by frame against a deadline; with `charge`, every
/// frame is reserved before it is kept (bodies whose length was not declared).
pub struct BodyReader<B> {
    body: B,
    left: Bytes,
    deadline: Instant,
    timeout: Duration,
    res: Reservation,
    charge: bool,
    /// bytes taken from the body so far, and the most it may hold
    read: usize,
    cap: usize,
    cap_flag: &'static str,
}

impl<B> BodyReader<B>
where
    B: HttpBody<Data = Bytes> + Unpin,
    B::Error: std::fmt::Display,
{
    pub fn new(body: B, timeout: Duration, res: Reservation, charge: bool, cap: usize, cap_flag: &'static str) -> Self {
        BodyReader {
            body,
            left: Bytes::new(),
            deadline: Instant::now() + timeout,
            timeout,
            res,
            charge,
            read: 0,
            cap,
            cap_flag,
        }
    }

    pub fn reservation(&self) -> &Reservation {
        &self.res
    }

    /// Once a body's total size is known (from its own header), reserves what of it
    /// is not reserved yet, and stops charging frame by frame.
    pub fn reserve_total(&mut self, total: usize) -> Result<(), RequestError> {
        if self.charge {
            self.res.grow(total.saturating_sub(self.read))?;
            self.charge = false;
        }
        Ok(())
    }

    async fn frame(&mut self) -> Result<Option<Bytes>, RequestError> {
        loop {
            let f = tokio::time::timeout_at(self.deadline, self.body.frame()).await.map_err(|_| {
                RequestError::Timeout(format!(
                    "the request body did not arrive within {} s (heinfer serve --body-timeout-s)",
                    self.timeout.as_secs_f64()
                ))
            })?;
            let Some(f) = f else { return Ok(None) };
            let f = f.map_err(|e| RequestError::bad(format!("cannot read the request body: {e}")))?;
            let Ok(data) = f.into_data() else { continue };
            self.read += data.len();
            if self.read > self.cap {
                return Err(RequestError::TooLarge(format!(
                    "request body exceeds the server's limit of {} (heinfer serve {})",
                    human(self.cap),
                    self.cap_flag
                )));
            }
            if self.charge {
                self.res.grow(data.len())?;
            }
            return Ok(Some(data));
        }
    }

    /// Exactly `n` bytes as one buffer; `n` has been checked against the limits and
    /// reserved (or frames are charged), so the allocation is bounded.
    pub async fn read_exact(&mut self, n: usize, what: &str) -> Result<Bytes, RequestError> {
        if self.left.len() >= n {
            return Ok(self.left.split_to(n));
        }
        let mut buf = BytesMut::with_capacity(if self.charge { self.left.len() } else { n });
        buf.extend_from_slice(&self.left);
        self.left = Bytes::new();
        while buf.len() < n {
            let Some(mut d) = self.frame().await? else {
                return Err(RequestError::bad(format!(
                    "the request body ended inside {what} ({} of {n} bytes)",
                    buf.len()
                )));
            };
            let take = (n - buf.len()).min(d.len());
            buf.extend_from_slice(&d[..take]);
            self.left = d.split_off(take);
        }
        Ok(buf.freeze())
    }

    /// The rest of the body (up to the reader's cap).
    pub async fn read_to_end(&mut self) -> Result<Bytes, RequestError> {
        let mut buf = BytesMut::new();
        buf.extend_from_slice(&self.left);
        self.left = Bytes::new();
        while let Some(d) = self.frame().await? {
            buf.extend_from_slice(&d);
        }
        Ok(buf.freeze())
    }

    /// Fails if any byte is left.
    pub async fn expect_end(&mut self, what: impl FnOnce(usize) -> String) -> Result<(), RequestError> {
        let mut extra = self.left.len();
        self.left = Bytes::new();
        while let Some(d) = self.frame().await? {
            extra += d.len();
        }
        if extra > 0 {
            return Err(RequestError::bad(what(extra)));
        }
        Ok(())
    }
}

/// Sizes in the units the flags take.
pub fn human(n: usize) -> String {
    if n >= 1 << 20 && n.is_multiple_of(1 << 20) {
        format!("{} MB", n >> 20)
    } else if n >= 1 << 10 && n.is_multiple_of(1 << 10) {
        format!("{} KB", n >> 10)
    } else {
        format!("{n} bytes")
    }
}

/// An accepted connection that counts against the listener's cap until it closes,
/// and is closed if it sends nothing within the first-bytes deadline (a client
/// that connects and stays silent would otherwise hold a slot for ever; once a
/// protocol is spoken, HTTP/1's header timeout and the body timeout take over).
pub struct LimitedIo {
    io: TcpStream,
    _slot: OwnedSemaphorePermit,
    first: Option<Pin<Box<Sleep>>>,
}

impl AsyncRead for LimitedIo {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let r = Pin::new(&mut self.io).poll_read(cx, buf);
        match &r {
            Poll::Ready(Ok(())) if buf.filled().len() > before => self.first = None,
            Poll::Pending => {
                if let Some(t) = self.first.as_mut() {
                    if t.as_mut().poll(cx).is_ready() {
                        return Poll::Ready(Err(io::Error::new(
                            io::ErrorKind::TimedOut,
                            "no request within the header timeout of the connection's accept",
                        )));
                    }
                }
            }
            _ => {}
        }
        r
    }
}

impl AsyncWrite for LimitedIo {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write(cx, buf)
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write_vectored(cx, bufs)
    }
    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }
}

impl Connected for LimitedIo {
    type ConnectInfo = tonic::transport::server::TcpConnectInfo;
    fn connect_info(&self) -> Self::ConnectInfo {
        self.io.connect_info()
    }
}

/// Accepts connections while fewer than `max` are open (the rest wait in the
/// kernel's backlog), until `stop` says true.
pub struct Acceptor {
    listener: TcpListener,
    slots: Arc<Semaphore>,
    first_bytes: Duration,
    stop: watch::Receiver<bool>,
}

impl Acceptor {
    pub fn new(listener: TcpListener, max: usize, first_bytes: Duration, stop: watch::Receiver<bool>) -> Self {
        Acceptor { listener, slots: Arc::new(Semaphore::new(max)), first_bytes, stop }
    }

    /// The next connection, or None once stopping.
    pub async fn accept(&mut self) -> Option<LimitedIo> {
        let mut stop = self.stop.clone();
        let stopped = async move {
            let _ = stop.wait_for(|s| *s).await;
        };
        tokio::pin!(stopped);
        loop {
            let slot = tokio::select! {
                p = self.slots.clone().acquire_owned() => p.ok()?,
                _ = &mut stopped => return None,
            };
            let accepted = tokio::select! {
                r = self.listener.accept() => r,
                _ = &mut stopped => return None,
            };
            match accepted {
                Ok((io, _)) => {
                    let _ = io.set_nodelay(true);
                    let first = Some(Box::pin(tokio::time::sleep(self.first_bytes)));
                    return Some(LimitedIo { io, _slot: slot, first });
                }
                // Out of descriptors and the like: pass, rather than spin or stop serving.
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed");
                    drop(slot);
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
        }
    }
}
