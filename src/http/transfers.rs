//! The requests of every [`super::Fetch`], performed on the I/O thread by
//! one libcurl multi handle (`curl_multi_socket_action`): libcurl tells us
//! which sockets to watch and when its timer is due; the I/O thread's
//! epoll (mio) watches them beside the WebSockets' and hands events back.
//!
//! Everything here runs on the I/O thread. Only [`super::fetch::Shared`]
//! is seen by scripts' threads.
//!
//! mio is edge-triggered and libcurl may leave input unread after an
//! event, so each socket is re-armed (`EPOLL_CTL_MOD`) after its event:
//! input still waiting then raises a new one.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use curl::easy::Easy2;
use curl::multi::{Easy2Handle, Events, Multi};
use mio::unix::SourceFd;
use mio::{Interest, Registry, Token};

use super::collector::Collector;
use super::error::{self, ErrorKind, RequestError};
use super::fetch::{self, FetchId, Job, Limits, Progress, Shared};
use super::request::{Exchange, Reply};
use super::RequestOptions;

/// Tokens of libcurl's sockets carry this bit; the rest is the descriptor.
pub(crate) const SOCKET_TOKEN: usize = 1 << 62;
/// libcurl's receive buffer for non-blocking requests: its default, since
/// thousands may be in flight at once.
const RECEIVE_BUFFER_SIZE: usize = 16 << 10;
/// Idle handles kept for the next requests.
const MAX_IDLE_HANDLES: usize = 64;

/// The sockets libcurl asked us to watch, and how.
struct Watched {
    registry: Registry,
    interests: HashMap<curl::multi::Socket, Interest>,
}

fn lock(watched: &Mutex<Watched>) -> MutexGuard<'_, Watched> {
    watched.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// One request in flight.
struct Active {
    /// `None` only between two hops.
    handle: Option<Easy2Handle<Collector>>,
    exchange: Exchange<RequestOptions>,
    shared: Arc<Shared>,
}

pub(crate) struct Transfers {
    multi: Multi,
    watched: Arc<Mutex<Watched>>,
    /// When libcurl wants its timer to run.
    timer: Arc<Mutex<Option<Instant>>>,
    active: HashMap<FetchId, Active>,
    /// Each request's whole budget, queueing behind the caps included.
    deadlines: BinaryHeap<Reverse<(Instant, FetchId)>>,
    idle: Vec<Easy2<Collector>>,
    limits: Limits,
}

impl Transfers {
    pub(crate) fn new(registry: &Registry) -> std::io::Result<Transfers> {
        let watched = Arc::new(Mutex::new(Watched {
            registry: registry.try_clone()?,
            interests: HashMap::new(),
        }));
        let timer = Arc::new(Mutex::new(None));
        let mut multi = Multi::new();
        let in_callback = Arc::clone(&watched);
        multi
            .socket_function(move |socket, events, _| {
                let mut watched = lock(&in_callback);
                let watched = &mut *watched;
                let fd = SourceFd(&socket);
                let token = Token(SOCKET_TOKEN | socket as usize);
                if events.remove() {
                    if watched.interests.remove(&socket).is_some() {
                        let _ = watched.registry.deregister(&mut SourceFd(&socket));
                    }
                    return;
                }
                let interest = match (events.input(), events.output()) {
                    (true, true) => Interest::READABLE | Interest::WRITABLE,
                    (false, true) => Interest::WRITABLE,
                    _ => Interest::READABLE,
                };
                let mut fd = fd;
                let registered = match watched.interests.insert(socket, interest) {
                    Some(_) => watched.registry.reregister(&mut fd, token, interest),
                    None => watched.registry.register(&mut fd, token, interest),
                };
                if registered.is_err() {
                    watched.interests.remove(&socket);
                }
            })
            .map_err(to_io)?;
        let in_timer = Arc::clone(&timer);
        multi
            .timer_function(move |due: Option<Duration>| {
                *in_timer.lock().unwrap_or_else(|p| p.into_inner()) =
                    due.map(|d| Instant::now() + d);
                true
            })
            .map_err(to_io)?;
        multi.pipelining(false, true).map_err(to_io)?;
        let limits = fetch::limits();
        set_limits(&mut multi, limits).map_err(to_io)?;
        Ok(Transfers {
            multi,
            watched,
            timer,
            active: HashMap::new(),
            deadlines: BinaryHeap::new(),
            idle: Vec::new(),
            limits,
        })
    }

    pub(crate) fn is_idle(&self) -> bool {
        self.active.is_empty()
    }

    /// The next time something is due: libcurl's timer or a budget.
    pub(crate) fn deadline(&self) -> Option<Instant> {
        let timer = *self.timer.lock().unwrap_or_else(|p| p.into_inner());
        let budget = self.deadlines.peek().map(|Reverse((at, _))| *at);
        timer.into_iter().chain(budget).min()
    }

    /// Starts a request; a failure to start is its outcome.
    pub(crate) fn add(&mut self, job: Job) {
        let Job { options, shared, started } = job;
        if shared.is_finished() {
            return; // cancelled before the I/O thread saw it
        }
        if let Err(e) = self.start(options, &shared, started) {
            shared.finish(Err(e));
        }
        self.settle();
    }

    fn start(
        &mut self,
        options: RequestOptions,
        shared: &Arc<Shared>,
        started: Instant,
    ) -> Result<(), RequestError> {
        let limits = fetch::limits();
        if limits != self.limits {
            set_limits(&mut self.multi, limits).map_err(|e| io_error(e.to_string()))?;
            self.limits = limits;
        }
        let https = options.url.scheme() == "https";
        let mut exchange = Exchange::new(options, started)?;
        let mut easy = match self.idle.pop() {
            Some(easy) => easy,
            None => new_handle().map_err(|e| io_error(e.to_string()))?,
        };
        easy.get_mut().fetch = Some(Arc::clone(shared));
        // Waits for a connection that may multiplex rather than opening
        // another: many requests to one TLS host share one HTTP/2 link.
        let set = easy.pipewait(https).and_then(|()| easy.progress(true));
        if let Err(e) = set {
            return Err(self.give_back(exchange, easy, Err(io_error(e.to_string()))).unwrap_err());
        }
        if let Err(e) = exchange.start(&mut easy) {
            return Err(self.give_back(exchange, easy, Err(e)).unwrap_err());
        }
        let id = shared.id;
        let handle = match self.multi.add2(easy) {
            Ok(handle) => handle,
            Err(e) => return Err(io_error(format!("cannot start the transfer: {e}"))),
        };
        let mut handle = handle;
        let _ = handle.set_token(id as usize);
        if let Some(deadline) = exchange.deadline() {
            self.deadlines.push(Reverse((deadline, id)));
        }
        self.active
            .insert(id, Active { handle: Some(handle), exchange, shared: Arc::clone(shared) });
        Ok(())
    }

    /// Restores `easy`, keeps it for the next request, and returns the
    /// outcome as the exchange makes it final.
    fn give_back(
        &mut self,
        exchange: Exchange<RequestOptions>,
        mut easy: Easy2<Collector>,
        outcome: Result<Reply, RequestError>,
    ) -> Result<Reply, RequestError> {
        let outcome = exchange.finish(&mut easy, outcome);
        let collector = easy.get_mut();
        collector.fetch = None;
        if !collector.broken && self.idle.len() < MAX_IDLE_HANDLES {
            self.idle.push(easy);
        }
        outcome
    }

    /// Input or output on one of libcurl's sockets.
    pub(crate) fn on_socket(&mut self, token: usize, readable: bool, writable: bool, error: bool) {
        let socket = (token & !SOCKET_TOKEN) as curl::multi::Socket;
        let mut events = Events::new();
        events.input(readable).output(writable).error(error);
        let _ = self.multi.action(socket, &events);
        self.rearm(socket);
        self.settle();
    }

    /// Watches `socket` again with the same interest, so that input libcurl
    /// left unread raises a new event.
    fn rearm(&self, socket: curl::multi::Socket) {
        let watched = lock(&self.watched);
        if let Some(&interest) = watched.interests.get(&socket) {
            let token = Token(SOCKET_TOKEN | socket as usize);
            let _ = watched.registry.reregister(&mut SourceFd(&socket), token, interest);
        }
    }

    /// Runs what is due: libcurl's timer and the budgets that ran out.
    pub(crate) fn on_time(&mut self) {
        let now = Instant::now();
        let due = self.timer.lock().unwrap_or_else(|p| p.into_inner()).is_some_and(|t| t <= now);
        if due {
            *self.timer.lock().unwrap_or_else(|p| p.into_inner()) = None;
            let _ = self.multi.timeout();
        }
        while let Some(&Reverse((at, id))) = self.deadlines.peek() {
            if at > now {
                break;
            }
            self.deadlines.pop();
            let Some(active) = self.active.get(&id) else { continue };
            let budget = active.exchange.options().timeout.unwrap_or_default();
            self.end(id, Err(error::out_of_budget(budget)));
        }
        self.settle();
    }

    /// Drops a request the script cancelled (its outcome is already set).
    pub(crate) fn cancel(&mut self, id: FetchId) {
        if self.active.contains_key(&id) {
            self.end(id, Err(RequestError::new(ErrorKind::Aborted, "cancelled")));
            self.settle();
        }
    }

    /// A streaming request's script read what was buffered.
    pub(crate) fn resume(&mut self, id: FetchId) {
        if let Some(handle) = self.active.get(&id).and_then(|a| a.handle.as_ref()) {
            let _ = handle.unpause_write();
        }
        self.settle();
    }

    /// Takes the finished hops libcurl reports: each request goes on to its
    /// next hop or ends.
    fn settle(&mut self) {
        let mut finished = Vec::new();
        let active = &self.active;
        self.multi.messages(|message| {
            let Ok(token) = message.token() else { return };
            let id = token as FetchId;
            let Some(handle) = active.get(&id).and_then(|a| a.handle.as_ref()) else { return };
            if let Some(result) = message.result_for2(handle) {
                finished.push((id, result));
            }
        });
        for (id, performed) in finished {
            self.hop_done(id, performed);
        }
    }

    fn hop_done(&mut self, id: FetchId, performed: Result<(), curl::Error>) {
        let Some(active) = self.active.get_mut(&id) else { return };
        let Some(handle) = active.handle.take() else { return };
        let mut easy = match self.multi.remove2(handle) {
            Ok(easy) => easy,
            Err(e) => {
                let active = self.active.remove(&id).expect("found above");
                active.shared.finish(Err(io_error(format!("cannot end the transfer: {e}"))));
                return;
            }
        };
        publish_progress(&easy, &active.shared);
        let Some(outcome) = active.exchange.hop_done(&mut easy, performed) else {
            // The next hop of a redirect.
            match self.multi.add2(easy) {
                Ok(mut handle) => {
                    let _ = handle.set_token(id as usize);
                    active.handle = Some(handle);
                }
                Err(e) => {
                    let active = self.active.remove(&id).expect("found above");
                    active.shared.finish(Err(io_error(format!("cannot start the transfer: {e}"))));
                }
            }
            return;
        };
        let active = self.active.remove(&id).expect("found above");
        let outcome = self.give_back(active.exchange, easy, outcome);
        active.shared.finish(outcome);
    }

    /// Ends a request in flight with `outcome` (libcurl drops its transfer,
    /// closing the connection if it was in the middle of one).
    fn end(&mut self, id: FetchId, outcome: Result<Reply, RequestError>) {
        let Some(mut active) = self.active.remove(&id) else { return };
        let Some(handle) = active.handle.take() else { return };
        match self.multi.remove2(handle) {
            Ok(easy) => {
                let outcome = self.give_back(active.exchange, easy, outcome);
                active.shared.finish(outcome);
            }
            Err(e) => {
                active.shared.finish(Err(io_error(format!("cannot end the transfer: {e}"))));
            }
        }
    }
}

impl Drop for Transfers {
    /// Every transfer leaves the multi handle before it goes.
    fn drop(&mut self) {
        let ids: Vec<FetchId> = self.active.keys().copied().collect();
        for id in ids {
            self.end(id, Err(RequestError::new(ErrorKind::Aborted, "the I/O thread stopped")));
        }
    }
}

/// A handle for non-blocking requests: the pooled handles' options, with a
/// receive buffer sized for thousands in flight.
fn new_handle() -> Result<Easy2<Collector>, curl::Error> {
    let mut easy = super::new_handle()?;
    easy.buffer_size(RECEIVE_BUFFER_SIZE)?;
    Ok(easy)
}

fn set_limits(multi: &mut Multi, limits: Limits) -> Result<(), curl::MultiError> {
    multi.set_max_host_connections(limits.max_host_connections)?;
    multi.set_max_total_connections(limits.max_total_connections)
}

/// The counters as the transfer ended (libcurl's last progress callback
/// may come before the last bytes).
fn publish_progress(easy: &Easy2<Collector>, shared: &Shared) {
    let count =
        |value: Result<f64, curl::Error>| value.ok().filter(|v| *v >= 0.0).map(|v| v as u64);
    let last = shared.progress();
    shared.set_progress(Progress {
        received: count(easy.download_size()).unwrap_or(last.received),
        receive_total: count(easy.content_length_download()).or(last.receive_total),
        sent: count(easy.upload_size()).unwrap_or(last.sent).max(last.sent),
        ..last
    });
}

fn io_error(message: String) -> RequestError {
    RequestError::new(ErrorKind::Io, message)
}

fn to_io(e: curl::MultiError) -> std::io::Error {
    std::io::Error::other(e.to_string())
}
