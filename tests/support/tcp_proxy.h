// A TCP proxy of the tests' own between toriid and PostgreSQL, to make a
// network path go silent: Freeze() stops moving bytes in both directions on
// every connection, old and new (no RST, no FIN: the peers see nothing),
// Thaw() resumes. Runs one thread; loopback only.
#pragma once

#include <atomic>
#include <string>
#include <thread>

namespace torii::test {

class TcpProxy {
 public:
  // Forwards 127.0.0.1:<port()> to 127.0.0.1:<target_port>.
  explicit TcpProxy(int target_port);
  ~TcpProxy();
  TcpProxy(const TcpProxy&) = delete;
  TcpProxy& operator=(const TcpProxy&) = delete;

  int port() const { return port_; }
  void Freeze() { frozen_ = true; }
  void Thaw() { frozen_ = false; }
  // Closes every proxied connection at once (both sides see EOF).
  void DropAll() { drop_ = true; }

 private:
  void Run();

  int target_port_;
  int port_ = 0;
  int listen_fd_ = -1;
  int wake_[2] = {-1, -1};
  std::atomic<bool> frozen_{false};
  std::atomic<bool> drop_{false};
  std::atomic<bool> stop_{false};
  std::thread thread_;
};

}  // namespace torii::test
