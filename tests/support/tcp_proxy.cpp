// Poll-loop TCP proxy with a freeze switch.
#include "tcp_proxy.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <stdexcept>
#include <vector>

namespace torii::test {

namespace {

struct Pair {
  int a;  // accepted client side
  int b;  // upstream side
};

int ConnectUpstream(int port) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
    close(fd);
    return -1;
  }
  return fd;
}

// Moves what is readable on `from` to `to`; false when `from` is done.
bool Pump(int from, int to) {
  char buf[65536];
  ssize_t n = read(from, buf, sizeof(buf));
  if (n <= 0) return false;
  ssize_t off = 0;
  while (off < n) {
    ssize_t w = write(to, buf + off, n - off);
    if (w <= 0) return false;
    off += w;
  }
  return true;
}

}  // namespace

TcpProxy::TcpProxy(int target_port) : target_port_(target_port) {
  listen_fd_ = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  int one = 1;
  setsockopt(listen_fd_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (bind(listen_fd_, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0 || listen(listen_fd_, 64) != 0) {
    throw std::runtime_error("tcp proxy: cannot listen");
  }
  socklen_t len = sizeof(addr);
  getsockname(listen_fd_, reinterpret_cast<sockaddr*>(&addr), &len);
  port_ = ntohs(addr.sin_port);
  if (pipe(wake_) != 0) throw std::runtime_error("tcp proxy: pipe");
  thread_ = std::thread([this] { Run(); });
}

TcpProxy::~TcpProxy() {
  stop_ = true;
  ssize_t w = write(wake_[1], "x", 1);
  (void)w;
  thread_.join();
  close(listen_fd_);
  close(wake_[0]);
  close(wake_[1]);
}

void TcpProxy::Run() {
  std::vector<Pair> pairs;
  while (!stop_) {
    if (drop_.exchange(false)) {
      for (auto& p : pairs) {
        close(p.a);
        close(p.b);
      }
      pairs.clear();
    }
    std::vector<pollfd> fds;
    fds.push_back({listen_fd_, POLLIN, 0});
    fds.push_back({wake_[0], POLLIN, 0});
    bool frozen = frozen_;
    size_t polled = frozen ? 0 : pairs.size();  // pairs with entries in fds
    if (!frozen) {
      for (auto& p : pairs) {
        fds.push_back({p.a, POLLIN, 0});
        fds.push_back({p.b, POLLIN, 0});
      }
    }
    // While frozen, wake up now and then to notice Thaw().
    if (poll(fds.data(), fds.size(), frozen ? 20 : 200) < 0) continue;
    if (fds[1].revents) {
      char c;
      ssize_t r = read(wake_[0], &c, 1);
      (void)r;
    }
    if (fds[0].revents & POLLIN) {
      int a = accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
      if (a >= 0) {
        int b = ConnectUpstream(target_port_);
        if (b < 0) {
          close(a);
        } else {
          pairs.push_back({a, b});
        }
      }
    }
    if (frozen) continue;
    std::vector<Pair> alive(pairs.begin() + polled, pairs.end());  // accepted just now
    for (size_t i = 0; i < polled; i++) {
      const pollfd& pa = fds[2 + 2 * i];
      const pollfd& pb = fds[3 + 2 * i];
      bool ok = true;
      if (pa.revents & (POLLIN | POLLHUP | POLLERR)) ok = ok && Pump(pairs[i].a, pairs[i].b);
      if (ok && (pb.revents & (POLLIN | POLLHUP | POLLERR))) ok = Pump(pairs[i].b, pairs[i].a);
      if (ok) {
        alive.push_back(pairs[i]);
      } else {
        close(pairs[i].a);
        close(pairs[i].b);
      }
    }
    pairs.swap(alive);
  }
  for (auto& p : pairs) {
    close(p.a);
    close(p.b);
  }
}

}  // namespace torii::test
