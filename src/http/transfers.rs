//! The requests of every [`super::Fetch`], performed on the I/O thread by
//! one libcurl multi handle (`curl_multi_socket_action`): libcurl tells us
//! which sockets to watch and when its timer is due; the I/O thread's
//! epoll (mio) watches them beside the WebSockets' and hands events back.
//!
//! Everything here runs on the I/O thread. Only [`super::fetch::Shared`]
//! is seen by scripts' threads.
//!
//! Connection caps: libcurl's own queue behind its caps does not keep the
//! order requests came in, so requests wait in our queue instead, in
//! order, and go to libcurl only when their origin and the total have
//! room. An origin is counted by its requests until it has answered over
//! HTTP/2; from then on, by the connections its requests need at
//! [`STREAMS_PER_CONNECTION`] each. libcurl's caps stay set as a backstop.
//!
//! mio is edge-triggered and libcurl expects level-triggered readiness.
//! For input that is enough: on an event, libcurl reads until the socket
//! would block, or it marks the transfer to run again and asks for its
//! timer at once. Output is not: libcurl fills the send buffer once per
//! run, and when the kernel takes all of it no new edge ever comes. So
//! after each run of libcurl the sockets it wants to write to are watched
//! again (`EPOLL_CTL_MOD`), which raises their event while they can take
//! more.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, HashSet, VecDeque};
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
/// Requests one HTTP/2 connection carries at once (libcurl's default
/// `CURLMOPT_MAX_CONCURRENT_STREAMS`).
const STREAMS_PER_CONNECTION: usize = 100;

/// The requests in flight to one origin (scheme, host and port).
#[derive(Default)]
struct Origin {
    in_flight: usize,
    /// It answered over HTTP/2: its requests share connections.
    multiplexes: bool,
}

impl Origin {
    /// The connections `in_flight` requests need.
    fn connections(&self, in_flight: usize) -> usize {
        match self.multiplexes {
            true => in_flight.div_ceil(STREAMS_PER_CONNECTION),
            false => in_flight,
        }
    }
}

/// A request in the queue, with the origin the caps count it by.
struct Waiting {
    origin: String,
    job: Job,
}

/// The origin of `options`' URL, as the caps count it.
fn origin_of(options: &RequestOptions) -> String {
    format!("{}://{}", options.url.scheme(), options.url.authority().to_ascii_lowercase())
}

/// The sockets libcurl asked us to watch, and how.
struct Watched {
    registry: Registry,
    interests: HashMap<curl::multi::Socket, Interest>,
    /// The sockets libcurl wants to write to.
    writers: HashSet<curl::multi::Socket>,
}

impl Watched {
    /// Watches `socket` for `interest`, or stops (`None`).
    fn watch(&mut self, socket: curl::multi::Socket, interest: Option<Interest>) {
        let mut fd = SourceFd(&socket);
        let Some(interest) = interest else {
            self.writers.remove(&socket);
            if self.interests.remove(&socket).is_some() {
                let _ = self.registry.deregister(&mut fd);
            }
            return;
        };
        let token = Token(SOCKET_TOKEN | socket as usize);
        let registered = match self.interests.insert(socket, interest) {
            Some(_) => self.registry.reregister(&mut fd, token, interest),
            None => self.registry.register(&mut fd, token, interest),
        };
        if registered.is_err() {
            self.interests.remove(&socket);
        }
        match registered.is_ok() && interest.is_writable() {
            true => self.writers.insert(socket),
            false => self.writers.remove(&socket),
        };
    }

    /// Watches the writers again: those that can take more raise an event.
    fn rearm_writers(&self) {
        for &socket in &self.writers {
            let token = Token(SOCKET_TOKEN | socket as usize);
            let interest = self.interests[&socket];
            let _ = self.registry.reregister(&mut SourceFd(&socket), token, interest);
        }
    }
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
    origin: String,
}

pub(crate) struct Transfers {
    multi: Multi,
    /// Shared with the socket callback (which libcurl calls only from
    /// inside our calls into it, on this thread).
    watched: Arc<Mutex<Watched>>,
    /// When libcurl wants its timer to run.
    timer: Arc<Mutex<Option<Instant>>>,
    active: HashMap<FetchId, Active>,
    /// Requests waiting for room under the caps, in the order they came.
    queue: VecDeque<Waiting>,
    origins: HashMap<String, Origin>,
    /// The connections the requests in flight need, by [`Origin`].
    connections: usize,
    /// The budgets of requests that had to wait in the queue (libcurl's
    /// timeout covers those in flight, queueing included).
    deadlines: BinaryHeap<Reverse<(Instant, FetchId)>>,
    idle: Vec<Easy2<Collector>>,
    limits: Limits,
}

impl Transfers {
    pub(crate) fn new(registry: &Registry) -> std::io::Result<Transfers> {
        let watched = Arc::new(Mutex::new(Watched {
            registry: registry.try_clone()?,
            interests: HashMap::new(),
            writers: HashSet::new(),
        }));
        let timer = Arc::new(Mutex::new(None));
        let mut multi = Multi::new();
        let in_callback = Arc::clone(&watched);
        multi
            .socket_function(move |socket, events, _| {
                let interest = match (events.remove(), events.input(), events.output()) {
                    (true, _, _) => None,
                    (false, true, true) => Some(Interest::READABLE | Interest::WRITABLE),
                    (false, false, true) => Some(Interest::WRITABLE),
                    (false, _, false) => Some(Interest::READABLE),
                };
                lock(&in_callback).watch(socket, interest);
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
            queue: VecDeque::new(),
            origins: HashMap::new(),
            connections: 0,
            deadlines: BinaryHeap::new(),
            idle: Vec::new(),
            limits,
        })
    }

    pub(crate) fn is_idle(&self) -> bool {
        self.active.is_empty() && self.queue.is_empty()
    }

    /// The next time something is due: libcurl's timer or a budget.
    pub(crate) fn deadline(&self) -> Option<Instant> {
        let timer = *self.timer.lock().unwrap_or_else(|p| p.into_inner());
        let budget = self.deadlines.peek().map(|Reverse((at, _))| *at);
        timer.into_iter().chain(budget).min()
    }

    /// Queues a request; it starts as soon as the caps leave room.
    pub(crate) fn add(&mut self, job: Job) {
        if job.shared.is_finished() {
            return; // cancelled before the I/O thread saw it
        }
        let (id, deadline) = (job.shared.id, job.options.timeout.map(|t| job.started + t));
        self.queue.push_back(Waiting { origin: origin_of(&job.options), job });
        self.admit();
        if let Some(deadline) = deadline {
            if self.queue.back().is_some_and(|waiting| waiting.job.shared.id == id) {
                self.deadlines.push(Reverse((deadline, id)));
            }
        }
        self.settle();
    }

    /// Starts the queued requests the caps leave room for, in order: a
    /// request whose origin is full lets the ones behind it to other
    /// origins go first.
    fn admit(&mut self) {
        let limits = fetch::limits();
        if limits != self.limits && set_limits(&mut self.multi, limits).is_ok() {
            self.limits = limits;
        }
        let mut full: Vec<String> = Vec::new();
        let mut i = 0;
        while i < self.queue.len() && self.connections < limits.max_total_connections {
            let waiting = &self.queue[i];
            if waiting.job.shared.is_finished() {
                self.queue.remove(i); // cancelled while it waited
                continue;
            }
            if full.contains(&waiting.origin) {
                i += 1;
                continue;
            }
            let entry = self.origins.entry(waiting.origin.clone()).or_default();
            let now = entry.connections(entry.in_flight);
            let after = entry.connections(entry.in_flight + 1);
            if after > limits.max_host_connections {
                full.push(waiting.origin.clone());
                i += 1;
                continue;
            }
            if self.connections - now + after > limits.max_total_connections {
                i += 1;
                continue;
            }
            entry.in_flight += 1;
            self.connections = self.connections - now + after;
            let Waiting { origin, job } = self.queue.remove(i).expect("inside the queue");
            let shared = Arc::clone(&job.shared);
            if let Err(e) = self.start(job, origin.clone()) {
                self.release(&origin);
                shared.finish(Err(e));
            }
        }
    }

    /// A request to `origin` left libcurl.
    fn release(&mut self, origin: &str) {
        let Some(entry) = self.origins.get_mut(origin) else { return };
        let before = entry.connections(entry.in_flight);
        entry.in_flight -= 1;
        self.connections = self.connections - before + entry.connections(entry.in_flight);
        if entry.in_flight == 0 && !entry.multiplexes {
            self.origins.remove(origin);
        }
    }

    /// Requests to `origin` share HTTP/2 connections from now on.
    fn multiplexes(&mut self, origin: &str) {
        let Some(entry) = self.origins.get_mut(origin) else { return };
        if !entry.multiplexes {
            let before = entry.connections(entry.in_flight);
            entry.multiplexes = true;
            self.connections = self.connections - before + entry.connections(entry.in_flight);
        }
    }

    fn start(&mut self, job: Job, origin: String) -> Result<(), RequestError> {
        let Job { options, shared, started } = job;
        let shared = &shared;
        let https = options.url.scheme() == "https";
        let mut exchange = Exchange::new(options, started)?;
        let mut easy = match self.idle.pop() {
            Some(easy) => easy,
            None => new_handle().map_err(|e| io_error(e.to_string()))?,
        };
        easy.get_mut().fetch = Some(Arc::clone(shared));
        // Waits for a connection that may multiplex rather than opening
        // another: many requests to one TLS host share one HTTP/2 link.
        let set_up = easy
            .pipewait(https)
            .and_then(|()| easy.progress(true))
            .map_err(|e| io_error(e.to_string()))
            .and_then(|()| exchange.start(&mut easy));
        if let Err(e) = set_up {
            // The handle goes back to its idle state and is kept.
            let _ = self.give_back(exchange, easy, Err(e.clone()));
            return Err(e);
        }
        let id = shared.id;
        let mut handle = self
            .multi
            .add2(easy)
            .map_err(|e| io_error(format!("cannot start the transfer: {e}")))?;
        let _ = handle.set_token(id as usize);
        let active = Active { handle: Some(handle), exchange, shared: Arc::clone(shared), origin };
        self.active.insert(id, active);
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
        lock(&self.watched).rearm_writers();
        self.settle();
    }

    /// Runs what is due: libcurl's timer and the budgets that ran out.
    pub(crate) fn on_time(&mut self) {
        let now = Instant::now();
        if self.deadline().is_none_or(|next| next > now) {
            return;
        }
        let due = self.timer.lock().unwrap_or_else(|p| p.into_inner()).is_some_and(|t| t <= now);
        if due {
            *self.timer.lock().unwrap_or_else(|p| p.into_inner()) = None;
            let _ = self.multi.timeout();
            lock(&self.watched).rearm_writers();
        }
        while let Some(&Reverse((at, id))) = self.deadlines.peek() {
            if at > now {
                break;
            }
            self.deadlines.pop();
            if let Some(active) = self.active.get(&id) {
                let budget = active.exchange.options().timeout.unwrap_or_default();
                self.end(id, Err(error::out_of_budget(budget)));
            } else if let Some(at) = self.queue.iter().position(|w| w.job.shared.id == id) {
                let Waiting { job, .. } = self.queue.remove(at).expect("found");
                let budget = job.options.timeout.unwrap_or_default();
                job.shared.finish(Err(error::out_of_budget(budget)));
            }
        }
        self.admit();
        self.settle();
    }

    /// Drops a request the script cancelled (its outcome is already set).
    pub(crate) fn cancel(&mut self, id: FetchId) {
        if self.active.contains_key(&id) {
            self.end(id, Err(RequestError::new(ErrorKind::Aborted, "cancelled")));
        } else {
            self.queue.retain(|waiting| waiting.job.shared.id != id);
        }
        self.admit();
        self.settle();
    }

    /// A streaming request's script read what was buffered.
    pub(crate) fn resume(&mut self, id: FetchId) {
        if let Some(handle) = self.active.get(&id).and_then(|a| a.handle.as_ref()) {
            let _ = handle.unpause_write();
            lock(&self.watched).rearm_writers();
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
        let ended = !finished.is_empty();
        for (id, performed) in finished {
            self.hop_done(id, performed);
        }
        if ended && !self.queue.is_empty() {
            self.admit();
            // What was admitted may already have finished (a refused
            // connection): take that too.
            self.settle();
        }
    }

    fn hop_done(&mut self, id: FetchId, performed: Result<(), curl::Error>) {
        let Some(active) = self.active.get_mut(&id) else { return };
        let Some(handle) = active.handle.take() else { return };
        let mut easy = match self.multi.remove2(handle) {
            Ok(easy) => easy,
            Err(e) => {
                let active = self.active.remove(&id).expect("found above");
                self.release(&active.origin);
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
                    self.release(&active.origin);
                    active.shared.finish(Err(io_error(format!("cannot start the transfer: {e}"))));
                }
            }
            return;
        };
        let active = self.active.remove(&id).expect("found above");
        // Only a reply from the origin it was counted by (no redirect).
        if outcome.as_ref().is_ok_and(|reply| reply.http_version == c"2" && reply.redirects == 0) {
            self.multiplexes(&active.origin);
        }
        self.release(&active.origin);
        let outcome = self.give_back(active.exchange, easy, outcome);
        active.shared.finish(outcome);
    }

    /// Ends a request in flight with `outcome` (libcurl drops its transfer,
    /// closing the connection if it was in the middle of one).
    fn end(&mut self, id: FetchId, outcome: Result<Reply, RequestError>) {
        let Some(mut active) = self.active.remove(&id) else { return };
        self.release(&active.origin);
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
        let stopped = || RequestError::new(ErrorKind::Aborted, "the I/O thread stopped");
        for id in ids {
            self.end(id, Err(stopped()));
        }
        for waiting in self.queue.drain(..) {
            waiting.job.shared.finish(Err(stopped()));
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_origin_counts_requests_until_it_multiplexes() {
        let mut origin = Origin::default();
        assert_eq!(
            (origin.connections(0), origin.connections(1), origin.connections(7)),
            (0, 1, 7)
        );
        origin.multiplexes = true;
        assert_eq!(origin.connections(0), 0);
        assert_eq!(origin.connections(1), 1);
        assert_eq!(origin.connections(STREAMS_PER_CONNECTION), 1);
        assert_eq!(origin.connections(STREAMS_PER_CONNECTION + 1), 2);
    }

    #[test]
    fn origins_are_scheme_host_and_port() {
        let options = |url: &str| RequestOptions::get(super::super::parse_url(url).unwrap());
        assert_eq!(origin_of(&options("http://Example.com/a")), "http://example.com:80");
        assert_eq!(origin_of(&options("https://example.com:8443/")), "https://example.com:8443");
        assert_ne!(
            origin_of(&options("http://a.example/")),
            origin_of(&options("https://a.example/"))
        );
    }
}
