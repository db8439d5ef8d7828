// Deadlines: the proxy's timeouts without a timer per socket operation.
//
// Beast's tcp_stream arms a timer for every read and write and cancels it when the operation
// completes: a timerfd syscall and several allocations each, for timeouts that almost never
// fire. Here each connection carries a Deadline (a time point, set with a clock read), and one
// timer per I/O thread calls Expire every tick: it closes the sockets past their deadline, which
// fails their pending and later operations. A timeout is therefore noticed up to one tick late.
//
// Single-threaded: a Deadlines and its Deadline objects belong to one I/O thread.
#ifndef AEGIS_FRONTDOORS_PROXY_DEADLINES_H_
#define AEGIS_FRONTDOORS_PROXY_DEADLINES_H_

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core/error.hpp>
#include <chrono>
#include <cstddef>
#include <vector>

namespace aegis::proxy {

// The proxy's sockets: bound to an io_context's executor type (proxy.cc says why).
using Socket = boost::asio::basic_stream_socket<boost::asio::ip::tcp,
                                                boost::asio::io_context::executor_type>;

class Deadlines {
 public:
  using Clock = std::chrono::steady_clock;

  // One socket's deadline, registered with `deadlines` (which must outlive it) for its lifetime.
  class Deadline {
   public:
    explicit Deadline(Deadlines& deadlines, Socket* socket = nullptr)
        : deadlines_(deadlines), socket_(socket) {
      index_ = deadlines_.entries_.size();
      deadlines_.entries_.push_back(this);
    }
    ~Deadline() {
      Deadline* last = deadlines_.entries_.back();
      deadlines_.entries_[index_] = last;
      last->index_ = index_;
      deadlines_.entries_.pop_back();
    }
    Deadline(const Deadline&) = delete;
    Deadline& operator=(const Deadline&) = delete;

    // The socket to close at the deadline (it may change, as when TLS takes over a socket).
    void Watch(Socket* socket) { socket_ = socket; }
    // Operations from now on must complete within `d`.
    void After(Clock::duration d) { at_ = Clock::now() + d; }
    void Never() { at_ = Clock::time_point::max(); }
    // Whether the deadline passed and the socket was closed. Permanent.
    bool expired() const { return expired_; }
    // `ec`, or beast::error::timeout when the deadline passed (whatever error the closed socket
    // gave).
    boost::beast::error_code Why(boost::beast::error_code ec) const {
      return expired_ ? boost::beast::error_code(boost::beast::error::timeout) : ec;
    }

   private:
    friend class Deadlines;
    Deadlines& deadlines_;
    Socket* socket_;
    Clock::time_point at_ = Clock::time_point::max();
    size_t index_ = 0;
    bool expired_ = false;
  };

  Deadlines() = default;
  Deadlines(const Deadlines&) = delete;
  Deadlines& operator=(const Deadlines&) = delete;

  // Closes the socket of every deadline before `now`.
  void Expire(Clock::time_point now) {
    for (Deadline* d : entries_) {
      if (d->expired_ || d->at_ > now) continue;
      d->expired_ = true;
      if (d->socket_) {
        boost::beast::error_code ignore;
        d->socket_->close(ignore);
      }
    }
  }

  size_t size() const { return entries_.size(); }

 private:
  std::vector<Deadline*> entries_;
};

}  // namespace aegis::proxy

#endif  // AEGIS_FRONTDOORS_PROXY_DEADLINES_H_
