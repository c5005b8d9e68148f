#include "http/server.h"

#include <pthread.h>
#include <signal.h>

#include <algorithm>
#include <csignal>
#include <exception>
#include <functional>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "common/thread_name.h"
#include "http/beast.h"
#include "http/listener.h"
#include "http/session.h"

namespace keygate::http {

namespace net = internal::net;
namespace beast = internal::beast;
using internal::tcp;

namespace {

// After the drain timeout closes the remaining connections, how long their sessions get to
// unwind (run OnClientGone callbacks, which are posted handlers) before the io threads stop.
constexpr std::chrono::milliseconds kForceCloseGrace{250};
// At the drain's deadline (not a second signal), how long a handler that cannot be cancelled
// (a management call waiting on the store, whose busy timeout is 5 s) is given to answer, so
// that its client learns whether its write was applied. The stop ends as soon as every
// connection has closed.
constexpr std::chrono::seconds kUncancellableGrace{10};

// The signal set of SIGHUP alone, which a process holds until its server runs.
sigset_t SighupSet() {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGHUP);
  return set;
}

Status ValidateOptions(const ServerOptions& options) {
  if (options.host.empty()) return Error::InvalidArgument("host must not be empty", "host");
  if (options.max_body_bytes == 0) {
    return Error::InvalidArgument("max_body_bytes must be positive", "max_body_bytes");
  }
  if (options.header_timeout_s < 1) {
    return Error::InvalidArgument("header_timeout_s must be at least 1", "header_timeout_s");
  }
  if (options.idle_timeout_s < 1) {
    return Error::InvalidArgument("idle_timeout_s must be at least 1", "idle_timeout_s");
  }
  if (options.max_connections < 1) {
    return Error::InvalidArgument("max_connections must be at least 1", "max_connections");
  }
  if (options.io_threads < 0) {
    return Error::InvalidArgument("io_threads must be 0 (one per core) or more", "io_threads");
  }
  if (options.blocking_threads < 1) {
    return Error::InvalidArgument("blocking_threads must be at least 1", "blocking_threads");
  }
  if (options.drain_timeout_s < 0) {
    return Error::InvalidArgument("drain_timeout_s must not be negative", "drain_timeout_s");
  }
  return OkStatus();
}

int IoThreadCount(const ServerOptions& options) {
  if (options.io_threads > 0) return options.io_threads;
  return std::max(1, static_cast<int>(std::thread::hardware_concurrency()));
}

}  // namespace

class Server::Impl {
 public:
  Impl(ServerOptions options, Router& router, Logger& logger)
      : options_(std::move(options)),
        logger_(logger),
        metrics_(static_cast<size_t>(IoThreadCount(options_))),
        state_(options_, router, logger, metrics_),
        shards_(MakeShards(IoThreadCount(options_))),
        control_(*shards_.front()),
        drain_timer_(control_) {}

  ~Impl() { state_.MarkStopped(); }

  Result<uint16_t> Start();
  Status Run();
  void Stop();
  void OnSighup(std::function<void()> callback) {
    std::lock_guard<std::mutex> lock(sighup_mu_);
    on_sighup_ = std::move(callback);
  }
  size_t active_connections() const { return state_.active(); }
  void AppendMetrics(std::string* out) const {
    metrics_.AppendPrometheus(out);
    out->append("# HELP keygate_http_connections_open Client connections open now.\n"
                "# TYPE keygate_http_connections_open gauge\nkeygate_http_connections_open ");
    out->append(std::to_string(state_.active()));
    out->push_back('\n');
  }

 private:
  // One io_context per io thread, each told that one thread runs it and does every operation
  // on its sockets (so its scheduler skips the wake-ups several threads would need, and its
  // reactor the lock per socket operation). Sockets and timers of a shard are only ever used
  // on its thread: a session and its upstream exchanges live there, and what other threads
  // ask of them (an answer, a cancellation, a drain) is posted, and the listener hands each
  // accepted descriptor to its shard's thread, which registers it. Posting, timers and socket
  // registration stay locked: any thread may post.
  static std::vector<std::unique_ptr<net::io_context>> MakeShards(int count) {
    std::vector<std::unique_ptr<net::io_context>> shards;
    for (int i = 0; i < count; ++i) {
      shards.push_back(std::make_unique<net::io_context>(BOOST_ASIO_CONCURRENCY_HINT_UNSAFE_IO));
    }
    return shards;
  }
  std::vector<net::io_context*> ShardPointers() const {
    std::vector<net::io_context*> out;
    for (const auto& shard : shards_) out.push_back(shard.get());
    return out;
  }

  Result<tcp::endpoint> ResolveEndpoint();
  void RunIoLoop(net::io_context& shard);
  void WaitForSignal();
  // Runs the SIGHUP callback on the blocking pool, or (`now`) on this thread.
  void RunSighup(bool now = false);
  void BeginDrain();
  // `forced`: a second signal (nothing waits), else the drain's deadline.
  void OnDrainTimeout(bool forced);
  void FinishDrain();

  // Destruction runs bottom-up: the blocking pool (whose queued handlers hold sessions) goes
  // before the io_contexts, and the ServerState (which sessions unregister from) after them.
  ServerOptions options_;
  Logger& logger_;
  HttpMetrics metrics_;
  internal::ServerState state_;
  std::vector<std::unique_ptr<net::io_context>> shards_;
  net::io_context& control_;  // the first shard: drain and signal handling
  net::steady_timer drain_timer_;
  std::optional<net::signal_set> signals_;
  std::optional<net::thread_pool> blocking_pool_;
  std::shared_ptr<internal::Listener> listener_;
  std::mutex sighup_mu_;
  std::function<void()> on_sighup_;  // guarded by sighup_mu_
  std::atomic<bool> stop_requested_{false};
  bool drain_finished_ = false;  // on control_
  uint16_t port_ = 0;
};

Result<uint16_t> Server::Impl::Start() {
  if (listener_) return Error::Internal("Server::Start() called twice");
  KG_RETURN_IF_ERROR(ValidateOptions(options_));
  Result<tcp::endpoint> endpoint = ResolveEndpoint();
  if (!endpoint.ok()) return endpoint.error();
  auto listener = std::make_shared<internal::Listener>(ShardPointers(), state_);
  KG_RETURN_IF_ERROR(listener->Listen(*endpoint));
  listener_ = std::move(listener);
  listener_->Run();
  port_ = listener_->port();
  return port_;
}

Result<tcp::endpoint> Server::Impl::ResolveEndpoint() {
  beast::error_code ec;
  net::ip::address address = net::ip::make_address(options_.host, ec);
  if (!ec) return tcp::endpoint(address, options_.port);
  tcp::resolver resolver(control_);
  auto results = resolver.resolve(options_.host, std::to_string(options_.port), ec);
  if (ec || results.empty()) {
    return Error::InvalidArgument(
        "cannot resolve host '" + options_.host + "': " + (ec ? ec.message() : "no address"),
        "host");
  }
  return results.begin()->endpoint();
}

namespace {

// Threads stopped (by `stop`) and joined when this goes, however the scope ends: a return, or
// an exception, which would otherwise destroy a joinable std::thread (std::terminate).
class JoinedAtExit {
 public:
  explicit JoinedAtExit(std::function<void()> stop) : stop_(std::move(stop)) {}
  JoinedAtExit(const JoinedAtExit&) = delete;
  JoinedAtExit& operator=(const JoinedAtExit&) = delete;
  ~JoinedAtExit() { Join(); }

  void Join() {
    if (stop_) std::exchange(stop_, nullptr)();
    for (std::thread& thread : threads) {
      if (thread.joinable()) thread.join();
    }
  }

  std::vector<std::thread> threads;

 private:
  std::function<void()> stop_;
};

// Starts `count` threads running `body(i)` for i in [0, count), named `name`-(i+1), into
// `threads`. On a thread that cannot be made (a limit on tasks or memory), returns why; those
// made are left to the caller.
Status StartThreads(int count, const std::string& name, const std::function<void(int)>& body,
                    std::vector<std::thread>* threads) {
  try {
    for (int i = 0; i < count; ++i) {
      threads->emplace_back([name = name + "-" + std::to_string(i + 1), body, i] {
        NameThisThread(name);
        body(i);
      });
    }
  } catch (const std::exception& e) {
    return Error::Unavailable("cannot start thread " + std::to_string(threads->size() + 1) +
                              " of " + std::to_string(count) + " (" + name + "): " + e.what() +
                              "; a limit on tasks or memory (a cgroup's pids.max, systemd's "
                              "TasksMax, ulimit -u or -v) is too low");
  }
  return OkStatus();
}

}  // namespace

Status Server::Impl::Run() {
  if (!listener_) {
    logger_.Error("http.run_without_start");
    return Error::Internal("Server::Run without Start");
  }
  // The blocking pool's threads are made here and attached to Asio's pool (made with none):
  // when Asio's own constructor cannot make one, it waits for those it made, which never
  // stop, and the process hung with its port bound (audit BB, a pids limit of 40). Handlers
  // already running when it stops finish (their responses go nowhere); queued ones are dropped.
  blocking_pool_.emplace(0);
  JoinedAtExit blocking([this] { blocking_pool_->stop(); });
  KG_RETURN_IF_ERROR(StartThreads(options_.blocking_threads, "kg-block",
                                  [this](int) { blocking_pool_->attach(); }, &blocking.threads));
  state_.set_blocking_pool(&*blocking_pool_);
  signals_.emplace(control_, SIGINT, SIGTERM, SIGHUP);
  WaitForSignal();
  // A SIGHUP held since the process started (HoldSighupUntilRun) is a reload made here, before
  // the first request is served (made by the handler, it would race the first requests); one
  // that comes later goes to the handler. The io threads started below take this thread's mask.
  const sigset_t hup = SighupSet();
  const timespec no_wait{0, 0};
  if (sigtimedwait(&hup, nullptr, &no_wait) == SIGHUP) RunSighup(/*now=*/true);
  pthread_sigmask(SIG_UNBLOCK, &hup, nullptr);
  int threads = IoThreadCount(options_);
  logger_.Info("http.listening", {{"host", options_.host},
                                  {"port", static_cast<int>(port_)},
                                  {"io_threads", threads},
                                  {"blocking_threads", options_.blocking_threads}});
  // Every shard keeps running (even with no connection) until FinishDrain() stops them all.
  std::vector<net::executor_work_guard<net::io_context::executor_type>> keep_running;
  for (auto& shard : shards_) keep_running.push_back(net::make_work_guard(*shard));
  JoinedAtExit workers([this, &keep_running] {
    keep_running.clear();
    for (auto& shard : shards_) shard->stop();
  });
  workers.threads.reserve(shards_.size() - 1);
  KG_RETURN_IF_ERROR(StartThreads(static_cast<int>(shards_.size()) - 1, "kg-io",
                                  [this](int i) { RunIoLoop(*shards_[i + 1]); },
                                  &workers.threads));
  RunIoLoop(*shards_.front());  // on the main thread, which keeps the process's name
  workers.Join();
  blocking.Join();
  logger_.Info("http.stopped");
  return OkStatus();
}

void Server::HoldSighupUntilRun() {
  const sigset_t hup = SighupSet();
  pthread_sigmask(SIG_BLOCK, &hup, nullptr);
}

void Server::Impl::RunIoLoop(net::io_context& shard) {
  // Sessions catch handler exceptions; this only guards against one escaping Asio itself
  // (such as bad_alloc), after which the thread rejoins the loop.
  while (true) {
    try {
      shard.run();
      return;
    } catch (const std::exception& e) {
      logger_.Error("http.io_exception", {{"error", e.what()}});
    } catch (...) {
      logger_.Error("http.io_exception", {{"error", "non-standard exception"}});
    }
  }
}

void Server::Impl::Stop() {
  if (stop_requested_.exchange(true)) return;
  net::post(control_, [this] { BeginDrain(); });
}

void Server::Impl::WaitForSignal() {
  signals_->async_wait([this](beast::error_code ec, int signal_number) {
    if (ec) return;
    if (signal_number == SIGHUP) {
      RunSighup();
    } else if (stop_requested_.load()) {
      // A second SIGTERM/SIGINT while draining: the operator wants out now.
      logger_.Warn("http.signal_forced_stop", {{"signal", signal_number}});
      OnDrainTimeout(/*forced=*/true);
    } else {
      logger_.Info("http.signal", {{"signal", signal_number}});
      Stop();
    }
    WaitForSignal();
  });
}

void Server::Impl::RunSighup(bool now) {
  std::function<void()> callback;
  {
    std::lock_guard<std::mutex> lock(sighup_mu_);
    callback = on_sighup_;
  }
  logger_.Info("http.sighup", {{"has_callback", static_cast<bool>(callback)}});
  if (!callback) return;
  auto run = [this, callback = std::move(callback)] {
    try {
      callback();
    } catch (const std::exception& e) {
      logger_.Error("http.sighup_failed", {{"error", e.what()}});
    } catch (...) {
      logger_.Error("http.sighup_failed", {{"error", "non-standard exception"}});
    }
  };
  if (now) return run();
  // The callback may block (re-reading config); the blocking pool keeps io threads free.
  net::post(*blocking_pool_, std::move(run));
}

void Server::Impl::BeginDrain() {
  logger_.Info("http.draining", {{"active_connections", static_cast<uint64_t>(state_.active())},
                                 {"drain_timeout_s", options_.drain_timeout_s}});
  if (listener_) listener_->Close();
  std::vector<std::shared_ptr<internal::Session>> sessions =
      state_.BeginDrain([this] { net::post(control_, [this] { FinishDrain(); }); });
  for (const auto& session : sessions) session->Shutdown();
  drain_timer_.expires_after(std::chrono::seconds(options_.drain_timeout_s));
  drain_timer_.async_wait([this](beast::error_code ec) {
    if (!ec) OnDrainTimeout(/*forced=*/false);
  });
}

void Server::Impl::OnDrainTimeout(bool forced) {
  if (drain_finished_) return;
  std::vector<std::shared_ptr<internal::Session>> sessions = state_.Sessions();
  logger_.Warn("http.drain_timeout",
               {{"open_connections", static_cast<uint64_t>(sessions.size())}, {"forced", forced}});
  for (const auto& session : sessions) session->ForceClose(forced);
  drain_timer_.expires_after(forced ? std::chrono::milliseconds(kForceCloseGrace)
                                    : std::chrono::milliseconds(kUncancellableGrace));
  drain_timer_.async_wait([this](beast::error_code ec) {
    if (!ec) FinishDrain();
  });
}

void Server::Impl::FinishDrain() {
  if (drain_finished_) return;
  drain_finished_ = true;
  beast::error_code ignored;
  drain_timer_.cancel();
  if (signals_) signals_->cancel(ignored);
  state_.MarkStopped();
  for (auto& shard : shards_) shard->stop();
}

// Server

Server::Server(ServerOptions options, Router& router, Logger& logger)
    : impl_(std::make_unique<Impl>(std::move(options), router, logger)) {}

Server::~Server() = default;

Result<uint16_t> Server::Start() { return impl_->Start(); }

Status Server::Run() { return impl_->Run(); }

void Server::Stop() { impl_->Stop(); }

void Server::OnSighup(std::function<void()> callback) { impl_->OnSighup(std::move(callback)); }

size_t Server::active_connections() const { return impl_->active_connections(); }

void Server::AppendMetrics(std::string* out) const { impl_->AppendMetrics(out); }

}  // namespace keygate::http
